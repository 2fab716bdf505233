"""Poisson seam blending of a network's fill into the photo (Pérez et al. 2003).

A fill straight from the network meets the photo with a seam: a small colour offset and some
speckle along the hole's edge, which the eye (and SSIM) picks up first. Blending keeps the fill's
own gradients inside the hole and makes it continue the photo across the edge: inside each hole
the output `f` solves the discrete Poisson equation

    sum over 4-neighbours j of (f_i - f_j) = sum over hole neighbours j of (p_i - p_j)

with `p` the fill and `f_j` the photo's pixel for neighbours j outside the hole (Iizuka et al.
2017 post-process their completions the same way). Separate holes (4-connected components) do not
interact, so the holes small enough for a direct sparse solve are solved together in one system; a
hole too big for one gets its correction `f - p`, which is smooth away from the edge, solved at a
reduced scale and enlarged. The unknowns of one image are bounded too: beyond that every hole's
correction is solved at one reduced scale, so a photo with dozens of large holes, or thousands of
specks, costs no more than a few big holes. The exact solves are built on the holes' grid
(`models/pconv/hole_grid.py`): two small holes in opposite corners of a photo cost memory for
their own rows and columns, not for the box between them. The fill is blended in place, and a
reduced solve's full-resolution work (shrinking the box, enlarging the correction) is done one
float channel or one band of rows at a time: removed people can cover half of a big photo.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from models.pconv.hole_grid import (WHOLE_RESIZE_PIXELS, HoleGrid, area_shrunk, bilinear_at, bounds, labelled,
                                    row_bands)

# A direct solve of this many unknowns takes about a second on one CPU core.
DEFAULT_MAX_UNKNOWNS = 120_000
# All holes of one image together. Solved hole by hole, 63 holes of 113,000 pixels in a 12 MP photo
# took 45 s (6 s bounded), and 20,000 one-pixel specks in a 1 MP photo 7 s (0.1 s in one system).
DEFAULT_MAX_IMAGE_UNKNOWNS = 4 * DEFAULT_MAX_UNKNOWNS
_NEIGHBOURS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def poisson_blend(image: np.ndarray, hole: np.ndarray, fill: np.ndarray,
                  max_unknowns: int = DEFAULT_MAX_UNKNOWNS,
                  max_image_unknowns: int = DEFAULT_MAX_IMAGE_UNKNOWNS) -> np.ndarray:
    """`fill` (float (H, W, 3) in [0, 1], used only where `hole`) blended into `image` (uint8
    (H, W, 3)) across the edge of every hole (bool (H, W)); returns the blended float fill (zero
    outside the holes). `max_unknowns` bounds one hole's direct solve, `max_image_unknowns` all
    of the image's."""
    if image.shape[:2] != hole.shape or fill.shape != image.shape:
        raise ValueError(f"image {image.shape}, hole {hole.shape} and fill {fill.shape} do not match")
    grid = HoleGrid.of(hole)
    on_grid = grid.gather(fill).astype(np.float32, copy=False)
    on_grid[~grid.hole] = 0.0
    poisson_blend_on_grid(image, hole, grid, on_grid, max_unknowns, max_image_unknowns)
    return grid.scatter(on_grid, 0, 0, *hole.shape)


def poisson_blend_on_grid(image: np.ndarray, hole: np.ndarray, grid: HoleGrid, fill: np.ndarray,
                          max_unknowns: int = DEFAULT_MAX_UNKNOWNS,
                          max_image_unknowns: int = DEFAULT_MAX_IMAGE_UNKNOWNS) -> np.ndarray:
    """`poisson_blend` in place on the holes' grid (`HoleGrid.of(hole)`): blends the float32
    `fill`'s hole pixels and returns it. The work is the holes' neighbourhoods', not the image's,
    except where a hole's correction is solved at a reduced scale (on its bounding box, grown by
    a margin, one channel at a time)."""
    if min(max_unknowns, max_image_unknowns) < 4:  # a reduced solve has at least 2 x 2 pixels
        raise ValueError(f"max_unknowns and max_image_unknowns must be at least 4, got "
                         f"{max_unknowns} and {max_image_unknowns}")
    if not grid.hole.size:
        return fill
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grid.hole.astype(np.uint8), connectivity=4)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if np.minimum(areas, max_unknowns).sum() > max_image_unknowns:
        exact, reduced = None, [(grid.hole, int(areas.sum()), max_image_unknowns)]
    else:
        small = np.flatnonzero(areas <= max_unknowns) + 1
        exact = (labelled(labels, small, count) if len(small) < count - 1 else grid.hole) if len(small) else None
        reduced = [(labels == label, int(areas[label - 1]), max_unknowns)
                   for label in np.flatnonzero(areas > max_unknowns) + 1]
    del labels
    # A reduced solve reads the fill of every hole in its box, so all are solved before any writes
    # its result; the exact solve reads only its own holes' fill.
    corrections = [_reduced_correction(image, hole, grid, fill, *args) for args in reduced]
    for correction in corrections:
        correction.apply(grid, fill)
    if exact is not None:
        _blend_exact(image, grid, fill, exact)
    return fill


