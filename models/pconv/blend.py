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
their own rows and columns, not for the box between them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from models.pconv.hole_grid import HoleGrid

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
    blended = poisson_blend_on_grid(image, hole, grid, grid.gather(fill), max_unknowns, max_image_unknowns)
    return grid.scatter(blended, 0, 0, *hole.shape)


def poisson_blend_on_grid(image: np.ndarray, hole: np.ndarray, grid: HoleGrid, fill: np.ndarray,
                          max_unknowns: int = DEFAULT_MAX_UNKNOWNS,
                          max_image_unknowns: int = DEFAULT_MAX_IMAGE_UNKNOWNS) -> np.ndarray:
    """`poisson_blend` with the fill and the result on the holes' grid (`HoleGrid.of(hole)`): the
    work is the holes' neighbourhoods', not the image's, except where a hole's correction is solved
    at a reduced scale (on its bounding box, grown by a margin)."""
    if min(max_unknowns, max_image_unknowns) < 4:  # a reduced solve has at least 2 x 2 pixels
        raise ValueError(f"max_unknowns and max_image_unknowns must be at least 4, got "
                         f"{max_unknowns} and {max_image_unknowns}")
    blended = np.zeros(fill.shape, np.float32)
    if not grid.hole.size:
        return blended
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grid.hole.astype(np.uint8), connectivity=4)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if np.minimum(areas, max_unknowns).sum() > max_image_unknowns:
        _blend_reduced(image, hole, grid, fill, grid.hole, *_reduced_solver(int(areas.sum()), max_image_unknowns),
                       blended)
        return blended
    small = np.flatnonzero(areas <= max_unknowns) + 1
    if len(small):
        _blend_exact(image, grid, fill, np.isin(labels, small) if len(small) < count - 1 else grid.hole, blended)
    for label in np.flatnonzero(areas > max_unknowns) + 1:
        _blend_reduced(image, hole, grid, fill, labels == label, *_reduced_solver(int(areas[label - 1]), max_unknowns),
                       blended)
    return blended


def _bounds(solved: np.ndarray) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) of the `solved` pixels."""
    rows, columns = np.flatnonzero(solved.any(axis=1)), np.flatnonzero(solved.any(axis=0))
    return rows[0], columns[0], rows[-1], columns[-1]


def _blend_exact(image: np.ndarray, grid: HoleGrid, fill: np.ndarray, solved: np.ndarray,
                 blended: np.ndarray) -> None:
    """Writes into `blended` the exact solution on the `solved` holes, all in one system, built on
    the grid: one line of photo around the holes is their boundary, and the grid holds each hole
    pixel's true neighbours, so the system is the one on the image."""
    first_row, first_column, last_row, last_column = _bounds(solved)
    box = slice(max(first_row - 1, 0), last_row + 2), slice(max(first_column - 1, 0), last_column + 2)
    photo = image[np.ix_(grid.rows[box[0]], grid.columns[box[1]])]
    # Photo outside the holes, fill inside (never the removed object under a hole).
    composite = np.where(grid.hole[box][:, :, None], fill[box], photo / 255.0)
    region = solved[box]
    blended[box][region] = np.clip(_solve(composite, region), 0.0, 1.0)


def _blend_reduced(image: np.ndarray, hole: np.ndarray, grid: HoleGrid, fill: np.ndarray, solved: np.ndarray,
                   margin: int, solve, blended: np.ndarray) -> None:
    """Writes into `blended` the solution on the `solved` holes (on the grid), computed by `solve`
    on their bounding box in the image grown by `margin` (a reduced solve needs the geometry)."""
    first_row, first_column, last_row, last_column = _bounds(solved)
    top, left = max(int(grid.rows[first_row]) - margin, 0), max(int(grid.columns[first_column]) - margin, 0)
    bottom = min(int(grid.rows[last_row]) + 1 + margin, hole.shape[0])
    right = min(int(grid.columns[last_column]) + 1 + margin, hole.shape[1])
    span = grid.span(top, left, bottom, right)
    # Photo outside the holes, fill inside, built in place: the box may be most of a big photo.
    composite = image[top:bottom, left:right] / 255.0
    composite[hole[top:bottom, left:right]] = fill[span][grid.hole[span]]  # both in raster order
    values = np.clip(solve(composite, grid.scatter(solved, top, left, bottom, right)), 0.0, 1.0)
    blended[span][solved[span]] = values


