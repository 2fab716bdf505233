"""What travels between stages: a small `ImageInfo` (the key) beside the pixels.

Keeping the per-image facts in a small frozen record lets RunInference key batches by it cheaply
(Beam pickles keys to count bytes) while the pixel arrays travel as plain ndarrays.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np

CLEANED, UNCHANGED, ERROR, SKIPPED = "cleaned", "unchanged", "error", "skipped"

# For a DoFn or function whose outputs are these records: Beam infers an undeclared output type
# by reading the bytecode of the function and of every function it calls (50 ms for each image
# writer), only to find `Any`, which is what they are declared here.
skip_type_inference = beam.typehints.with_output_types(Any)


@dataclass(frozen=True)
class SourceEncoding:
    """What the writer needs, beyond the pixels, to encode an image the way its input was."""
    # An input in shades of grey is written back in its own grey mode: "L" (with "LA" when it has
    # alpha), "1" (bilevel), "I;16" (16 bits) or "LA;16" (16-bit grey and alpha, a PNG's); 16-bit
    # colour as "RGB;16" or "RGBA;16"; CMYK as "CMYK"; else "RGB".
    mode: str = "RGB"
    # The input's own values where the models see others, upright, which the writer keeps outside
    # the hole: 16-bit (H, W) grey, (H, W, 2) grey and alpha or (H, W, 3 or 4) RGB(A), twice the
    # bytes of the 8-bit samples beside them; or a CMYK input's (H, W, 4) inks.
    own_values: np.ndarray | None = field(default=None, compare=False, repr=False)
    icc_profile: bytes | None = None  # only a profile for the written mode's colour space
    # Orientation 1 when it was applied; TIFF layout tags and the thumbnail (it would still show
    # what was removed) left out.
    exif: bytes | None = None
    palette: bytes | None = None  # RGB triplets of a palette input, written back on its palette
    transparency: int | None = None  # the palette index that is transparent, or a 16-bit grey value
    lossless: bool = False  # a lossless WebP input
    # A JPEG input's quantization tables and chroma subsampling (PIL's numbering), so its
    # re-encoding quantizes as the input was: close to lossless outside the hole, about its size.
    jpeg_tables: tuple[tuple[int, ...], ...] | None = None
    jpeg_subsampling: int = -1
    progressive: bool = False
    tiff_compression: str | None = None  # PIL's name of a TIFF input's compression
    dpi: tuple[float, float] | None = None  # a scan's resolution: its print size
    # Captions, credits, rights (transforms/image_metadata.py): XMP of a JPEG, PNG, WebP, HEIF or
    # AVIF (a TIFF's travels in `exif`), a JPEG's Photoshop resources (IPTC), a JPEG or GIF comment,
    # PNG text.
    xmp: bytes | None = None
    photoshop: bytes | None = None
    comment: bytes | None = None
    text: tuple[tuple[str, str], ...] = ()
    png_colour: tuple[tuple[bytes, bytes], ...] = ()  # a PNG's gAMA, cHRM, sRGB, cICP chunks
    turned: int | None = None  # the EXIF (or HEIF) orientation, 2-8, the pixels were turned upright by
    # A frame of an animation or a page of a multi-page file (each frame has its own encoding, as a
    # TIFF's pages their own size, mode and tags): how long it is shown, in ms (GIF, APNG, WebP,
    # AVIF, FLI; None where the format has no timing), and the file's loop count (0: forever; None
    # where the file has none, e.g. a GIF that plays once).
    duration: int | None = None
    loop: int | None = None
    primary: bool = False  # the picture a HEIF's viewers show first (not always its first)
    # An animated PNG's first frame that is not part of the animation: what viewers that do not
    # animate show (no duration).
    default_image: bool = False


def uri_bytes(uri: str) -> bytes:
    """The input's name as bytes, also a local one that is not UTF-8 (an old archive's Latin-1),
    which the file system gives with its other bytes as lone surrogates: no text coder of Beam's,
    nor Parquet, takes those."""
    return uri.encode("utf-8", "surrogateescape")


def count_error(errors, info: "ImageInfo") -> None:
    """Adds a failed image to the `errors` counter; a failed frame is counted once, with its image,
    when its frames meet (transforms/frames.py)."""
    if info.frames == 1:
        errors.inc()


@dataclass(frozen=True)
class ImageInfo:
    image_uri: str
    relative_path: str  # POSIX path under <output>/images/, already made safe
    image_format: str | None = None  # PIL format name of the input, re-used when writing
    width: int = 0
    height: int = 0
    notes: tuple[str, ...] = ()
    instances: tuple[dict[str, Any], ...] = ()
    removed_fraction: float = 0.0
    status: str | None = None
    error: str | None = None
    output_uri: str | None = None
    # Decoded-but-dropped channels (alpha) that the writer puts back, so nothing is lost.
    alpha: np.ndarray | None = field(default=None, compare=False, repr=False)
    encoding: SourceEncoding | None = field(default=None, compare=False, repr=False)
    # When its bytes were read (wall clock: the image may end in another process): progress rates
    # count from it, so neither model loading nor one batch's images ending together skew them.
    read_at: float = field(default=0.0, compare=False, repr=False)
    # A multi-frame input (an animation, a multi-page TIFF) travels through the models as one
    # element per frame, `frame` of `frames`, until transforms/frames.py writes them together.
    frame: int = 0
    frames: int = 1
    frame_sizes: tuple[tuple[int, int], ...] = ()  # (height, width) of each, once they have met
    sidecars: tuple[str, ...] = ()  # the XMP and AAE files beside the input that are its own
    # A TFRecord record that keeps an output name other records' ids give too: never skipped by
    # --skip_existing, since the file there may be another's, written when it held the name.
    shared_name: bool = False

    def carried_bytes(self) -> int:
        """Bytes of the pixel arrays travelling with the image beside the 8-bit RGB (its alpha, its
        16-bit values): a 16-bit scan carries twice its RGB's bytes more."""
        own_values = self.encoding.own_values if self.encoding is not None else None
        return sum(array.nbytes for array in (self.alpha, own_values) if array is not None)

    def replace(self, **changes) -> "ImageInfo":
        return dataclasses.replace(self, **changes)

    def failed(self, stage: str, error: BaseException | str) -> "ImageInfo":
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return self.replace(status=ERROR, error=f"{stage}: {message}", alpha=None, encoding=None)

    def with_note(self, note: str) -> "ImageInfo":
        return self.replace(notes=self.notes + (note,))

