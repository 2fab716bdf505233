"""The part of an image the holes live in, without the lines of photo between them.

A photo with two small holes in opposite corners has its holes' pixels in a few hundred rows and
columns. `HoleGrid` keeps just those rows and columns (with their neighbours), so per-pixel work
on the holes (labelling them, keeping their fill, blending it) costs memory for those lines, not
for the whole image. `bilinear_at` enlarges a window's fill (or a reduced-scale correction) at
those pixels only, without the enlarged array, and `area_shrunk` shrinks a window (or a blend's
box) a band of rows at a time, without its whole float copy.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

# Pixels (times channels) of one band of rows that `bilinear_at`'s callers compute at a time.
BAND_PIXELS = 1 << 18
# Resizes to or from up to this many pixels are made whole by OpenCV (enlarging 50x faster, and tens
# of MiB at most); larger ones, a removed person's window in a big photo, a band at a time: shrunk
# by `area_shrunk`, enlarged by `bilinear_at` at the holes' pixels.
WHOLE_RESIZE_PIXELS = 1 << 20


def _kept_lines(occupied: np.ndarray) -> np.ndarray:
    """Indices of the lines (rows or columns) holding a hole pixel or next to one, plus where needed
    one line of each gap between them, so that every kept line keeps its index's parity.

    Next to a kept hole line is always its true neighbour, so a hole pixel's 4- and 8-neighbours
    in the grid are those in the image; a gap leaves at least one empty line between holes, so
    holes apart stay apart. With parity kept, OpenCV's block-based labelling (2 x 2 blocks in
    raster order) numbers the grid's holes in the image's order.
    """
    near = occupied.copy()
    near[1:] |= occupied[:-1]
    near[:-1] |= occupied[1:]
    kept: list[int] = []
    for line in np.flatnonzero(near).tolist():
        if len(kept) % 2 != line % 2:
            kept.append(line - 1)  # in a gap: `line - 1` is empty and not kept
        kept.append(line)
    return np.array(kept, np.intp)


def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) of the True pixels of a non-empty `mask`."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(columns[0]), int(rows[-1]), int(columns[-1])


def labelled(labels: np.ndarray, wanted, count: int) -> np.ndarray:
    """Where `labels` (from OpenCV's labelling, below `count`) is one of `wanted`: `np.isin` through
    a lookup table, as NumPy's own makes int64 copies of `labels`, most of a photo for people."""
    table = np.zeros(count, bool)
    table[wanted] = True
    return table[labels]


def row_bands(rows: int, row_pixels: int):
    """Slices of `rows` rows of `row_pixels` values each, about BAND_PIXELS values a band."""
    step = max(1, BAND_PIXELS // max(row_pixels, 1))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _whole_number(scale: float) -> bool:
    return abs(scale - round(scale)) < np.finfo(float).eps


def area_shrunk(rows_of: Callable[[slice], np.ndarray], height: int, width: int,
                target_height: int, target_width: int) -> np.ndarray:
    """OpenCV's INTER_AREA shrink to `target_height` x `target_width` (each at most the source's) of
    the float `height` x `width` array whose rows `rows_of(slice)` makes, about BAND_PIXELS at a
    time: a removed person's window can be most of a big photo, and its float copy 1.3x the photo's
    bytes per channel. Made whole by OpenCV up to WHOLE_RESIZE_PIXELS.

    The same bytes as one `cv2.resize`: OpenCV shrinks each row to the target width, then adds up
    rows in a fixed order, so shrinking bands of rows to the target width (each row kept: weights
    of 1) and then their stack to the target height repeats its operations. Where both scales are
    whole numbers OpenCV averages blocks instead: bands of whole blocks of rows. Where one is, that
    pass alone would be block averaging, so it is made by `_area_pass`, OpenCV's weights in NumPy.
    """
    if height * width <= WHOLE_RESIZE_PIXELS:
        return cv2.resize(rows_of(slice(0, height)), (target_width, target_height), interpolation=cv2.INTER_AREA)
    # OpenCV's scales, rounded as there.
    whole_rows, whole_columns = (_whole_number(1.0 / (target / source))
                                 for source, target in ((height, target_height), (width, target_width)))
    if whole_rows and whole_columns:
        block = height // target_height
        return np.concatenate([cv2.resize(rows_of(slice(start, start + block * blocks)), (target_width, blocks),
                                          interpolation=cv2.INTER_AREA)
                               for start, blocks in _block_bands(target_height, block, width)])
    rows_shrunk = np.concatenate([
        _area_pass(band_rows, 1, target_width) if whole_columns
        else cv2.resize(band_rows, (target_width, len(band_rows)), interpolation=cv2.INTER_AREA)
        for band_rows in map(rows_of, row_bands(height, width))])
    if whole_rows:
        return _area_pass(rows_shrunk, 0, target_height)
    return cv2.resize(rows_shrunk, (target_width, target_height), interpolation=cv2.INTER_AREA)


def _block_bands(blocks: int, block: int, width: int):
    """(first row, blocks) of bands of whole `block`-row blocks of `width` pixels, about BAND_PIXELS a band."""
    step = max(1, BAND_PIXELS // (width * block))
    return [(start * block, min(step, blocks - start)) for start in range(0, blocks, step)]


def _area_pass(array: np.ndarray, axis: int, target: int) -> np.ndarray:
    """`array` shrunk along `axis` to `target` lines as OpenCV's INTER_AREA does it when the other
    axis is shrunk by a fraction: its weights (`computeResizeAreaTab`), summed in its order."""
    shrunk = np.zeros(array.shape[:axis] + (target,) + array.shape[axis + 1:], array.dtype)
    weight_shape = (target,) + (1,) * (array.ndim - axis - 1)
    for index, weight in _area_taps(array.shape[axis], target):
        shrunk += np.take(array, index, axis=axis) * weight.reshape(weight_shape)
    return shrunk


@functools.lru_cache(maxsize=16)
def _area_taps(source: int, target: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source line, float32 weight) of each target line, tap by tap (a line with fewer taps adds
    0 * line 0): the same for every band of one window, so worked out once."""
    scale = 1.0 / (target / source)
    taps: list[list[tuple[int, np.float32]]] = []
    for line in range(target):
        start = line * scale
        end = start + scale
        cell = min(scale, source - start)
        last = min(math.floor(end), source - 1)
        first = min(math.ceil(start), last)
        line_taps = [(first - 1, np.float32((first - start) / cell))] if first - start > 1e-3 else []
        line_taps += [(pixel, np.float32(1.0 / cell)) for pixel in range(first, last)]
        if end - last > 1e-3:
            line_taps.append((last, np.float32(min(end - last, 1.0, cell) / cell)))
        taps.append(line_taps)
    return [(np.array([line_taps[tap][0] if tap < len(line_taps) else 0 for line_taps in taps]),
             np.array([line_taps[tap][1] if tap < len(line_taps) else 0 for line_taps in taps], np.float32))
            for tap in range(max(map(len, taps)))]


def _linear_taps(source: int, target: int, at: np.ndarray):
    """(first source pixel, second, weight of the second) of the `at` pixels of a line of `source`
    pixels enlarged to `target`: OpenCV's INTER_LINEAR geometry, pixel centres aligned, edges
    clamped."""
    position = (at + 0.5) * (source / target) - 0.5
    first = np.floor(position).astype(np.intp)
    weight = position - first
    clamped = (first < 0) | (first >= source - 1)
    first = np.clip(first, 0, source - 1)
    weight[clamped] = 0.0
    return first, np.minimum(first + 1, source - 1), weight


def bilinear_at(array: np.ndarray, height: int, width: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The pixels `rows` x `columns` of `array` (H, W[, C]) enlarged bilinearly to `height` x `width`,
    without making the enlarged array: a big photo's holes need a window's fill (or a blend's
    reduced-scale correction) at their own pixels only. Float64 where interpolated; an unscaled
    axis is indexed, so an array already of that size gives its own pixels."""
    return _enlarged_axis(_enlarged_axis(array, 0, height, rows), 1, width, columns)


def _enlarged_axis(array: np.ndarray, axis: int, target: int, at: np.ndarray) -> np.ndarray:
    if array.shape[axis] == target:
        return np.take(array, at, axis=axis)
    first, second, weight = _linear_taps(array.shape[axis], target, np.asarray(at, np.float64))
    weight = np.expand_dims(weight, tuple(range(1, array.ndim - axis)))
    enlarged = np.take(array, first, axis=axis) * (1.0 - weight)
    enlarged += np.take(array, second, axis=axis) * weight
    return enlarged


def _unmirrored(rows: np.ndarray, columns: np.ndarray, height: int, width: int, flip: tuple[bool, bool]):
    """The index into the unmirrored image of the lines `rows` x `columns` of its mirror image."""
    return np.ix_(height - 1 - rows if flip[0] else rows, width - 1 - columns if flip[1] else columns)


@dataclass(frozen=True)
class HoleGrid:
    """The rows and columns of one image (mirrored by `flip`: (rows, columns)) that hold its holes.

    `rows` and `columns` index the mirrored image; `hole` is the mirrored hole on them.
    """
    height: int
    width: int
    rows: np.ndarray
    columns: np.ndarray
    hole: np.ndarray
    flip: tuple[bool, bool] = (False, False)

    @classmethod
    def of(cls, hole: np.ndarray, flip: tuple[bool, bool] = (False, False)) -> HoleGrid:
        height, width = hole.shape
        row_holes, column_holes = hole.any(axis=1), hole.any(axis=0)
        rows = _kept_lines(row_holes[::-1] if flip[0] else row_holes)
        columns = _kept_lines(column_holes[::-1] if flip[1] else column_holes)
        return cls(height, width, rows, columns, hole[_unmirrored(rows, columns, height, width, flip)], flip)

    def span(self, top: int, left: int, bottom: int, right: int) -> tuple[slice, slice]:
        """The grid's rows and columns inside a box of the (mirrored) image."""
        return (slice(*np.searchsorted(self.rows, (top, bottom))),
                slice(*np.searchsorted(self.columns, (left, right))))

    def positions(self, top: int, left: int, bottom: int, right: int):
        """(grid span, index into the box's arrays that gathers the grid's pixels in that span)."""
        span = self.span(top, left, bottom, right)
        return span, np.ix_(self.rows[span[0]] - top, self.columns[span[1]] - left)

    def gather(self, array: np.ndarray) -> np.ndarray:
        """`array` (the unmirrored image's shape) on the grid, mirrored as the grid is."""
        return array[_unmirrored(self.rows, self.columns, self.height, self.width, self.flip)]

    def scatter(self, values: np.ndarray, top: int, left: int, bottom: int, right: int) -> np.ndarray:
        """A zeroed array of the box's shape with the grid's `values` in that box put in place."""
        span, index = self.positions(top, left, bottom, right)
        box = np.zeros((bottom - top, right - left) + values.shape[2:], values.dtype)
        box[index] = values[span]
        return box
