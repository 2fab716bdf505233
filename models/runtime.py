"""Process-wide accelerator settings that must happen before a framework first touches the GPU."""
from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def usable_cpu_count() -> int:
    """The CPUs this process may run on (its affinity on Linux), not all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def configure_tensorflow(device: str = "cpu") -> None:
    """Hides the GPU from TensorFlow for `cpu`, else turns on memory growth.

    TensorFlow reserves all GPU memory at first use unless told otherwise, which would starve
    torch (Mask R-CNN) sharing the same GPU. Must run before any TF op; a no-op on other backends.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    try:
        if device == "cpu":
            tf.config.set_visible_devices([], "GPU")
        else:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as e:  # already initialised in this process: settings are fixed by then
        logger.warning("TensorFlow GPU settings not applied (%s)", e)
