"""Full-resolution inpainting with a fixed-size PConv U-Net.

The model was trained on S x S crops; photos are larger and of any aspect. The default `crop`
strategy inpaints each hole in a context window around it. The U-Net is fully convolutional, so
a window runs at the photo's own resolution on a canvas of S times a power of two, unless its
hole is deeper than the model learned to fill (then it is shrunk, aspect kept) or it is longer
than `max_side`. Only hole pixels are written back; every other pixel is returned bit-exact.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import keras
import numpy as np

from models.pconv.blend import poisson_blend_on_grid
from models.pconv.hole_grid import (WHOLE_RESIZE_PIXELS, HoleGrid, area_shrunk, bilinear_at, bounds, labelled,
                                    row_bands)
from models.runtime import usable_cpu_count
from models.uri import FetchedFile, ModelFileError, fetch

logger = logging.getLogger(__name__)

STRATEGIES = ("crop", "resize", "original")
# Mirror images each fill is averaged over, by `self_ensemble`: (flip rows, flip columns).
# Two passes: the pixel loss of the shipped model leaves speckle the mirrored fill largely cancels
# (+0.0004 to +0.0014 SSIM on bsds500/test), for ~0.08 s more per photo, small next to Mask R-CNN.
DEFAULT_SELF_ENSEMBLE = 2
ENSEMBLE_FLIPS = {1: ((False, False),), 2: ((False, False), (False, True)),
                  4: ((False, False), (False, True), (True, False), (True, True))}
# How the fill meets the photo: `poisson` blends the seam away (see models/pconv/blend.py; +0.003
# to +0.011 SSIM and +0.24 to +0.47 dB on bsds500/test), `none` pastes the network's fill as is.
BLENDS = ("poisson", "none")
DEFAULT_BLEND = "poisson"
MAX_REGIONS_PER_IMAGE = 64
MODEL_HINT = "The inpainting model is a Keras 3 .keras file saved from build_pconv_unet."


def on_device(device: str | None):
    """A scope that keeps Keras on the CPU for `cpu`; otherwise Keras's own choice (the GPU where
    there is one). TensorFlow's GPU is hidden by `configure_tensorflow`, but Keras on torch puts
    weights and inputs on CUDA whenever torch sees a GPU. The scope is per thread."""
    return keras.device("cpu") if device == "cpu" else contextlib.nullcontext()


def load_inpainting_model(uri: str, cache_dir: str | None = None) -> tuple[keras.Model, FetchedFile]:
    """Loads a `.keras` PConv U-Net (config + weights) from a local path or URI, in safe mode.

    PartialConv2D is registered when the models.pconv package is imported, which this module's
    import already did.
    """
    fetched = fetch(uri, cache_dir=cache_dir, hint=MODEL_HINT)
    if not fetched.path.endswith(".keras"):
        raise ModelFileError(f"inpainting model {uri!r} must be a .keras file. {MODEL_HINT}")
    try:
        model = keras.saving.load_model(fetched.path, compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError) as e:
        raise ModelFileError(
            f"cannot load inpainting model {uri!r}: {type(e).__name__}: {e}. {MODEL_HINT}") from e
    model_size(model)  # fail here, not on the first image, if it is not an [image, mask] model
    return model, fetched


def model_size(model: keras.Model) -> int:
    """Side of the square images the model takes, checking it has the PConv U-Net's inputs and
    output: another model would fail (or fill garbage) only on the first image."""
    shapes = [tuple(tensor.shape[1:]) for tensor in model.inputs]
    if len(shapes) != 2 or shapes[0] != shapes[1] or len(shapes[0]) != 3 or shapes[0][2] != 3 \
            or shapes[0][0] != shapes[0][1] or shapes[0][0] is None:
        raise ModelFileError(f"model {model.name!r} has inputs {shapes}: expected [image, mask], "
                             f"both (S, S, 3). {MODEL_HINT}")
    output_shapes = [tuple(tensor.shape[1:]) for tensor in model.outputs]
    if output_shapes != shapes[:1]:
        raise ModelFileError(f"model {model.name!r} has outputs {output_shapes}: expected one image of "
                             f"its inputs' shape, {shapes[0]}. {MODEL_HINT}")
    return int(shapes[0][0])


@dataclass(frozen=True)
class Window:
    """A part of one image, mirrored by `flip`, that goes through the model as one S x S input.

    Its box and `paste` are those of the mirrored image: where the window would be chosen if the
    mirror image were the photo (placement rounds the same way on every image, so it is not always
    the mirror of the unmirrored image's window)."""
    image_index: int
    top: int
    left: int
    bottom: int
    right: int
    paste: np.ndarray  # (bottom - top, right - left) bool: the hole pixels this window fills
    scale: float = 1.0  # resize factor of the window's pixels before the model sees them
    flip: tuple[bool, bool] = (False, False)

    def source(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the window in the unmirrored image of `height` x `width`."""
        top, bottom = (height - self.bottom, height - self.top) if self.flip[0] else (self.top, self.bottom)
        left, right = (width - self.right, width - self.left) if self.flip[1] else (self.left, self.right)
        return top, left, bottom, right


def _context_box(box, margin: float, min_side: int, height: int, width: int):
    """A square window of the hole box grown by `margin` of its longer side each way, inside the image."""
    top, left, bottom, right = box
    side = max(min_side, int(round(max(bottom - top, right - left) * (1 + 2 * margin))))
    win_h, win_w = min(side, height), min(side, width)
    win_top = min(max((top + bottom - win_h) // 2, 0), height - win_h)
    win_left = min(max((left + right - win_w) // 2, 0), width - win_w)
    return win_top, win_left, win_top + win_h, win_left + win_w


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _union(a, b):
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def crop_windows(image_index: int, hole: np.ndarray, margin: float, min_side: int,
                 flip: tuple[bool, bool] = (False, False)) -> list[Window]:
    """One window per group of hole regions whose context windows overlap, in the image mirrored
    by `flip`.

    Holes close together share a window (fewer model calls, and each sees the other as a hole,
    not as context); each window writes back only its own holes' pixels. Beyond
    MAX_REGIONS_PER_IMAGE regions (speckle) all holes share one window, which bounds the work.
    The holes are labelled on their grid (`HoleGrid`), not on the whole image.
    """
    height, width = hole.shape
    grid = HoleGrid.of(hole, flip)
    if not grid.hole.size:
        return []
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grid.hole.astype(np.uint8), connectivity=8)
    groups = []
    for label in range(1, count):
        top, left = int(stats[label, cv2.CC_STAT_TOP]), int(stats[label, cv2.CC_STAT_LEFT])
        bottom, right = top + int(stats[label, cv2.CC_STAT_HEIGHT]), left + int(stats[label, cv2.CC_STAT_WIDTH])
        box = (int(grid.rows[top]), int(grid.columns[left]), int(grid.rows[bottom - 1]) + 1,
               int(grid.columns[right - 1]) + 1)
        groups.append(([label], box))
    if len(groups) > MAX_REGIONS_PER_IMAGE:
        groups = [(list(range(1, count)), functools.reduce(_union, [box for _, box in groups]))]
    while True:
        windows = [_context_box(box, margin, min_side, height, width) for _, box in groups]
        pair = next(((i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))
                     if _overlap(windows[i], windows[j])), None)
        if pair is None:
            break
        (labels_i, box_i), (labels_j, box_j) = groups[pair[0]], groups.pop(pair[1])
        groups[pair[0]] = (labels_i + labels_j, _union(box_i, box_j))
    return [Window(image_index, *box, _group_mask(grid, labels, count, group_labels, box), flip=flip)
            for (group_labels, _), box in zip(groups, windows)]


def _group_mask(grid: HoleGrid, labels: np.ndarray, count: int, group_labels: list[int], box) -> np.ndarray:
    """The window's mask of the pixels of the holes labelled `group_labels` (on the grid)."""
    span, index = grid.positions(*box)
    paste = np.zeros((box[2] - box[0], box[3] - box[1]), bool)
    paste[index] = labelled(labels[span], group_labels, count)
    return paste


@functools.cache
def _cpu_pool() -> ThreadPoolExecutor:
    """Threads for the per-window and per-image CPU work around the model: OpenCV, large NumPy
    operations and the seam blend's sparse solve release the GIL, so a batch's images run side by
    side. On a GPU this work bounds the inpainter (the blend takes 0.11 s per 512x512 image with a
    person-sized hole); spread over 16 CPUs it took batch 8 at 512 px from 4.4 to 8.3 images/s on
    an H200. Shared by every Inpainter of the process, so concurrent callers never run more of it
    at once than there are CPUs."""
    return ThreadPoolExecutor(max_workers=usable_cpu_count(), thread_name_prefix="inpaint-cpu")


os.register_at_fork(after_in_child=_cpu_pool.cache_clear)  # a forked child has none of the threads


def resized_model(model: keras.Model, side: int) -> keras.Model:
    """The same U-Net and weights for `side` x `side` inputs (a multiple of the trained size)."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, side, side, 3]
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _flipped_view(array: np.ndarray, flip: tuple[bool, bool]) -> np.ndarray:
    """`array` flipped up-down and/or left-right (its own inverse), a view."""
    flip_rows, flip_columns = flip
    return array[::-1 if flip_rows else 1, ::-1 if flip_columns else 1]


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging to shrink, bilinear to enlarge: both only mix pixels whose footprints touch."""
    if array.shape[:2] == (height, width):
        return array
    shrinking = height * width < array.shape[0] * array.shape[1]
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _resized_rows(rows_of, shape: tuple[int, int], height: int, width: int) -> np.ndarray:
    """`_resize` of the float array of `shape` whose rows `rows_of(slice)` makes, a shrink a band of
    rows at a time (`area_shrunk`): a removed person's window can be most of a big photo."""
    if height <= shape[0] and width <= shape[1] and (height, width) != shape:
        return area_shrunk(rows_of, *shape, height, width)
    return _resize(rows_of(slice(0, shape[0])), height, width)


def _unit_float(pixels: np.ndarray, band: slice) -> np.ndarray:
    """The rows `band` of uint8 `pixels` as float32 in [0, 1]."""
    values = pixels[band].astype(np.float32)
    return np.divide(values, 255.0, out=values)


class Inpainter:
    """Fills the holes of uint8 RGB images of any size with a PConv U-Net.

    strategy: `crop` (default) inpaints a context window around each hole; `resize` runs the whole
    image at model size; `original` requires images already at model size. `margin` is the
    context added around a hole's bounding box on each side, as a fraction of its longer side
    (windows are at least model-size, clamped to the image). Windows from all images of one call
    go through the model together, `batch_size` at a time. `self_ensemble` 2 or 4 averages the
    fill of each image with those of its mirror images (left-right; and up-down), which cancels
    much of the speckle a small model leaves, at 2 or 4 times the inpainting work. `blend`
    `poisson` (default) blends each fill into the photo across the hole's edge; `none` pastes it.
    """

    def __init__(self, model: keras.Model, strategy: str = "crop", margin: float = 0.5,
                 batch_size: int = 8, identity: str | None = None, max_side: int | None = None,
                 self_ensemble: int = DEFAULT_SELF_ENSEMBLE, blend: str = DEFAULT_BLEND,
                 device: str | None = None):
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        if self_ensemble not in ENSEMBLE_FLIPS:
            raise ValueError(f"self_ensemble must be one of {sorted(ENSEMBLE_FLIPS)}, got {self_ensemble}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.size = model_size(model)
        self.strategy = strategy
        self.margin = margin
        self.batch_size = batch_size
        self.self_ensemble = self_ensemble
        self.blend = blend
        self.device = device
        # The strategy, the ensemble and the blend change the output bytes, so they are part of the
        # inpainter's name.
        self.identity = ((identity or f"{model.name}-{self.size}") + f"+{strategy}"
                         + (f"+mirror{self_ensemble}" if self_ensemble > 1 else "")
                         + ("+poisson" if blend == "poisson" else ""))
        # Longest window side run unscaled by `crop`: 4 S keeps whole 1 MP photos at full detail
        # while bounding the canvas (and memory) for huge windows.
        self.max_side = max_side or 4 * self.size
        self._models = {self.size: model}
        self._models_lock = threading.Lock()  # Beam's threads share one Inpainter: build each canvas once

    @classmethod
    def load(cls, uri: str, strategy: str = "crop", margin: float = 0.5, batch_size: int = 8,
             cache_dir: str | None = None, max_side: int | None = None,
             self_ensemble: int = DEFAULT_SELF_ENSEMBLE, blend: str = DEFAULT_BLEND,
             device: str | None = None) -> Inpainter:
        """An Inpainter whose identity names the model and the exact weights file, `name-S@sha256[:12]`,
        the strategy (`+crop`), the self-ensemble when there is one (`+mirror2`) and the blend
        (`+poisson`). `device` `cpu` keeps the model on the CPU (see `on_device`)."""
        with on_device(device):
            model, fetched = load_inpainting_model(uri, cache_dir=cache_dir)
        identity = f"{model.name}-{model_size(model)}@{fetched.short_id}"
        logger.info("inpainting model %s from %s, strategy %s, self-ensemble %d, blend %s", identity, uri,
                    strategy, self_ensemble, blend)
        return cls(model, strategy=strategy, margin=margin, batch_size=batch_size, identity=identity,
                   max_side=max_side, self_ensemble=self_ensemble, blend=blend, device=device)

    def inpaint(self, images: list[np.ndarray], holes: list[np.ndarray]) -> list[np.ndarray]:
        """Returns copies of `images` (uint8 (H, W, 3)) with the `holes` (bool (H, W)) filled in.

        Besides the copies, the working memory is that of the windows and of the holes' grids
        (`HoleGrid`), not of the images: fills are kept on the grids, and the mirror images of the
        ensemble are only ever made of windows."""
        if len(images) != len(holes):
            raise ValueError(f"{len(images)} images but {len(holes)} hole masks")
        for index, (image, hole) in enumerate(zip(images, holes)):
            self._check(index, image, hole)
        flips = ENSEMBLE_FLIPS[self.self_ensemble]
        pool = _cpu_pool()
        grids = list(pool.map(HoleGrid.of, holes))
        fills = [np.zeros(grid.hole.shape + (3,), np.float32) for grid in grids]
        for flip in flips:
            self._fill(images, holes, flip, grids, fills)
        return list(pool.map(functools.partial(self._finish, len(flips)), images, holes, grids, fills))

    def _finish(self, passes: int, image: np.ndarray, hole: np.ndarray, grid: HoleGrid,
                fill: np.ndarray) -> np.ndarray:
        """The output image: the mean fill of the ensemble's passes, blended, in the holes only."""
        fill /= passes
        if self.blend == "poisson":
            poisson_blend_on_grid(image, hole, grid, fill)
        # In place on the grid: a removed person's pixel indices or float copies are photo-sized.
        np.multiply(fill, 255.0, out=fill)
        np.clip(np.rint(fill, out=fill), 0, 255, out=fill)
        output = image.copy()
        for band in row_bands(len(grid.rows), 3 * len(grid.columns)):  # `output[lines]` is a copy: by bands
            lines = np.ix_(grid.rows[band], grid.columns)
            patch = output[lines]
            np.copyto(patch, fill[band], casting="unsafe", where=grid.hole[band][:, :, None])
            output[lines] = patch
        return output

    def _fill(self, images: list[np.ndarray], holes: list[np.ndarray], flip: tuple[bool, bool],
              grids: list[HoleGrid], fills: list[np.ndarray]) -> None:
        """Adds to `fills` (on `grids`) the model's float fill in [0, 1] of every hole pixel of the
        images mirrored by `flip`, mirrored back."""
        windows = [window for image_windows in _cpu_pool().map(
                       self._windows, range(len(images)), images, holes, [flip] * len(images))
                   for window in image_windows]
        by_canvas: dict[int, list[Window]] = {}
        for window in windows:
            by_canvas.setdefault(self._canvas_side(window), []).append(window)
        for side, group in sorted(by_canvas.items()):
            rows = self._rows_per_call(side)
            for start in range(0, len(group), rows):
                chunk = group[start:start + rows]
                predictions = self._predict(side, *self._model_inputs(chunk, side, rows, images, holes))
                # Windows of one image write disjoint pixels (each only its own holes'), so in any order.
                list(_cpu_pool().map(lambda w, p: self._paste(grids[w.image_index], fills[w.image_index], w, p),
                                     chunk, predictions))

    def _rows_per_call(self, side: int) -> int:
        """Windows per model call on `side` x `side` canvases: `batch_size` at model size, as many
        pixels on larger canvases (a quarter as many rows at twice the side, at least one).

        Always this many rows, padded: convolution kernels pick their blocking by batch size, which
        moves results by ~1e-7 and so flips the odd rounded pixel; one shape per canvas makes each
        window's output independent of which windows it was grouped with, so reruns and resumed
        runs write identical bytes. Padding a lone large window to `batch_size` rows computed it
        `batch_size` times over (a 4000x3000 photo's one hole: 0.9 s at batch 8 on CPU, 0.3 s alone).
        """
        return max(1, self.batch_size * self.size ** 2 // side ** 2)

    def _model_inputs(self, chunk: list[Window], side: int, rows: int, images: list[np.ndarray],
                      holes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(images, masks), each (rows, side, side, 3): one row per window, written in place by the
        pool (no stacking copy on the calling thread), then all-known padding rows."""
        batch_images = np.zeros((rows, side, side, 3), np.float32)
        batch_masks = np.zeros((rows, side, side, 3), np.float32)
        batch_masks[len(chunk):] = 1.0
        list(_cpu_pool().map(
            lambda w, image, mask: self._model_input(images[w.image_index], holes[w.image_index], w, image, mask),
            chunk, batch_images, batch_masks))
        return batch_images, batch_masks

    def _predict(self, side: int, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The model's output for a batch of `side` x `side` inputs, building that canvas's model once."""
        with on_device(self.device):
            with self._models_lock:
                if side not in self._models:
                    self._models[side] = resized_model(self.model, side)
            return keras.ops.convert_to_numpy(self._models[side].predict_on_batch([images, masks]))

    def _check(self, index: int, image: np.ndarray, hole: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {index}: expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        if hole.dtype != bool or hole.shape != image.shape[:2]:
            raise ValueError(f"hole mask {index}: expected bool {image.shape[:2]}, got {hole.dtype} {hole.shape}")
        if self.strategy == "original" and image.shape[:2] != (self.size, self.size):
            raise ValueError(f"image {index} is {image.shape[1]}x{image.shape[0]}: strategy 'original' "
                             f"needs {self.size}x{self.size} images; use 'crop' or 'resize'")

    def _windows(self, index: int, image: np.ndarray, hole: np.ndarray,
                 flip: tuple[bool, bool] = (False, False)) -> list[Window]:
        if not hole.any():
            return []
        if self.strategy == "crop":
            return [dataclasses.replace(w, scale=self._crop_scale(w))
                    for w in crop_windows(index, hole, self.margin, self.size, flip)]
        return [Window(index, 0, 0, image.shape[0], image.shape[1], _flipped_view(hole, flip), flip=flip)]

    def _crop_scale(self, window: Window) -> float:
        """Full resolution, unless the hole is too thick for the model to see across it.

        What makes a hole hard is its depth: the farthest hole pixel from any known pixel. The
        model learned holes up to about `size / 8` deep, so a deeper hole (a removed person) is
        shrunk until it fits, while thin or scattered holes keep every pixel of detail. Windows
        longer than `max_side` are shrunk to it, bounding the canvas.

        Only pixels inside the window are known: past its edge the model sees padding, a hole. A
        window reaches past its holes everywhere but at the image border, so a hole at the border
        is measured from the photo inside, not from the border (OpenCV's distance transform treats
        outside the array as never known, which is that).
        """
        longest = max(window.bottom - window.top, window.right - window.left)
        # On the holes' box and one line around it (known, where inside the window): every path to
        # a known pixel farther out crosses that line, so the distances are the window's.
        first_row, first_column, last_row, last_column = bounds(window.paste)
        around = window.paste[max(first_row - 1, 0):last_row + 2, max(first_column - 1, 0):last_column + 2]
        distances = cv2.distanceTransform(around.astype(np.uint8), cv2.DIST_L2, 3)
        depth = min(float(distances.max()), float(longest))  # no known pixel at all: the window's side
        return min(1.0, self.size / 8 / max(depth, 1.0), self.max_side / longest)

    def _run_shape(self, window: Window) -> tuple[int, int]:
        """(height, width) the window runs at: scaled by its `scale` for `crop` (aspect kept);
        the model size for `resize` and `original`."""
        if self.strategy != "crop":
            return self.size, self.size
        height, width = window.bottom - window.top, window.right - window.left
        return max(1, round(height * window.scale)), max(1, round(width * window.scale))

    def _canvas_side(self, window: Window) -> int:
        """The square input the window is placed in: the model size times a power of two, so
        every encoder level halves it evenly and windows fall in few groups (each group is one
        fixed-shape batch, and each shape builds a model once)."""
        return self.size * 2 ** max(0, math.ceil(math.log2(max(self._run_shape(window)) / self.size)))

    def _model_input(self, image: np.ndarray, hole: np.ndarray, window: Window,
                     canvas: np.ndarray, mask: np.ndarray) -> None:
        """Writes the window into a zeroed (side, side, 3) `canvas` and `mask`; padding, and any
        pixel that mixes in hole content when resized, count as holes (the partial convolutions
        ignore them). The window is read in float one channel and, where it is shrunk, one band of
        rows at a time: a removed person's window can be most of a big photo.

        Where that leaves no known pixel (a hole over all but a line of the window, or specks
        denser than a window shrunk to `max_side`, or a photo shrunk by `resize`, has a hole
        pixel in every footprint), a pixel is known where any of its footprint is, with the mean
        of its known pixels: still no hole content, and the model, which would paint a window
        without a known pixel black, fills from them."""
        height, width = self._run_shape(window)
        top, left, bottom, right = window.source(*hole.shape)
        window_shape = (bottom - top, right - left)
        hole_window = _flipped_view(hole[top:bottom, left:right], window.flip)
        # The same interpolation for both: a pixel is hole-free exactly when no hole pixel contributed.
        known = _resized_rows(lambda band: hole_window[band].astype(np.float32), window_shape, height, width) <= 0
        known_share = None
        if not known.any():
            # Exactly 0 where no known pixel contributed: the sum of zeros.
            known_share = _resized_rows(lambda band: (~hole_window[band]).astype(np.float32), window_shape,
                                        height, width)
            known = known_share > 0
        mask[:height, :width] = known[:, :, None]
        for channel in range(3):
            photo_window = _flipped_view(image[top:bottom, left:right, channel], window.flip)
            if known_share is None:
                resized = _resized_rows(functools.partial(_unit_float, photo_window), window_shape, height, width)
                canvas[:height, :width, channel] = resized * known
            else:
                known_sum = _resized_rows(lambda band: _unit_float(photo_window, band) * ~hole_window[band],
                                          window_shape, height, width)
                np.divide(known_sum, known_share, out=canvas[:height, :width, channel], where=known)

    def _paste(self, grid: HoleGrid, fill: np.ndarray, window: Window, prediction: np.ndarray) -> None:
        """Adds the window's prediction, mirrored back, to `fill` (on `grid`) on its own holes.

        A window of up to WHOLE_RESIZE_PIXELS is resized whole; a larger one (a removed
        person's in a big photo) is enlarged at the grid's pixels only, a band of rows at a time."""
        height, width = self._run_shape(window)
        window_height, window_width = window.bottom - window.top, window.right - window.left
        span, (rows, columns) = grid.positions(*window.source(grid.height, grid.width))
        paste = _flipped_view(window.paste, window.flip)[rows, columns]
        # The grid's lines in the mirrored window, which the prediction is of.
        rows, columns = rows[:, 0], columns[0]
        rows = window_height - 1 - rows if window.flip[0] else rows
        columns = window_width - 1 - columns if window.flip[1] else columns
        source = prediction[:height, :width].astype(np.float32, copy=False)
        window_pixels = window_height * window_width
        if window_pixels <= WHOLE_RESIZE_PIXELS or window_pixels < height * width:  # small, or shrunk
            source = _resize(source, window_height, window_width)
        region = fill[span]
        for band in row_bands(len(rows), 3 * len(columns)):
            filled = bilinear_at(source, window_height, window_width, rows[band], columns)
            keep = paste[band]
            region[band][keep] += np.clip(filled[keep], 0.0, 1.0).astype(np.float32)
