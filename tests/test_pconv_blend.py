"""Poisson seam blending: it solves its equations, removes seams, and keeps holes apart."""
from __future__ import annotations

import numpy as np
import pytest

from models.pconv.blend import poisson_blend


def smooth_photo(height=60, width=80):
    ys, xs = np.mgrid[0:height, 0:width]
    red = 60 + 120 * xs / width + 20 * np.sin(ys / 7.0)
    green = 200 - 100 * ys / height
    blue = 128 + 60 * np.cos(xs / 9.0) * np.sin(ys / 11.0)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def box_hole(height, width, *boxes):
    hole = np.zeros((height, width), bool)
    for top, left, bottom, right in boxes:
        hole[top:bottom, left:right] = True
    return hole


def residuals(image, hole, fill, blended):
    """Left minus right side of each hole pixel's equation (see models/pconv/blend.py)."""
    photo = image.astype(np.float64) / 255.0
    f = np.where(hole[:, :, None], blended, photo)
    p = fill.astype(np.float64)
    out = []
    for y, x in zip(*np.nonzero(hole)):
        total = np.zeros(3)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < hole.shape[0] and 0 <= nx < hole.shape[1]:
                total += f[y, x] - f[ny, nx]
                if hole[ny, nx]:
                    total -= p[y, x] - p[ny, nx]
        out.append(total)
    return np.abs(np.array(out))


def test_blended_fill_solves_the_poisson_equations_also_at_the_image_border():
    image = smooth_photo()
    hole = box_hole(60, 80, (10, 12, 30, 40), (0, 50, 25, 80))  # the second touches two borders
    fill = np.random.default_rng(0).uniform(0.4, 0.6, image.shape).astype(np.float32)
    blended = poisson_blend(image, hole, fill)
    assert 0 < blended[hole].min() and blended[hole].max() < 1  # not clipped: the equations hold
    assert residuals(image, hole, fill, blended).max() < 1e-5
    assert blended.dtype == np.float32 and (blended[~hole] == 0).all()


def test_a_fill_offset_from_the_photo_is_blended_back_onto_it():
    image = smooth_photo()
    truth = image.astype(np.float32) / 255.0
    hole = box_hole(60, 80, (15, 20, 45, 60))
    fill = np.clip(truth + 0.12, 0, 1)  # the photo's own texture, too bright: a visible seam
    blended = poisson_blend(image, hole, fill)
    assert np.abs(fill[hole] - truth[hole]).mean() > 0.1
    assert np.abs(blended[hole] - truth[hole]).mean() < 0.01


def test_holes_are_blended_independently():
    image = smooth_photo()
    first, second = box_hole(60, 80, (5, 5, 20, 30)), box_hole(60, 80, (30, 40, 55, 75))
    fill = np.random.default_rng(1).uniform(0, 1, image.shape).astype(np.float32)
    together = poisson_blend(image, first | second, fill)
    np.testing.assert_allclose(together[first], poisson_blend(image, first, fill)[first], atol=1e-6)
    np.testing.assert_allclose(together[second], poisson_blend(image, second, fill)[second], atol=1e-6)


def test_a_hole_too_big_for_a_direct_solve_is_solved_at_a_reduced_scale():
    image = smooth_photo(120, 160)
    truth = image.astype(np.float32) / 255.0
    hole = box_hole(120, 160, (20, 30, 100, 130))  # 8,000 unknowns
    fill = np.clip(truth - 0.1, 0, 1)
    exact = poisson_blend(image, hole, fill)
    reduced = poisson_blend(image, hole, fill, max_unknowns=1_000)
    # Close to the exact solve (the reduced scale loses detail along the edge only), and the
    # seam's offset is gone.
    assert np.abs(reduced[hole] - exact[hole]).mean() < 0.01
    assert np.abs(reduced[hole] - truth[hole]).mean() < 0.015 < np.abs(fill[hole] - truth[hole]).mean()


def test_nothing_to_blend():
    image = smooth_photo(20, 30)
    fill = np.full(image.shape, 0.5, np.float32)
    assert not poisson_blend(image, np.zeros((20, 30), bool), fill).any()
    # A hole over the whole image has no photo to meet: the fill stays as it is.
    np.testing.assert_array_equal(poisson_blend(image, np.ones((20, 30), bool), fill), fill)
    with pytest.raises(ValueError, match="do not match"):
        poisson_blend(image, np.zeros((20, 31), bool), fill)


def test_the_unknowns_of_one_image_are_bounded_whatever_its_number_of_holes(monkeypatch):
    """Hole by hole, each up to `max_unknowns`, dozens of big holes or thousands of specks cost a
    solve each: the image's holes share one bound, and small holes share one system."""
    import models.pconv.blend as blend

    systems = []
    solve = blend._solve
    monkeypatch.setattr(blend, "_solve", lambda composite, hole: systems.append(int(hole.sum())) or solve(composite, hole))
    image = smooth_photo(120, 160)
    truth = image.astype(np.float32) / 255.0
    fill = np.clip(truth + 0.1, 0, 1)
    boxes = [(top, left, top + 30, left + 30) for top in (5, 45, 85) for left in (5, 45, 85, 125)]
    holes = box_hole(120, 160, *boxes)  # 12 holes of 900 pixels
    exact = poisson_blend(image, holes, fill)
    assert systems == [12 * 900]  # under both bounds: one exact solve of all of them
    systems.clear()
    bounded = poisson_blend(image, holes, fill, max_unknowns=1_000, max_image_unknowns=3_000)
    assert len(systems) == 1 and systems[0] <= 3_000
    assert np.abs(bounded[holes] - exact[holes]).mean() < 0.01
    assert np.abs(bounded[holes] - truth[holes]).mean() < 0.015 < np.abs(fill[holes] - truth[holes]).mean()
    systems.clear()
    specks = np.zeros((120, 160), bool)
    specks[::3, ::3] = True  # 2,120 one-pixel holes
    poisson_blend(image, specks, fill)
    assert systems == [specks.sum()]


def test_a_reduced_solve_of_holes_over_half_a_photo_works_in_a_few_times_its_bytes():
    """Five person-sized holes (42 % of a 6 MP photo), solved at a reduced scale together: the
    box was converted to float64 in three channels, multiplied by the hole into another copy and
    the correction enlarged to it, 17x the photo's bytes; now one float64 channel of the box at
    a time, the correction enlarged a band of rows at a time, and the fill blended in place."""
    import tracemalloc

    from models.pconv.blend import poisson_blend_on_grid
    from models.pconv.hole_grid import HoleGrid

    image = smooth_photo(2000, 3000)
    hole = box_hole(2000, 3000, *[(500, 75 + k * 575, 1500, 575 + k * 575) for k in range(5)])
    grid = HoleGrid.of(hole)
    fill = np.clip(grid.gather(image) / 255.0 + 0.1, 0, 1).astype(np.float32)
    fill[~grid.hole] = 0
    tracemalloc.start()
    try:
        blended = poisson_blend_on_grid(image, hole, grid, fill, max_unknowns=5_000, max_image_unknowns=20_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3.5 * image.nbytes, f"peak {peak / image.nbytes:.2f}x the photo's bytes"
    truth = grid.gather(image)[grid.hole] / 255.0
    assert np.abs(blended[grid.hole] - truth).mean() < 0.02  # the fill's offset is blended away
