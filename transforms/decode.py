"""Stage 2: bytes -> upright RGB uint8 pixels, refusing what would blow memory before decoding."""
from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
from PIL import Image, ImageOps

from transforms.read import NAMESPACE

DEFAULT_MAX_PIXELS = 100_000_000


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Returns (rgb uint8 (H,W,3), alpha uint8 (H,W) or None, PIL format name, notes).

    The declared size is checked against `max_pixels` from the header alone, so a decompression
    bomb is refused without allocating it. EXIF orientation is applied, so what is segmented and
    written is upright. 16-bit images are scaled to 8 bits rather than clipped.
    """
    if not data:
        raise ValueError("empty file (0 bytes)")
    notes = []
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ValueError(f"refused as a decompression bomb: {e}") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"not an image file (starts with {data[:16]!r})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt image header ({e})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ValueError(f"image declares {width}x{height} = {width * height:,} pixels, over the "
                         f"limit of {max_pixels:,} (--max_image_pixels)")
    image_format = image.format
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        notes.append(f"first frame of {frames} processed")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt {image_format} data ({e})") from None
    transposed = ImageOps.exif_transpose(image)
    if transposed is not image:
        orientation = image.getexif().get(0x0112)
        if orientation not in (None, 1):
            notes.append(f"EXIF orientation {orientation} applied")
        image = transposed
    rgb, alpha = _to_rgb(image)
    return rgb, alpha, image_format, notes


def _to_rgb(image: Image.Image):
    alpha = None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: PIL's convert('L') clips at 255, so scale explicitly.
        values = np.asarray(image, dtype=np.uint32)
        peak = 65535 if image.mode.startswith("I;16") or values.max() > 255 else 255
        grey = (values * 255 // peak).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        if alpha.min() == 255:
            alpha = None
        return np.ascontiguousarray(np.asarray(rgba)[:, :, :3]), alpha
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image)), alpha


class DecodeImage(beam.DoFn):
    """`(ImageInfo, bytes)` -> `(ImageInfo, rgb)` on the main output, failed infos on 'error'."""

    ERROR = "error"

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS):
        self._max_pixels = max_pixels
        self._errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    def setup(self):
        # Our --max_image_pixels check replaces PIL's fixed bomb limit in worker processes.
        Image.MAX_IMAGE_PIXELS = None

    def process(self, element):
        info, data = element
        if info.status is not None:  # failed upstream
            self._errors.inc()
            yield beam.pvalue.TaggedOutput(self.ERROR, info)
            return
        try:
            rgb, alpha, image_format, notes = decode_image(data, self._max_pixels)
        except Exception as e:  # noqa: BLE001 - any undecodable input is an error row
            self._errors.inc()
            yield beam.pvalue.TaggedOutput(self.ERROR, info.failed("decode", e))
            return
        height, width = rgb.shape[:2]
        yield info.replace(image_format=info.image_format or image_format, width=width, height=height,
                           notes=info.notes + tuple(notes), alpha=alpha), rgb