def _solve(composite: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The exact Poisson solution on `hole` of `composite` (fill inside, photo outside): the values
    of the `hole` pixels, in raster order."""
    height, width = hole.shape
    rows, columns = np.nonzero(hole)
    unknowns = len(rows)
    index = np.full(hole.shape, -1, np.int64)
    index[rows, columns] = np.arange(unknowns)
    degree = np.zeros(unknowns)
    right_side = np.zeros((unknowns, composite.shape[2]))
    matrix_rows, matrix_columns = [], []
    touches_photo = False
    for dy, dx in _NEIGHBOURS:
        ny, nx = rows + dy, columns + dx
        inside_image = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        i, ny, nx = np.nonzero(inside_image)[0], ny[inside_image], nx[inside_image]
        degree[i] += 1
        j = index[ny, nx]
        in_hole = j >= 0
        # Hole neighbour: an unknown, and the fill's gradient as guidance.
        matrix_rows.append(i[in_hole])
        matrix_columns.append(j[in_hole])
        right_side[i[in_hole]] += composite[rows[i[in_hole]], columns[i[in_hole]]] - composite[ny[in_hole], nx[in_hole]]
        # Photo neighbour: a known value, and no gradient across the edge (continue the photo).
        right_side[i[~in_hole]] += composite[ny[~in_hole], nx[~in_hole]]
        touches_photo |= bool((~in_hole).any())
    if not touches_photo:  # a hole over the whole image: no photo to blend into
        return composite[rows, columns]
    off_diagonal = np.concatenate(matrix_rows), np.concatenate(matrix_columns)
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate([degree, -np.ones(len(off_diagonal[0]))]),
         (np.concatenate([np.arange(unknowns), off_diagonal[0]]),
          np.concatenate([np.arange(unknowns), off_diagonal[1]]))),
        shape=(unknowns, unknowns))
    return scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A").solve(right_side)


def _reduced_solver(area: int, max_unknowns: int):
    """(margin, solve) for a component of `area` > `max_unknowns` pixels: `solve` finds the
    correction (solution minus fill) at a scale with at most `max_unknowns` unknowns and enlarges
    it smoothly; the margin leaves at least two reduced pixels of pure photo around the hole."""
    scale = math.sqrt(max_unknowns / area) * 0.9
    margin = math.ceil(2 / scale) + 1

    def solve(composite: np.ndarray, hole: np.ndarray) -> np.ndarray:
        nonlocal scale
        while True:
            small_size = (max(2, round(hole.shape[1] * scale)), max(2, round(hole.shape[0] * scale)))
            # A reduced pixel is a hole if any of its footprint is: its value would mix the hole in.
            hole_share = cv2.resize(hole.astype(np.float64), small_size, interpolation=cv2.INTER_AREA)
            small_hole = hole_share > 0
            if small_hole.sum() <= max_unknowns:
                break
            scale *= 0.9
        # Reduced hole pixels take the mean of their fill pixels only: a fill/photo mix at the edge
        # would be a step in the guidance, which the solve would keep.
        fill_mean = cv2.resize(composite * hole[:, :, None], small_size, interpolation=cv2.INTER_AREA)
        small = np.where(small_hole[:, :, None], fill_mean / np.maximum(hole_share, 1e-12)[:, :, None],
                         cv2.resize(composite, small_size, interpolation=cv2.INTER_AREA))
        correction = np.zeros_like(small)
        correction[small_hole] = _solve(small, small_hole) - small[small_hole]
        # Normalised bilinear enlargement: only reduced hole pixels contribute to a hole pixel.
        # Kept for the hole pixels only, one enlarged array at a time.
        size = (hole.shape[1], hole.shape[0])
        weight = np.maximum(cv2.resize(small_hole.astype(np.float64), size, interpolation=cv2.INTER_LINEAR)[hole],
                            1e-6)
        values = cv2.resize(correction, size, interpolation=cv2.INTER_LINEAR)[hole]
        values /= weight[:, None]
        values += composite[hole]
        return values

    return margin, solve
