"""Process-wide accelerator settings that must happen before a framework first touches the GPU."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys

logger = logging.getLogger(__name__)


def usable_cpu_count() -> int:
    """The CPUs this process may run on (its affinity on Linux), not all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# What TensorFlow's C++ runtime prints on import and at its first device query, whatever
# TF_CPP_MIN_LOG_LEVEL says (absl writes it before reading any level): start-up facts, not problems.
_STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] "  # a C++ INFO line (oneDNN on, no CUDA driver, CPU features)
    r"|To enable the following instructions: .* rebuild TensorFlow")
# CUDA's "no GPU here" error, expected where the models run on the CPU.
_NO_GPU = re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit")


# Passes its stdin to its stderr less the lines matching any pattern given as an argument.
_FILTER = """import re, sys
noise = [re.compile(pattern) for pattern in sys.argv[1:]]
for line in sys.stdin.buffer:
    if not any(p.match(line.decode(errors="replace")) for p in noise):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
"""


@contextlib.contextmanager
def native_stderr_without(*noise: re.Pattern):
    """What anything in the process (C++ included) writes to stderr meanwhile, less the lines
    matching `noise`. A separate filter process passes the rest on as it comes, so even the last
    words of a native crash inside the block (an abort on import) still reach the terminal."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, *(p.pattern for p in noise)],
                                 stdin=read_end, stdout=subprocess.DEVNULL, stderr=saved)
    except (OSError, ValueError):  # no interpreter to start: unfiltered rather than lost
        os.close(write_end)
        child = None
    else:
        os.dup2(write_end, 2)
        os.close(write_end)
    finally:
        os.close(read_end)
    try:
        yield
    finally:
        if child is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)  # closes the pipe's last write end: the filter ends once it is drained
            with contextlib.suppress(subprocess.TimeoutExpired):  # a subprocess started meanwhile
                child.wait(timeout=10)  # holds the pipe: the filter then ends with it
        os.close(saved)


def import_keras_quietly() -> None:
    """Imports Keras, and with it its backend, without TensorFlow's start-up lines, which look like
    errors to users ("Could not find cuda drivers") and cannot be turned off by its settings."""
    if "keras" not in sys.modules:
        with native_stderr_without(_STARTUP_NOISE):
            import keras  # noqa: F401


def configure_tensorflow(device: str = "cpu") -> None:
    """Hides the GPU from TensorFlow for `cpu`, else turns on memory growth.

    TensorFlow reserves all GPU memory at first use unless told otherwise, which would starve
    torch (Mask R-CNN) sharing the same GPU. Must run before any TF op; a no-op on other backends.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    # For `cpu`, CUDA's failed start-up (no driver) is expected; for `cuda` it is the diagnosis.
    with native_stderr_without(_STARTUP_NOISE, *([_NO_GPU] if device == "cpu" else [])):
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
