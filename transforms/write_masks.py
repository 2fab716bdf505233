"""Stage 6b (`--write_masks`): each image's removed region as a PNG under <output>/masks/, named
as `--masks` reads it, so a wrong mask can be corrected by hand and the image run again in masks
mode."""
from __future__ import annotations

import io
import logging

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from transforms.read import MASKS_FOLDER, NAMESPACE
from transforms.records import CLEANED, UNCHANGED, ImageInfo, skip_type_inference
from transforms.select import removed_region
from transforms.user_masks import mask_path
from transforms.write import write_atomically

logger = logging.getLogger(__name__)


def written_mask_path(output_root: str, relative_path: str) -> str:
    """Where `--write_masks` puts an image's mask: the name masks mode reads it by."""
    return mask_path(FileSystems.join(output_root.rstrip("/"), MASKS_FOLDER), relative_path)


def encode_mask(regions: list[np.ndarray]) -> bytes:
    """8-bit grey PNG, 255 = remove: opens in any image editor, and masks mode reads it back. A
    multi-frame image's mask is an animated PNG, one frame per frame (no duration given, so
    PIL keeps repeated frames rather than merging them)."""
    frames = [Image.fromarray(region.astype(np.uint8) * 255, "L") for region in regions]
    if len({frame.size for frame in frames}) > 1:
        raise ValueError("its frames differ in size, which an animated PNG cannot hold")
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", optimize=False, save_all=len(frames) > 1, append_images=frames[1:])
    return buffer.getvalue()


@skip_type_inference
class WriteRemovedMask(beam.DoFn):
    """`ImageInfo` -> the same, after writing its removed region: for every image the segmenter
    looked at whose row is cleaned or unchanged (an all-black mask), or an error after instances
    were chosen (e.g. a hole covering the whole image, the mask most in need of correcting).
    A mask that cannot be written is a note on the row and a warning, not a lost image."""

    def __init__(self, output_root: str):
        self._output_root = output_root
        self._written = beam.metrics.Metrics.counter(NAMESPACE, "masks_written")

    def process(self, info: ImageInfo):
        chosen = any(instance["removed"] for instance in info.instances)
        if info.status not in (CLEANED, UNCHANGED) and not chosen:
            yield info
            return
        path = written_mask_path(self._output_root, info.relative_path)
        try:
            write_atomically(path, encode_mask([removed_region(info, frame) for frame in range(info.frames)]))
        except Exception as e:  # noqa: BLE001 - the image itself is written; say what is missing
            logger.warning("mask of %s not written to %s: %s", info.image_uri, path, e)
            yield info.with_note(f"mask not written: {type(e).__name__}: {e}")
            return
        self._written.inc()
        yield info
