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
specks, costs no more than a few big holes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

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
    if min(max_unknowns, max_image_unknowns) < 4:  # a reduced solve has at least 2 x 2 pixels
        raise ValueError(f"max_unknowns and max_image_unknowns must be at least 4, got "
                         f"{max_unknowns} and {max_image_unknowns}")
    blended = np.zeros(fill.shape, np.float32)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=4)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if np.minimum(areas, max_unknowns).sum() > max_image_unknowns:
        _blend_region(image, hole, fill, hole, *_reduced_solver(int(areas.sum()), max_image_unknowns), blended)
        return blended
    small = np.flatnonzero(areas <= max_unknowns) + 1
    if len(small):  # one pixel of photo around the holes is their boundary
        _blend_region(image, hole, fill, np.isin(labels, small) if len(small) < count - 1 else hole,
                      1, _solve, blended)
    for label in np.flatnonzero(areas > max_unknowns) + 1:
        _blend_region(image, hole, fill, labels == label, *_reduced_solver(int(areas[label - 1]), max_unknowns),
                      blended)
    return blended


def _blend_region(image: np.ndarray, hole: np.ndarray, fill: np.ndarray, solved: np.ndarray, margin: int,
                  solve, blended: np.ndarray) -> None:
    """Writes into `blended` the solution on the `solved` holes, computed by `solve` on their
    bounding box grown by `margin`."""
    rows, columns = np.nonzero(solved.any(axis=1))[0], np.nonzero(solved.any(axis=0))[0]
    box = (slice(max(rows[0] - margin, 0), rows[-1] + 1 + margin),
           slice(max(columns[0] - margin, 0), columns[-1] + 1 + margin))
    region = solved[box]
    # Photo outside the holes, fill inside (never the removed object under a hole).
    composite = np.where(hole[box][:, :, None], fill[box], image[box] / 255.0)
    blended[box][region] = np.clip(solve(composite, region)[region], 0.0, 1.0)


def _solve(composite: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The exact Poisson solution on `hole` of `composite` (fill inside, photo outside)."""
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
        return composite.copy()
    off_diagonal = np.concatenate(matrix_rows), np.concatenate(matrix_columns)
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate([degree, -np.ones(len(off_diagonal[0]))]),
         (np.concatenate([np.arange(unknowns), off_diagonal[0]]),
          np.concatenate([np.arange(unknowns), off_diagonal[1]]))),
        shape=(unknowns, unknowns))
    solved = composite.copy()
    solved[rows, columns] = scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A").solve(right_side)
    return solved


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
        correction = np.where(small_hole[:, :, None], _solve(small, small_hole) - small, 0.0)
        # Normalised bilinear enlargement: only reduced hole pixels contribute to a hole pixel.
        size = (hole.shape[1], hole.shape[0])
        weight = cv2.resize(small_hole.astype(np.float64), size, interpolation=cv2.INTER_LINEAR)
        enlarged = cv2.resize(correction, size, interpolation=cv2.INTER_LINEAR)
        return composite + enlarged / np.maximum(weight, 1e-6)[:, :, None]

    return margin, solve
