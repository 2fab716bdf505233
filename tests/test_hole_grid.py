"""The holes' grid: the rows and columns around the holes stand in for the whole image."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.pconv.hole_grid import HoleGrid


def random_holes(rng, height, width):
    hole = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 40)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        hole[y:y + rng.integers(1, 30), x:x + rng.integers(1, 30)] = True
    hole[rng.integers(0, height), :rng.integers(1, width)] = True  # a line from the border
    return hole


@pytest.mark.parametrize("flip", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_holes_are_labelled_on_the_grid_as_on_the_image(flip, connectivity):
    """Same regions and same numbering (the inpainter groups holes into windows in label order),
    in the image mirrored by `flip`, and the grid holds only lines at or next to a hole."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        height, width = rng.integers(2, 300, size=2)
        hole = random_holes(rng, height, width)
        mirrored = np.ascontiguousarray(hole[::-1 if flip[0] else 1, ::-1 if flip[1] else 1])
        grid = HoleGrid.of(hole, flip)
        _, on_image = cv2.connectedComponents(mirrored.astype(np.uint8), connectivity=connectivity)
        _, on_grid = cv2.connectedComponents(grid.hole.astype(np.uint8), connectivity=connectivity)
        np.testing.assert_array_equal(grid.scatter(on_grid, 0, 0, height, width), on_image)
        np.testing.assert_array_equal(grid.gather(hole), grid.hole)
        assert len(grid.rows) <= 2 * mirrored.any(axis=1).sum() + 2  # the line a hole is on, a neighbour, a gap


def test_two_small_holes_far_apart_make_a_small_grid():
    hole = np.zeros((4000, 6000), bool)
    hole[10:40, 20:60] = True
    hole[3900:3990, 5900:5950] = True
    grid = HoleGrid.of(hole)
    assert grid.hole.shape == (125, 95)  # (30 + 90 hole rows, 4 neighbours, 1 kept for parity) x (40 + 50, 4, 1)


def test_bilinear_values_at_chosen_pixels_are_those_of_the_enlarged_array():
    """What the inpainter and the blend read of an enlargement instead of making it: OpenCV's
    bilinear geometry (float32 coefficients there, so within 1e-5), unscaled axes copied exactly."""
    from models.pconv.hole_grid import bilinear_at

    rng = np.random.default_rng(5)
    for shape, height, width in [((7, 9, 3), 61, 40), ((30, 4), 31, 400), ((12, 20, 3), 12, 77), ((5, 6, 3), 5, 6)]:
        small = rng.random(shape).astype(np.float32)
        enlarged = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        rows, columns = np.sort(rng.choice(height, 9)), np.sort(rng.choice(width, 11))
        values = bilinear_at(small, height, width, rows, columns)
        np.testing.assert_allclose(values, enlarged[np.ix_(rows, columns)], atol=1e-5)
        if small.shape[:2] == (height, width):
            np.testing.assert_array_equal(values, small[np.ix_(rows, columns)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_area_shrink_a_band_of_rows_at_a_time_gives_opencvs_bytes(monkeypatch, dtype):
    """What the inpainter reads a big window through (and the blend a big box) instead of its whole
    float copy: the bytes of one `cv2.resize` INTER_AREA, for fractional scales, whole-number
    scales on one axis (OpenCV's weights, by `_area_pass`) or both (OpenCV's block averaging)."""
    import models.pconv.hole_grid as hole_grid

    monkeypatch.setattr(hole_grid, "WHOLE_RESIZE_PIXELS", 0)
    monkeypatch.setattr(hole_grid, "BAND_PIXELS", 700)
    rng = np.random.default_rng(11)
    for height, width, target_height, target_width in [(301, 407, 19, 26), (300, 450, 17, 9), (290, 400, 29, 71),
                                                        (300, 420, 60, 70), (120, 333, 120, 45), (97, 310, 13, 310)]:
        array = rng.random((height, width)).astype(dtype)
        array[rng.random((height, width)) < 0.3] = 0.0
        bands = []

        def rows_of(band):
            bands.append(len(array[band]))
            return array[band]

        shrunk = hole_grid.area_shrunk(rows_of, height, width, target_height, target_width)
        expected = cv2.resize(array, (target_width, target_height), interpolation=cv2.INTER_AREA)
        assert shrunk.dtype == expected.dtype
        np.testing.assert_array_equal(shrunk, expected)
        assert sum(bands) == height and max(bands) * width <= max(700, width * height // target_height)
