"""Stage 3 (masks mode): the user's own mask for each image instead of a segmentation model.

`<masks>/<relative path with extension .png>`, nonzero = remove (with alpha: only where the mask is
not fully transparent). The result has the segmenter's shape (one instance labelled `mask`), so
selection, inpainting and metadata are shared.
"""
from __future__ import annotations

import io
import posixpath

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import PredictionResult
from PIL import Image, ImageOps

from models.segmentation.detections import Detections
from transforms.read import NAMESPACE
from transforms.records import count_error, skip_type_inference

USER_MASK_LABEL = "mask"
USER_MASK_LABEL_ID = 0
USER_MASKS_IDENTITY = "user-masks"


def mask_path(masks_root: str, relative_path: str) -> str:
    return FileSystems.join(masks_root.rstrip("/"), posixpath.splitext(relative_path)[0] + ".png")


def read_user_mask(path: str, width: int, height: int, frame: int = 0, frames: int = 1) -> np.ndarray:
    """The mask of `frame` (of `frames`, in a multi-frame image): the same frame of a mask with as
    many frames (an animated PNG, as `--write_masks` writes them), or a single mask for all."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"no mask file at {path}")
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = f.read()
    try:
        mask_image = Image.open(io.BytesIO(data))
        mask_frames = getattr(mask_image, "n_frames", 1)
        if mask_frames > 1 and mask_frames == frames:
            mask_image.seek(frame)
        mask_image.load()
    except Image.UnidentifiedImageError:  # its message names the buffer's memory address
        raise ValueError(f"mask {path} is not a readable image (starts with {data[:16]!r})") from None
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"mask {path} is not a readable image: {e}") from None
    if mask_frames not in (1, frames):
        raise ValueError(f"mask {path} has {mask_frames} frames, image has {frames}: give one mask "
                         "for all frames or one frame per frame")
    mask_image = ImageOps.exif_transpose(mask_image)
    if mask_image.size != (width, height):
        raise ValueError(f"mask {path} is {mask_image.size[0]}x{mask_image.size[1]}, "
                         f"image is {width}x{height}")
    return removed_pixels(mask_image)


def removed_pixels(mask_image: Image.Image) -> np.ndarray:
    """Where the mask's grey or colour is nonzero and, if it has alpha, its alpha too: an alpha
    channel says where the mask is drawn, so an opaque black background removes nothing."""
    if mask_image.mode in ("P", "PA"):  # indices say nothing: their colours do
        mask_image = mask_image.convert("RGBA")
    values = np.asarray(mask_image)
    if values.ndim == 2:
        return values != 0
    bands = mask_image.getbands()
    if "A" not in bands:
        return values.any(axis=2)
    alpha = bands.index("A")
    return np.delete(values, alpha, axis=2).any(axis=2) & (values[:, :, alpha] != 0)


def user_mask_detections(mask: np.ndarray) -> Detections:
    ys, xs = np.nonzero(mask)
    box = ([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0])
    present = 1 if len(xs) else 0
    return Detections.from_full_masks(
        mask[None][:present], boxes=np.asarray([box], np.float32)[:present],
        scores=np.ones(present, np.float32),
        label_ids=np.full(present, USER_MASK_LABEL_ID, np.int32),
        labels=[USER_MASK_LABEL] * present)


@skip_type_inference
class ReadUserMasks(beam.DoFn):
    """`(ImageInfo, rgb)` -> `(ImageInfo, PredictionResult(rgb, Detections))`, as the segmenter gives."""

    ERROR = "error"

    def __init__(self, masks_root: str):
        self._masks_root = masks_root
        self._errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    def process(self, element):
        info, rgb = element
        try:
            mask = read_user_mask(mask_path(self._masks_root, info.relative_path), info.width, info.height,
                                  info.frame, info.frames)
        except Exception as e:  # noqa: BLE001 - a missing or bad mask is this image's error row
            count_error(self._errors, info)
            yield beam.pvalue.TaggedOutput(self.ERROR, info.failed("mask", e))
            return
        yield info, PredictionResult(rgb, user_mask_detections(mask))
