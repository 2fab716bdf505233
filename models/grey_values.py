"""How grey wider than 8 bits (16-bit, 32-bit integer, float: scans, scientific TIFFs) becomes the
8 bits the models see: one rule for the pipeline and for training, so both read a scan alike. PIL's
own conversions would clip wide integers at 255 and floats at 0-255."""
from __future__ import annotations

import numpy as np
from PIL import Image

WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def scaled_to_8_bits(values16: np.ndarray) -> np.ndarray:
    """What the models see of 16-bit grey or colour: v * 255 // 65535, which is v // 257 (65535 is
    255 * 257), so v8 * 257 maps each 8-bit value back into its range."""
    return (values16 // 257).astype(np.uint8)


def grey_to_8_bits(image: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit grey of an image in one of WIDE_GREY_MODES, and the 16-bit values when they fit 16
    bits, so the writer can keep them; `notes` says how values were scaled or clipped."""
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.max() <= 1:
            notes.append("32-bit float values 0-1 scaled to 8 bits")
            values = values * 255
        else:
            notes.append("32-bit float values clipped to 0-255")
        return np.clip(np.rint(values), 0, 255).astype(np.uint8), None
    values = np.asarray(image, dtype=np.int64)
    if values.min() < 0:
        notes.append("negative values clipped to 0")
        values = np.clip(values, 0, None)
    if image.mode.startswith("I;16") or 255 < values.max() <= 65535:
        values16 = values.astype(np.uint16)
        return scaled_to_8_bits(values16), values16
    if values.max() > 65535:
        notes.append("32-bit integer values scaled to 8 bits")
        return (values * 255 // (2**31 - 1)).astype(np.uint8), None
    return values.astype(np.uint8), None