def _blend_exact(image: np.ndarray, grid: HoleGrid, fill: np.ndarray, solved: np.ndarray) -> None:
    """Replaces `fill` on the `solved` holes by the exact solution, all in one system, built on
    the grid: one line of photo around the holes is their boundary, and the grid holds each hole
    pixel's true neighbours, so the system is the one on the image."""
    first_row, first_column, last_row, last_column = bounds(solved)
    box = slice(max(first_row - 1, 0), last_row + 2), slice(max(first_column - 1, 0), last_column + 2)
    photo = image[np.ix_(grid.rows[box[0]], grid.columns[box[1]])]
    # Photo outside the holes, fill inside (never the removed object under a hole).
    composite = np.where(grid.hole[box][:, :, None], fill[box], photo / 255.0)
    region = solved[box]
    fill[box][region] = np.clip(_solve(composite, region), 0.0, 1.0)


@dataclass
class _Correction:
    """A reduced solve's correction (solution minus fill) of the `solved` holes (on the grid), on
    the reduced pixels of their box (top, left, bottom, right) in the image."""
    solved: np.ndarray
    box: tuple[int, int, int, int]
    small_hole: np.ndarray
    correction: np.ndarray

    def apply(self, grid: HoleGrid, fill: np.ndarray) -> None:
        """Adds the correction, enlarged bilinearly and normalised (only reduced hole pixels
        contribute to a hole pixel), to `fill` on the solved holes, a band of grid rows at a time
        (enlarged whole first where the box is at most WHOLE_RESIZE_PIXELS)."""
        top, left, bottom, right = self.box
        span = grid.span(*self.box)
        rows, columns = grid.rows[span[0]] - top, grid.columns[span[1]] - left
        region, solved = fill[span], self.solved[span]
        hole_share, correction = self.small_hole.astype(np.float64), self.correction
        if (bottom - top) * (right - left) <= WHOLE_RESIZE_PIXELS:
            hole_share, correction = (cv2.resize(small, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
                                      for small in (hole_share, correction))
        for band in row_bands(len(rows), 3 * len(columns)):
            keep = solved[band]
            weight = np.maximum(bilinear_at(hole_share, bottom - top, right - left, rows[band], columns)[keep], 1e-6)
            values = bilinear_at(correction, bottom - top, right - left, rows[band], columns)[keep]
            values /= weight[:, None]
            values += region[band][keep]
            region[band][keep] = np.clip(values, 0.0, 1.0)


def _reduced_correction(image: np.ndarray, hole: np.ndarray, grid: HoleGrid, fill: np.ndarray,
                        solved: np.ndarray, area: int, max_unknowns: int) -> _Correction:
    """The correction of the `solved` holes (`area` > `max_unknowns` pixels) solved at a scale with
    at most `max_unknowns` unknowns, on their bounding box in the image grown by a margin that
    leaves at least two reduced pixels of pure photo around them (a reduced solve needs the
    geometry). The box is shrunk one float channel and one band of rows at a time (`area_shrunk`):
    it may be most of a big photo."""
    scale = math.sqrt(max_unknowns / area) * 0.9
    margin = math.ceil(2 / scale) + 1
    first_row, first_column, last_row, last_column = bounds(solved)
    top, left = max(int(grid.rows[first_row]) - margin, 0), max(int(grid.columns[first_column]) - margin, 0)
    bottom = min(int(grid.rows[last_row]) + 1 + margin, hole.shape[0])
    right = min(int(grid.columns[last_column]) + 1 + margin, hole.shape[1])
    box = (top, left, bottom, right)
    solved_in_box = grid.scatter(solved, *box)
    while True:
        small_shape = (max(2, round((bottom - top) * scale)), max(2, round((right - left) * scale)))
        # A reduced pixel is a hole if any of its footprint is: its value would mix the hole in.
        hole_share = area_shrunk(lambda band: solved_in_box[band].astype(np.float64), *solved_in_box.shape,
                                 *small_shape)
        small_hole = hole_share > 0
        if small_hole.sum() <= max_unknowns:
            break
        scale *= 0.9
    small = np.empty(small_hole.shape + (3,))
    for channel in range(3):
        composite_rows = functools.partial(_composite_rows, image, hole, grid, fill, box, channel)
        photo_mean = area_shrunk(composite_rows, *solved_in_box.shape, *small_shape)
        # Reduced hole pixels take the mean of their fill pixels only: a fill/photo mix at the edge
        # would be a step in the guidance, which the solve would keep.
        fill_mean = area_shrunk(functools.partial(composite_rows, solved=solved_in_box), *solved_in_box.shape,
                                *small_shape)
        small[:, :, channel] = np.where(small_hole, fill_mean / np.maximum(hole_share, 1e-12), photo_mean)
    del solved_in_box
    correction = np.zeros_like(small)
    correction[small_hole] = _solve(small, small_hole) - small[small_hole]
    return _Correction(solved, box, small_hole, correction)


def _composite_rows(image: np.ndarray, hole: np.ndarray, grid: HoleGrid, fill: np.ndarray, box,
                    channel: int, band: slice, solved: np.ndarray | None = None) -> np.ndarray:
    """The rows `band` of the `box` (top, left, bottom, right) of the photo's `channel` in [0, 1],
    float64, with the fill (on the grid) in the holes; with `solved` (bool, the box's shape), zero
    outside those holes."""
    top, left, bottom, right = box
    start, stop, _ = band.indices(bottom - top)
    rows = slice(top + start, top + stop)
    composite = image[rows, left:right, channel] / 255.0
    span = grid.span(rows.start, left, rows.stop, right)
    composite[hole[rows, left:right]] = fill[span][:, :, channel][grid.hole[span]]  # both in raster order
    if solved is not None:
        composite *= solved[start:stop]
    return composite


def _solve(composite: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The exact Poisson solution on `hole` of `composite` (fill inside, photo outside): the values
    of the `hole` pixels, in raster order. The system is assembled with 32-bit indices (SuperLU's)
    and no copies kept: an image's bound of unknowns makes it a few hundred thousand rows."""
    height, width = hole.shape
    rows, columns = np.nonzero(hole)
    unknowns = len(rows)
    index = np.full(hole.shape, -1, np.int32)
    index[rows, columns] = np.arange(unknowns, dtype=np.int32)
    degree = np.zeros(unknowns)
    right_side = np.zeros((unknowns, composite.shape[2]))
    matrix_rows, matrix_columns = [np.arange(unknowns, dtype=np.int32)], [np.arange(unknowns, dtype=np.int32)]
    touches_photo = False
    for dy, dx in _NEIGHBOURS:
        ny, nx = rows + dy, columns + dx
        inside_image = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        i, ny, nx = np.flatnonzero(inside_image), ny[inside_image], nx[inside_image]
        degree[i] += 1
        j = index[ny, nx]
        in_hole = j >= 0
        # Hole neighbour: an unknown, and the fill's gradient as guidance.
        matrix_rows.append(i[in_hole].astype(np.int32))
        matrix_columns.append(j[in_hole])
        right_side[i[in_hole]] += composite[rows[i[in_hole]], columns[i[in_hole]]] - composite[ny[in_hole], nx[in_hole]]
        # Photo neighbour: a known value, and no gradient across the edge (continue the photo).
        right_side[i[~in_hole]] += composite[ny[~in_hole], nx[~in_hole]]
        touches_photo |= bool((~in_hole).any())
    if not touches_photo:  # a hole over the whole image: no photo to blend into
        return composite[rows, columns]
    del index, rows, columns, ny, nx, inside_image, i, j, in_hole
    values = np.concatenate([degree, -np.ones(sum(map(len, matrix_rows[1:])))])
    matrix = scipy.sparse.csc_matrix((values, (np.concatenate(matrix_rows), np.concatenate(matrix_columns))),
                                     shape=(unknowns, unknowns))
    del values, matrix_rows, matrix_columns
    return scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A").solve(right_side)
