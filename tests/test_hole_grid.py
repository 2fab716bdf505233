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
