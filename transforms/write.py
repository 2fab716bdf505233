"""Stage 6: encode each image in its input's format and write it atomically under <output>/images/."""
from __future__ import annotations

import io
import posixpath
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from transforms.read import NAMESPACE
from transforms.records import CLEANED

# Formats PIL writes that keep what the input had; anything else (GIF frames, TIFF pages, ...)
# is written in its own format where PIL can, else falls back to PNG (lossless).
_JPEG_QUALITY = 95
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def output_path(output_root: str, relative_path: str) -> str:
    return FileSystems.join(output_root.rstrip("/"), "images", relative_path)


def encode_image(rgb: np.ndarray, image_format: str | None, alpha: np.ndarray | None) -> bytes:
    image = Image.fromarray(rgb, "RGB")
    image_format = (image_format or "PNG").upper()
    if alpha is not None and image_format in _ALPHA_FORMATS:
        image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    options = {"quality": _JPEG_QUALITY} if image_format in ("JPEG", "WEBP") else {}
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=image_format, **options)
    except (KeyError, OSError, ValueError):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_atomically(path: str, data: bytes) -> None:
    """Writes a uniquely named temporary beside `path`, then renames it: a reader (or a rerun)
    never sees a half-written image, and a retried bundle just replaces the file."""
    directory, name = posixpath.split(path)
    temporary = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.partial")
    try:
        with FileSystems.create(temporary, mime_type="application/octet-stream") as f:
            f.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        if FileSystems.exists(temporary):
            FileSystems.delete([temporary])
        raise


class WriteImage(beam.DoFn):
    """`(ImageInfo, rgb)` -> `ImageInfo` with `output_uri` and final status (error on failure)."""

    def __init__(self, output_root: str):
        self._output_root = output_root
        self._counters = {}

    def setup(self):
        self._counters = {status: beam.metrics.Metrics.counter(NAMESPACE, f"images_{status}")
                          for status in ("cleaned", "unchanged")}
        self._errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    def process(self, element):
        info, rgb = element
        status = info.status or CLEANED
        path = output_path(self._output_root, info.relative_path)
        try:
            write_atomically(path, encode_image(rgb, info.image_format, info.alpha))
        except Exception as e:  # noqa: BLE001 - a failed write is this image's error row
            self._errors.inc()
            yield info.failed("write", e)
            return
        self._counters[status].inc()
        yield info.replace(status=status, output_uri=path, alpha=None)
