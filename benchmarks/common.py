"""Shared set-up for the benchmarks: synthetic images, the two models' files, the machine's load
and an optional CUDA mode (`--device cuda`, torch backend for Keras, GPU utilisation sampling)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
from PIL import Image

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.runtime import usable_cpu_count  # noqa: E402  (needs PROJECT_ROOT on the path)

SEGMENTERS = ("tiny", "r50")
INPAINTERS = ("tiny", "shipped")
# The shipped inpainter's architecture (assets/inpainter/pconv_unet.keras).
SHIPPED_SIZE, SHIPPED_WIDTH = 256, 0.25


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour fields plus noise and a few blobs, so detectors and encoders see texture."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[0] - 1, height)
    xs = np.linspace(0, coarse.shape[1] - 1, width)
    image = coarse[ys.round().astype(int)][:, xs.round().astype(int)]
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def centre_hole(height: int, width: int) -> np.ndarray:
    """A person-sized hole: the middle third of the width, the middle half of the height."""
    hole = np.zeros((height, width), bool)
    hole[height // 4:3 * height // 4, width // 3:2 * width // 3] = True
    return hole


def write_images(folder: str, count: int, height: int, width: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"{i:05d}.png")
        if not os.path.exists(path):
            Image.fromarray(photo_like(height, width, i)).save(path)
        paths.append(path)
    return paths


def write_masks(folder: str, count: int, height: int, width: int) -> str:
    """`--segmenter masks` input for images written by `write_images`: one centre hole each."""
    os.makedirs(folder, exist_ok=True)
    mask = Image.fromarray(centre_hole(height, width).astype(np.uint8) * 255)
    for i in range(count):
        path = os.path.join(folder, f"{i:05d}.png")
        if not os.path.exists(path):
            mask.save(path)
    return folder


def inpainter_weights(folder: str, kind: str) -> str:
    """`tiny`: a 64 px, 1/16-width random PConv U-Net. `shipped`: the shipped checkpoint when
    present, else a random model of its architecture (256 px, width 0.25): the speed is the same."""
    from pipeline.options import SHIPPED_INPAINT_WEIGHTS
    if kind == "shipped" and os.path.isfile(SHIPPED_INPAINT_WEIGHTS):
        return SHIPPED_INPAINT_WEIGHTS
    import keras
    from models.pconv import build_pconv_unet

    architecture = {"tiny": dict(image_size=64, width_multiplier=1 / 16, depth=5),
                    "shipped": dict(image_size=SHIPPED_SIZE, width_multiplier=SHIPPED_WIDTH)}[kind]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{kind}_pconv_random.keras")
    if not os.path.exists(path):
        keras.utils.set_random_seed(0)
        build_pconv_unet(**architecture).save(path)
    return path


def segmenter_files(folder: str, kind: str) -> tuple[str, str]:
    """(config, checkpoint), random-initialised (no trained weights can be downloaded here; the
    speed is the same): `tiny` is the ResNet-18 test Mask R-CNN at 320 px, `r50` the default
    mask-rcnn_r50_fpn_1x_coco (which resizes every image to 1333x800)."""
    from models.segmentation import DEFAULT_CONFIG
    from tests.segmentation_fixtures import write_random_maskrcnn_checkpoint, write_tiny_maskrcnn

    os.makedirs(folder, exist_ok=True)
    if kind == "tiny":
        config = os.path.join(folder, "tiny_maskrcnn.py")
        if os.path.exists(config):
            return config, os.path.join(folder, "tiny_maskrcnn.pth")
        return write_tiny_maskrcnn(folder)
    checkpoint = os.path.join(folder, "mask_rcnn_r50_random.pth")
    if not os.path.exists(checkpoint):
        write_random_maskrcnn_checkpoint(checkpoint)
    return DEFAULT_CONFIG, checkpoint


def machine() -> str:
    """What the figures came from: CPUs, memory, GPU and the load average at the time."""
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    gpu = ""
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = f"{sys.modules['torch'].cuda.get_device_name(0)}, "
    return (f"{gpu}{usable_cpu_count()} CPUs, {total_kib / 2 ** 20:.0f} GiB, "
            f"load average {load}")


def use_device(device: str) -> None:
    """For `cuda`: Keras on the torch backend (the GPU machine has torch, not TensorFlow), checked
    before any model is built. Must run before Keras is first imported."""
    if device == "cpu":
        return
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        raise RuntimeError("use_device('cuda') must run before keras is imported")
    os.environ["KERAS_BACKEND"] = "torch"
    import torch
    if not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA GPU on this machine "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                         "run this mode on the GPU machine")


class GpuUtilisation:
    """Samples `nvidia-smi` utilisation.gpu of the first GPU (the lent machine has one) in a thread
    while in the `with` block: mean and peak %."""

    def __init__(self, interval_s: float = 0.2):
        self._interval_s = interval_s
        self._samples: list[int] = []  # kept across `with` blocks, so rounds add up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            reply = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False)
            first_gpu = reply.stdout.strip().splitlines()[:1]
            if reply.returncode == 0 and first_gpu and first_gpu[0].strip().isdigit():
                self._samples.append(int(first_gpu[0]))
            self._stop.wait(self._interval_s)

    def __enter__(self) -> "GpuUtilisation":
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self._samples:
            return "GPU utilisation: no nvidia-smi samples"
        return (f"GPU utilisation: mean {sum(self._samples) / len(self._samples):.0f}%, "
                f"peak {max(self._samples)}% ({len(self._samples)} samples)")
