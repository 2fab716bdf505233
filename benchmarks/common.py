"""Shared set-up for the benchmarks: a synthetic image folder and the two models' files."""
from __future__ import annotations

import os
import sys

import numpy as np
from PIL import Image

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour fields plus noise and a few blobs, so detectors and encoders see texture."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[0] - 1, height)
    xs = np.linspace(0, coarse.shape[1] - 1, width)
    image = coarse[ys.round().astype(int)][:, xs.round().astype(int)]
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def write_images(folder: str, count: int, height: int, width: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"{i:05d}.png")
        if not os.path.exists(path):
            Image.fromarray(photo_like(height, width, i)).save(path)
        paths.append(path)
    return paths


def tiny_inpainter_weights(folder: str) -> str:
    import keras
    from models.pconv import build_pconv_unet

    path = os.path.join(folder, "tiny_pconv.keras")
    if not os.path.exists(path):
        keras.utils.set_random_seed(0)
        build_pconv_unet(image_size=64, width_multiplier=1 / 16, depth=5).save(path)
    return path


def inpainter_weights(folder: str, quick: bool) -> str:
    """The shipped checkpoint when present (what users run), else a small random model."""
    from pipeline.options import SHIPPED_INPAINT_WEIGHTS
    if not quick and os.path.isfile(SHIPPED_INPAINT_WEIGHTS):
        return SHIPPED_INPAINT_WEIGHTS
    return tiny_inpainter_weights(folder)


def segmenter_files(folder: str, quick: bool) -> tuple[str, str]:
    """(config, checkpoint): the tiny ResNet-18 Mask R-CNN for --quick, else the default R50,
    both random-initialised (no trained weights can be downloaded here; speed is the same)."""
    from tests.segmentation_fixtures import write_random_maskrcnn_checkpoint, write_tiny_maskrcnn
    from models.segmentation import DEFAULT_CONFIG

    os.makedirs(folder, exist_ok=True)
    if quick:
        return write_tiny_maskrcnn(folder)
    checkpoint = os.path.join(folder, "mask_rcnn_r50_random.pth")
    if not os.path.exists(checkpoint):
        write_random_maskrcnn_checkpoint(checkpoint)
    return DEFAULT_CONFIG, checkpoint
