"""Masks mode: which pixels of a user's mask file are removed."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from transforms.user_masks import removed_pixels


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _drawn_square(mode: str) -> bytes:
    """An opaque black background, an opaque white square, and a white but fully transparent strip."""
    colour = np.zeros((10, 10), np.uint8)
    alpha = np.full((10, 10), 255, np.uint8)
    colour[2:5, 2:5] = 255
    colour[8:, :] = 255
    alpha[8:, :] = 0
    if mode == "P":  # palette: black, white, transparent white
        indices = np.where(colour == 0, 0, np.where(alpha == 0, 2, 1)).astype(np.uint8)
        image = Image.fromarray(indices, "P")
        image.putpalette([0, 0, 0, 255, 255, 255, 255, 255, 255])
        return _encoded(image, "PNG", transparency=b"\xff\xff\x00")
    bands = [colour] if mode == "LA" else [colour] * 3
    return _encoded(Image.fromarray(np.dstack(bands + [alpha]), mode), "PNG")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_mask_with_alpha_removes_only_its_drawn_nonzero_pixels(mode):
    mask = Image.open(io.BytesIO(_drawn_square(mode)))
    assert mask.mode == mode
    expected = np.zeros((10, 10), bool)
    expected[2:5, 2:5] = True
    np.testing.assert_array_equal(removed_pixels(mask), expected)


def test_mask_without_alpha_removes_every_nonzero_pixel():
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1, 2] = (0, 0, 1)
    np.testing.assert_array_equal(removed_pixels(Image.fromarray(mask)), mask.any(axis=2))
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([255, 255, 255, 0, 0, 0])  # index 0 is white, index 1 black
    np.testing.assert_array_equal(removed_pixels(palette), [[True, False]])
