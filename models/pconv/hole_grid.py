"""The part of an image the holes live in, without the lines of photo between them.

A photo with two small holes in opposite corners has its holes' pixels in a few hundred rows and
columns. `HoleGrid` keeps just those rows and columns (with their neighbours), so per-pixel work
on the holes (labelling them, keeping their fill, blending it) costs memory for those lines, not
for the whole image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
