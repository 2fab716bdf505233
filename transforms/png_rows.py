"""PNG written row by row here, for the one layout neither PIL nor OpenCV writes: 16-bit grey with
alpha (PIL opens it as 8-bit RGBA, OpenCV as RGBA)."""
from __future__ import annotations

import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 8 + 12 + 13  # the signature, then the IHDR chunk, which must come first
GREY_WITH_ALPHA = 4  # PNG's colour type
_BAND_ROWS = 256  # rows filtered at once: the filters' working copies stay a few MB


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_of_16_bit_samples(samples: np.ndarray, colour_type: int) -> bytes:
    """A PNG of (H, W, C) 16-bit `samples`, each row with the one of PNG's five filters whose
    output has the smallest sum of absolute values (libpng's heuristic), compressed as OpenCV
    compresses its 16-bit PNGs: run-length matches only, a tenth of the time of zlib's default
    search for about the same size on filtered photo rows."""
    height, width, channels = samples.shape
    pixel_bytes = 2 * channels
    rows = samples.astype(">u2").view(np.uint8).reshape(height, width * pixel_bytes)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = []
    for top in range(0, height, _BAND_ROWS):
        band = rows[top:top + _BAND_ROWS]
        above = rows[top - 1:top] if top else np.zeros((1, rows.shape[1]), np.uint8)
        data.append(compressor.compress(_filtered(band, np.concatenate([above, band[:-1]]), pixel_bytes).tobytes()))
    data.append(compressor.flush())
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, colour_type, 0, 0, 0])
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(data))
            + png_chunk(b"IEND", b""))


def _filtered(rows: np.ndarray, above: np.ndarray, pixel_bytes: int) -> np.ndarray:
    """`rows`, each led by its filter's type byte: None, Sub, Up, Average or Paeth, each
    predicting a byte from the raw bytes to its left, above and above-left."""
    def shifted(a):
        out = np.zeros_like(a)
        out[:, pixel_bytes:] = a[:, :-pixel_bytes]
        return out

    raw, left, up = rows.astype(np.int16), shifted(rows).astype(np.int16), above.astype(np.int16)
    up_left = shifted(above).astype(np.int16)
    guess = left + up - up_left
    to_left, to_up, to_up_left = np.abs(guess - left), np.abs(guess - up), np.abs(guess - up_left)
    paeth = np.where((to_left <= to_up) & (to_left <= to_up_left), left,
                     np.where(to_up <= to_up_left, up, up_left))
    candidates = np.stack([raw - prediction for prediction in (0, left, up, (left + up) // 2, paeth)])
    candidates = (candidates & 255).astype(np.uint8)
    cost = np.minimum(candidates, 256 - candidates.astype(np.int16)).sum(axis=2)
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(len(rows))]
    return np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1)
