"""Shared fixtures: small models and image corpora made by the tests themselves (no downloads)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_inpaint_weights(tmp_path_factory) -> str:
    """A random-initialised small PConvUNet saved the way the shipped checkpoint is (.keras)."""
    import keras
    from models.pconv import build_pconv_unet

    keras.utils.set_random_seed(0)
    model = build_pconv_unet(image_size=64, width_multiplier=1 / 16, depth=5)
    path = str(tmp_path_factory.mktemp("inpainter") / "tiny_pconv.keras")
    model.save(path)
    return path


def textured_image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, differs per seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / max(width - 1, 1), ys * 255 / max(height - 1, 1),
                     np.full_like(xs, 128 + 40 * (seed % 3))], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def rectangle_mask(height: int, width: int, box) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


@pytest.fixture
def masks_corpus(tmp_path):
    """Images in nested folders with user masks: two to clean, one with an empty mask."""
    images, masks = tmp_path / "in", tmp_path / "masks"
    specs = {  # relative path: (height, width, hole box or None)
        "a.png": (48, 64, (10, 8, 30, 24)),
        "sub/b.jpg": (40, 56, (20, 10, 40, 30)),
        "sub/c.png": (32, 32, None),
    }
    for seed, (relative, (h, w, box)) in enumerate(specs.items()):
        (images / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(textured_image(h, w, seed)).save(images / relative)
        mask_file = (masks / relative).with_suffix(".png")
        mask_file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rectangle_mask(h, w, box or (0, 0, 0, 0))).save(mask_file)
    return images, masks, specs


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory) -> tuple[str, str]:
    """(config path, checkpoint path) of a small random-initialised Mask R-CNN (ResNet-18)."""
    from tests.segmentation_fixtures import write_tiny_maskrcnn
    return write_tiny_maskrcnn(str(tmp_path_factory.mktemp("segmenter")))


@pytest.fixture(scope="session")
def default_segmenter_checkpoint(tmp_path_factory) -> str:
    """A random-initialised checkpoint for the default packaged config, mmengine-style."""
    from tests.segmentation_fixtures import write_random_maskrcnn_checkpoint
    path = tmp_path_factory.mktemp("segmenter-r50") / "mask_rcnn_r50_random.pth"
    return write_random_maskrcnn_checkpoint(str(path))
