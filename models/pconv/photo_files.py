"""The photo files training and evaluation read, and PIL's decode of those TensorFlow's cannot read.

TensorFlow decodes JPEG, PNG, GIF, BMP and WebP; the pipeline cleans far more (scanned archives
in TIFF, phones' HEIC, AVIF, JPEG 2000, PNM), so those are read through PIL, pixel for
pixel as the pipeline's models see them (transforms/decode.py, which models/ may not import).
No TensorFlow here: the evaluation script reads every photo and mask through `pil_decoded`.
"""
from __future__ import annotations

import io

import numpy as np
import pillow_heif
from PIL import Image, features

from models.grey_values import WIDE_GREY_MODES, grey_to_8_bits

# HEIC/HEIF through pillow-heif, registered with the pipeline's options (both may register in one
# process, and the last registration's options hold): the primary image, no thumbnails or depth maps.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# A camera's MPO is a JPEG holding its other pictures after the first: TensorFlow reads the first.
TENSORFLOW_PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".mpo")
PIL_PHOTO_EXTENSIONS = (".tif", ".tiff", ".heic", ".heif", ".ppm", ".pgm", ".pnm",
                        *((".avif",) if features.check("avif") else ()),
                        *((".jp2", ".j2k", ".jpx") if features.check("jpg_2000") else ()))
PHOTO_EXTENSIONS = TENSORFLOW_PHOTO_EXTENSIONS + PIL_PHOTO_EXTENSIONS
# Photos neither reads: JPEG XL (no PIL plugin here), AVIF and JPEG 2000 where this PIL was built
# without them, and Photoshop files, kept out although PIL reads their stored composite: a PSD
# saved without "Maximize compatibility" stores a blank one, which training would learn from silently.
UNREADABLE_PHOTO_EXTENSIONS = tuple(extension for extension in (
    ".avif", ".jp2", ".j2k", ".jpx", ".jxl", ".psd") if extension not in PIL_PHOTO_EXTENSIONS)


def pil_decoded(data: bytes, channels: int = 3) -> np.ndarray:
    """uint8 (height, width, channels) of the file's first frame (a HEIF's primary image), 1 or 3
    channels. 16- and 32-bit grey is scaled to 8 bits, not clipped (v * 255 // 65535), float 0-1
    grey scaled to 0-255, as the pipeline scales them; palette, CMYK and alpha images become RGB
    (alpha dropped, as TensorFlow's decoder drops it). EXIF orientation is not applied (TensorFlow
    does not apply it either). Raises ValueError saying what is wrong with the file."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        raise ValueError(f"Unknown image file format (starts with {bytes(data[:16])!r})") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"refused as a decompression bomb ({error})") from None
    except Exception as error:  # noqa: BLE001 - PIL's plugins raise many kinds of error on bad bytes
        raise ValueError(f"truncated or corrupt image header ({error})") from None
    with image:
        try:
            image.load()
        except Exception as error:  # noqa: BLE001 - as above
            raise ValueError(f"truncated or corrupt {image.format} data ({error})") from None
        if image.mode in WIDE_GREY_MODES:
            grey, _ = grey_to_8_bits(image, [])
            return np.repeat(grey[:, :, None], channels, axis=2)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return np.asarray(rgb.convert("L"))[:, :, None] if channels == 1 else np.asarray(rgb)
