"""Stage 2: bytes -> upright RGB uint8 pixels, refusing what would blow memory before decoding."""
from __future__ import annotations

import io
import posixpath
from typing import Iterator, NamedTuple

import apache_beam as beam
import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps, JpegImagePlugin

from models.grey_values import WIDE_GREY_MODES, grey_to_8_bits, scaled_to_8_bits
from transforms.image_metadata import (C2PA_CREDENTIALS, GAIN_MAP, HDR_GAIN_MAP, gif_xmp, note_detached,
                                       photoshop_resources, png_colour_chunks, png_raw_xmp, png_text, without_jpegs,
                                       without_thumbnails, xmp_to_write)
from transforms.read import NAMESPACE
from transforms.records import SourceEncoding, count_error, skip_type_inference

DEFAULT_MAX_PIXELS = 100_000_000
# HEIC/HEIF, phones' photos, read and written through PIL like the formats it knows; its
# thumbnails and depth maps (they would still show what was removed) are neither read nor written.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
ORIENTATION = 0x0112
XMP_TAG, PHOTOSHOP_TAG, IPTC_TAG = 700, 34377, 33723  # a TIFF's XMP, Photoshop resources, IPTC
C2PA_TAG = 52545  # a TIFF's C2PA manifest, signed for its pixels
LAYERS_TAG = 37724  # a layered TIFF's Photoshop layers (ImageSourceData), which Photoshop opens instead
EXIF_IFD, MAKER_NOTE = 0x8769, 0x927C
BITS_PER_SAMPLE, PLANAR_CONFIGURATION = 258, 284
NEW_SUBFILE_TYPE, SUB_IFDS, DNG_VERSION = 254, 330, 50706
MP_ENTRIES = 0xB002  # an MPO's list of its pictures
# Camera raw files: PIL reads some as the preview they embed, others not at all; none can be
# written back with its raw pixels.
CAMERA_RAW_EXTENSIONS = frozenset({
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dng", ".erf", ".iiq", ".kdc", ".mrw", ".nef", ".nrw",
    ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f"})
CAMERA_RAW_ADVICE = ("its raw pixels cannot be cleaned and written back (PIL reads at most the "
                     "preview it embeds); develop it to TIFF or JPEG first")
# TIFF tags that describe how the input's pixels were stored: the writer sets its own, and copied
# ones (a float SampleFormat, a ColorMap, tiles, ...) would misdescribe the pixels it writes.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 320,
    322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 529, 530, 531, 532, 34675})


class DecodedImage(NamedTuple):
    rgb: np.ndarray  # uint8 (H, W, 3), upright
    alpha: np.ndarray | None  # uint8 (H, W), None when fully opaque
    image_format: str | None  # PIL format name
    notes: list[str]
    encoding: SourceEncoding
    frames: int  # how many frames the file holds, each cleaned and written back: 1 for a single image


# Formats whose frames PIL composites onto one canvas (so each is a full picture the size of the
# first) and seeks by decoding the frames before: their size is checked as frames x canvas.
_CANVAS_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF", "FLI"})


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, frame: int = 0) -> DecodedImage:
    """Frame `frame` (0-based) of the file. The declared size of all its frames is checked against
    `max_pixels` from the headers alone, so a decompression bomb is refused without allocating it.
    EXIF orientation is applied, so what is segmented and written is upright. 16-bit, 32-bit and
    float images are scaled to 8 bits for the models rather than clipped (16-bit grey and colour
    keep their 16 bits in the written image).
    """
    image, pictures = _opened(data, max_pixels)
    if not 0 <= frame < len(pictures):
        raise ValueError(f"no frame {frame}: the image has {len(pictures)}")
    return _decoded_frame(image, data, frame, pictures)


def decode_frames(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[DecodedImage]:
    """Every frame of the file, decoded as `decode_image` decodes one, the file opened once and
    each frame decoded only when asked for: one frame's pixels in memory at a time."""
    image, pictures = _opened(data, max_pixels)
    for frame in range(len(pictures)):
        yield _decoded_frame(image, data, frame, pictures)


# An MPO picture that previews the first (cameras add one, VGA or Full HD, to many a JPEG): not
# read, as thumbnails are not, since a cleaned photo written with it would still show what was removed.
_MP_PREVIEWS = {"Large Thumbnail (VGA Equivalent)", "Large Thumbnail (Full HD Equivalent)"}


def _pictures(image: Image.Image) -> list[int]:
    """PIL's numbers of the frames cleaned and written back: every frame PIL reads. GIF, APNG,
    WebP, AVIF and FLI animations: each frame whole, as PIL composites it (disposal and blending
    applied). TIFF: its pages, each its own size, mode and tags, not the reduced-resolution ones.
    MPO: a camera's pictures, not its previews. HEIF: its top-level images (not thumbnails or
    depth maps). DCX, SPIDER and the like: whatever PIL reads as frames. But a PSD's frames are
    its layers: it is one image, its composite (frame 0)."""
    if image.format == "PSD":
        return [0]
    if image.format == "MPO":
        if _has_gain_map(image):
            return [0]  # its other picture is its gain map
        return [number for number, entry in enumerate(image.mpinfo[MP_ENTRIES])
                if number == 0 or not _is_preview(entry)]
    if image.format == "TIFF" and image.n_frames > 1:
        pages = [0] + [page for page in range(1, image.n_frames) if not _is_reduced_page(image, page)]
        image.seek(0)
        return pages
    return list(range(getattr(image, "n_frames", 1)))


def _is_reduced_page(image: Image.Image, page: int) -> bool:
    """Whether a TIFF's page is a reduced-resolution copy of another (a scanner's or editor's
    preview page): not read, as an MPO's previews are not."""
    image.seek(page)
    return bool(image.tag_v2.get(NEW_SUBFILE_TYPE, 0) & 1)


# ISO 21496-1's gain map metadata, which Android 15 and iOS 18 write beside (or instead of) Adobe's XMP.
_ISO_GAIN_MAP = b"urn:iso:std:iso:ts:21496:-1\0"


def _has_gain_map(image: Image.Image) -> bool:
    """Whether a JPEG PIL opened as MPO is an HDR photo whose other picture is its gain map (PIL
    opens it as a JPEG only where Adobe's XMP spells its version as PIL expects)."""
    return (HDR_GAIN_MAP.encode() in image.info.get("xmp", b"")
            or any(marker == "APP2" and data.startswith(_ISO_GAIN_MAP) for marker, data in image.applist))


def _is_preview(mp_entry: dict) -> bool:
    return mp_entry["Attribute"]["MPType"] in _MP_PREVIEWS


def _opened(data: bytes, max_pixels: int) -> tuple[Image.Image, list[int]]:
    """The file opened, its frames listed (`_pictures`) and their declared pixels checked: the
    writer holds every frame of one image at once, so all of them together must fit `max_pixels`."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        pictures = _pictures(image)
        frames = len(pictures)
    except Image.DecompressionBombError as e:
        raise ValueError(f"refused as a decompression bomb: {e}") from None
    except Image.UnidentifiedImageError:
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            raise ValueError("a TIFF whose layout PIL cannot read") from None
        raise ValueError(f"not an image file ({_what_it_is(data) or f'starts with {data[:16]!r}'})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt image header ({e})") from None
    if image.format == "TIFF":
        _refuse_camera_raw(image)
    width, height = image.size
    if frames == 1:
        if width * height > max_pixels:
            raise ValueError(f"image declares {width}x{height} = {width * height:,} pixels, over the "
                             f"limit of {max_pixels:,} (--max_image_pixels)")
        return image, pictures
    pixels = frames * width * height if image.format in _CANVAS_FORMATS else _pages_pixels(image, pictures)
    if pixels > max_pixels:
        raise ValueError(f"image declares {frames} frames of {pixels:,} pixels in all, over the limit "
                         f"of {max_pixels:,} (--max_image_pixels), which bounds all the frames of one "
                         f"image together")
    return image, pictures


# Videos and sound, which archives of phone and camera photos hold beside them (a Live Photo's
# .MOV, a camera's .MTS): by their first bytes, so the error row says what they are.
_MEDIA_SIGNATURES = (  # (offset, bytes there, what the file is)
    (4, b"ftyp", "a video (MP4, QuickTime or 3GP)"), (0, b"\x1a\x45\xdf\xa3", "a video (Matroska or WebM)"),
    (8, b"AVI ", "a video (AVI)"), (8, b"WAVE", "a sound (WAV)"), (0, b"ID3", "a sound (MP3)"),
    (0, b"\x00\x00\x01\xba", "a video (MPEG)"), (4, b"\x47\x40", "a video (AVCHD/MPEG-TS)"),
    (0, b"\x47\x40", "a video (MPEG-TS)"), (0, b"%PDF", "a PDF document"))
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


def _what_it_is(data: bytes) -> str | None:
    """What a file no image reader knows is, where its first bytes say: `a video (...): only still
    images are cleaned`."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return None  # an image after all, a HEIF or AVIF that its reader cannot open
    for offset, signature, kind in _MEDIA_SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            return f"{kind}: only still images are cleaned"
    return None


def _refuse_camera_raw(image: Image.Image) -> None:
    """Camera raw files built on TIFF (DNG, NEF, PEF, ...) open as a TIFF of the preview they
    embed: cleaning that and writing it under the raw file's name would lose the raw pixels. Those
    under their own extension are refused by name (`DecodeImage`), these whatever their name."""
    tags = image.tag_v2
    if DNG_VERSION in tags:
        kind = "DNG"
    elif tags.get(NEW_SUBFILE_TYPE, 0) & 1 and SUB_IFDS in tags:
        kind = "its first image a reduced-resolution preview of one in a sub-IFD"
    else:
        return
    raise ValueError(f"a camera raw file ({kind}): {CAMERA_RAW_ADVICE}")


def _pages_pixels(image: Image.Image, pictures: list[int]) -> int:
    """The pixels of frames that each have their own size (TIFF pages, an MPO's or a HEIF's
    pictures), from each one's header: seeking them decodes nothing."""
    try:
        pixels = 0
        for picture in pictures:
            image.seek(picture)
            pixels += image.size[0] * image.size[1]
    except (EOFError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt image header ({e})") from None
    return pixels


def _decoded_frame(image: Image.Image, data: bytes, frame: int, pictures: list[int]) -> DecodedImage:
    notes, frames = [], len(pictures)
    if frame == 0 and image.format == "MPO" and _has_gain_map(image):
        note_detached(GAIN_MAP, notes)
    elif frame == 0 and image.format in ("MPO", "TIFF") and (previews := image.n_frames - frames):
        kind = "MPF preview picture" if image.format == "MPO" else "reduced-resolution page"
        notes.append(f"{previews} {kind}{'s' * (previews > 1)} not read: a cleaned image is written without "
                     f"{'them' if previews > 1 else 'it'} (it would still show what was removed)")
    try:
        if frames > 1:  # a single HEIF is opened at its primary image, which may not be its first
            image.seek(pictures[frame])
    except (EOFError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt {image.format} data ({e})") from None
    # PIL keeps one EXIF object per file (an animation's frames share it, an MPO's pictures with
    # the same EXIF bytes too), which the previous frame's encoding edited (orientation 1): read
    # afresh, this frame is turned upright as the first was.
    image._exif = None
    image_format = image.format
    if image_format == "TIFF" and image.tag_v2.get(PLANAR_CONFIGURATION) == 2 and max(
            image.tag_v2.get(BITS_PER_SAMPLE, (8,))) > 8:
        raise ValueError("a TIFF of more than 8 bits a sample in separate colour planes: PIL and "
                         "OpenCV would read it as noise")
    colour16 = _pil_reads_only_8_of_16_bits(image)  # before getexif(), which loads a PNG
    grey_with_alpha16 = colour16 and _is_16_bit_grey_with_alpha(image)
    if colour16 and frames > 1 and image_format != "TIFF":
        notes.append("16-bit colour written as 8 bits: of the formats with several frames, only "
                     "TIFF pages are written with 16 bits")
        colour16 = False
    iptc = image.tag.tagdata.get(IPTC_TAG) if image_format == "TIFF" else None  # raw: before getexif() reads it
    try:
        orientation = image.getexif().get(ORIENTATION)  # before loading: PIL applies a TIFF's as it loads
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"truncated or corrupt {image_format} data ({e})") from None
    transposed = ImageOps.exif_transpose(image)
    orientation_applied = orientation not in (None, 1)
    if orientation_applied:
        notes.append(f"EXIF orientation {orientation} applied")
    pixels = _to_rgb(transposed, notes)
    if colour16:
        # OpenCV's TIFF reader turns the pixels upright itself, whatever it is asked.
        opencv_orientation = orientation if image_format == "PNG" else None
        pixels = _with_16_bit_colour(data, frame, opencv_orientation, len(transposed.getbands()),
                                     isinstance(image.info.get("transparency"), tuple), pixels, notes,
                                     grey_with_alpha16)
    encoding = _source_encoding(image, data, frame, orientation, pixels, notes, iptc)
    return DecodedImage(pixels.rgb, pixels.alpha, image_format, notes, encoding, frames)


class _Pixels(NamedTuple):
    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str  # the mode to write back: see SourceEncoding.mode
    own_values: np.ndarray | None  # see SourceEncoding.own_values


def _source_encoding(image: Image.Image, data: bytes, frame: int, orientation: int | None, pixels: _Pixels,
                     notes: list[str], tiff_iptc: bytes | None) -> SourceEncoding:
    # A HEIF's own orientation is applied as it is read (its EXIF then says 1).
    turned = next((value for value in (orientation, image.info.get("original_orientation")) if value in UPRIGHT), None)
    orientation_applied = turned is not None
    icc_profile = image.info.get("icc_profile") or None
    written_space = (b"RGB " if pixels.mode.startswith("RGB") else b"CMYK" if pixels.mode == "CMYK"
                     else b"GRAY")
    if icc_profile and icc_profile[16:20] != written_space:
        space = icc_profile[16:20].decode("ascii", "replace").strip()
        notes.append(f"{space} ICC profile not kept: the image is written as "
                     f"{written_space.decode().strip().replace('GRAY', 'grey')}")
        icc_profile = None
    exif = image.getexif()
    exif.bigtiff = False  # a BigTIFF's tags are written as classic TIFF ones, which every writer reads
    for tag in _TIFF_LAYOUT_TAGS.intersection(exif):
        del exif[tag]
    if orientation_applied:
        exif[ORIENTATION] = 1  # the written pixels are upright
    if XMP_TAG in exif:
        exif[XMP_TAG] = xmp_to_write(exif[XMP_TAG], orientation_applied, notes)
    if EXIF_IFD in exif and isinstance(maker_note := exif.get_ifd(EXIF_IFD).get(MAKER_NOTE), bytes):
        exif.get_ifd(EXIF_IFD)[MAKER_NOTE], previews = without_jpegs(maker_note)
        if previews:
            note_detached("preview in the camera's maker note", notes)
    for tag, part in ((C2PA_TAG, C2PA_CREDENTIALS), (LAYERS_TAG, "Photoshop's layer data (which still shows it all)")):
        if tag in exif:
            del exif[tag]
            note_detached(part, notes)
    if tiff_iptc is not None:  # as its bytes: Photoshop types it LONG, of which PIL keeps only the first
        exif[IPTC_TAG] = bytes(tiff_iptc)
    if PHOTOSHOP_TAG in exif:
        resources = without_thumbnails(exif[PHOTOSHOP_TAG], notes)
        if resources:
            exif[PHOTOSHOP_TAG] = resources
        else:
            del exif[PHOTOSHOP_TAG]
    try:
        exif_bytes = exif.tobytes() if len(exif) else None
    except Exception as e:  # noqa: BLE001 - a malformed EXIF costs the EXIF, not the image
        notes.append(f"EXIF not kept: it could not be rewritten ({type(e).__name__}: {e})")
        exif_bytes = None
    palette = transparency = None
    # One transparent entry at most: a palette with partly transparent entries is written as RGBA.
    if image.mode == "P" and isinstance(image.info.get("transparency", 0), int):
        palette = bytes(image.getpalette("RGB"))
        transparency = image.info.get("transparency")
    elif pixels.mode == "I;16" and isinstance(image.info.get("transparency"), int):
        transparency = image.info["transparency"]  # a 16-bit grey PNG's transparent value (tRNS)
    elif image.format == "GIF" and image.mode in ("RGB", "RGBA"):  # a frame after the first, composited
        palette, transparency = _own_palette(pixels)
    return SourceEncoding(mode=pixels.mode, own_values=pixels.own_values, icc_profile=icc_profile,
                          exif=exif_bytes, palette=palette, transparency=transparency,
                          lossless=image.format == "WEBP" and is_lossless_webp(data, frame),
                          tiff_compression=image.info.get("compression") if image.format == "TIFF" else None,
                          dpi=_upright_dpi(image.info.get("dpi"), orientation),
                          xmp=xmp_to_write(xmp, orientation_applied, notes) if (
                              xmp := image.info.get("xmp") or png_raw_xmp(image) or (
                                  gif_xmp(data) if image.format == "GIF" else None)) else None,
                          photoshop=photoshop_resources(image, notes),
                          comment=image.info.get("comment") or None, text=png_text(image, notes),
                          png_colour=png_colour_chunks(data) if image.format == "PNG" else (),
                          turned=turned, duration=_duration(image), loop=image.info.get("loop"),
                          primary=bool(image.info.get("primary")),
                          default_image=frame == 0 and image.format == "PNG" and bool(image.info.get("default_image")),
                          **_jpeg_quantization(image))


def packed_colours(colours: np.ndarray) -> np.ndarray:
    """RGB triplets (..., 3) as one int each, to sort, search and count them fast."""
    colours = colours.astype(np.int32)
    return (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]


def _duration(image: Image.Image) -> int | None:
    """The frame's display time in whole milliseconds, as PIL's writers take it (an APNG's may
    be a fraction); None where the format has none (TIFF, MPO, HEIF pictures)."""
    duration = image.info.get("duration")
    return None if duration is None else round(duration)


def _own_palette(pixels: _Pixels) -> tuple[bytes | None, int | None]:
    """A GIF frame's colours as its palette, its transparent pixels on one entry after them, so
    it is written back on them rather than re-quantised; (None, None) where a frame composited
    from several palettes has more than 256."""
    opaque = pixels.rgb if pixels.alpha is None else pixels.rgb[pixels.alpha > 0]
    keys = np.unique(packed_colours(opaque))
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.uint8)
    transparent = pixels.alpha is not None
    if len(colours) + transparent > 256:
        return None, None
    return (colours.tobytes() + b"\0\0\0" * transparent), (len(colours) if transparent else None)


def _upright_dpi(dpi, orientation) -> tuple[float, float] | None:
    """The resolution along the written image's x and y: swapped where the orientation turned it."""
    if not dpi or len(dpi) != 2:
        return None
    return (dpi[1], dpi[0]) if orientation in (5, 6, 7, 8) else tuple(dpi)


def _jpeg_quantization(image: Image.Image) -> dict:
    if image.format not in ("JPEG", "MPO"):
        return {}
    return {"jpeg_tables": tuple(tuple(table) for _, table in sorted(image.quantization.items())),
            "jpeg_subsampling": JpegImagePlugin.get_sampling(image),
            "progressive": bool(image.info.get("progressive"))}


def is_lossless_webp(data: bytes, frame: int = 0) -> bool:
    """Whether a WebP file's image (an animation's frame `frame`) is VP8L, i.e. lossless: PIL does
    not say."""
    position = 12  # after RIFF <size> WEBP
    while position + 8 <= len(data):
        kind = data[position:position + 4]
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        if kind == b"ANMF":  # an animation frame: its own chunks follow its 16-byte header
            if frame == 0:
                position += 8 + 16
                continue
            frame -= 1
        size = int.from_bytes(data[position + 4:position + 8], "little")
        position += 8 + size + (size & 1)
    return False


def _to_rgb(image: Image.Image, notes: list[str]) -> _Pixels:
    """The models' RGB, and what the writer needs to give the output the input's own mode. PIL's
    own conversions clip wide integers at 255 and floats at 0-255, so those are scaled here (and
    `notes` says how); 16-bit grey keeps its values for the writer."""
    if image.mode in WIDE_GREY_MODES:
        grey, values16 = grey_to_8_bits(image, notes)
        return _Pixels(np.repeat(grey[:, :, None], 3, axis=2), None,
                       "L" if values16 is None else "I;16", values16)
    if "transparency" in image.info and image.mode in ("P", "RGB", "L"):
        # A palette entry or, in a PNG, one colour (tRNS) is transparent: as an alpha channel.
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    elif image.mode == "P":
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        if alpha.min() == 255:
            alpha = None
        return _Pixels(np.ascontiguousarray(np.asarray(rgba)[:, :, :3]), alpha,
                       "L" if image.mode in ("LA", "La") else "RGB", None)
    if image.mode == "CMYK":  # a print file's inks (YCCK too), kept for the writer outside the hole
        return _Pixels(np.asarray(image.convert("RGB")), None, "CMYK", np.asarray(image))
    mode = image.mode if image.mode in ("1", "L") else "RGB"
    if image.mode != "RGB":
        image = image.convert("RGB")
    return _Pixels(np.ascontiguousarray(np.asarray(image)), None, mode, None)


def _pil_reads_only_8_of_16_bits(image: Image.Image) -> bool:
    """PIL opens a 16-bit RGB(A) PNG or TIFF as 8-bit RGB(A), keeping each sample's high byte, and a
    16-bit PPM scaled to 8 bits; only its tile (raw mode `RGB;16B`, `RGBA;16N`, ...; a PPM's
    maximum value) tells, before the pixels are loaded."""
    if image.format not in ("PNG", "TIFF", "PPM") or image.mode not in ("RGB", "RGBA") or not image.tile:
        return False
    args = image.tile[0].args
    if image.format == "PPM":
        return isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) and args[1] > 255
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _is_16_bit_grey_with_alpha(image: Image.Image) -> bool:
    """A 16-bit grey PNG with alpha, which PIL opens as 8-bit RGBA (raw mode `LA;16B`)."""
    return image.format == "PNG" and str(image.tile[0].args).startswith("LA;16")


def bgr_order(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) as OpenCV orders it, BGR(A), and back."""
    return pixels[..., [2, 1, 0, 3][:pixels.shape[2]]]


# What ImageOps.exif_transpose does to the image for each EXIF orientation, on an (H, W, ...) array.
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


def _with_16_bit_colour(data: bytes, frame: int, orientation: int | None, pil_bands: int,
                        transparent_colour: bool, pixels: _Pixels, notes: list[str],
                        grey_with_alpha: bool = False) -> _Pixels:
    """The full 16 bits of the colour (and alpha) PIL read only the high bytes of, from OpenCV,
    turned upright by `orientation` as PIL turned its pixels. They are used only where their high
    bytes are PIL's pixels within a level, so the two decoders agree on all but the low bytes;
    else PIL's 8 bits stay, with a note. A PNG's transparent colour (tRNS), which PIL's 8 bits
    never match, comes as OpenCV's alpha; a grey PNG with alpha, which OpenCV reads as RGBA, keeps
    only its grey and alpha values (mode `LA;16`)."""
    channels = 4 if transparent_colour else pil_bands
    bgr = _opencv_decoded(data, frame)
    if bgr is not None and bgr.dtype == np.uint16 and bgr.ndim == 3 and bgr.shape[2] == channels:
        values = UPRIGHT.get(orientation, lambda a: a)(bgr_order(bgr))
        pil_alpha = np.full(pixels.rgb.shape[:2], 255, np.uint8) if pixels.alpha is None else pixels.alpha
        if values.shape[:2] == pixels.rgb.shape[:2] and _within_a_level(values[..., :3], pixels.rgb) and (
                pil_bands == 3 or _within_a_level(values[..., 3], pil_alpha)):
            values = np.ascontiguousarray(values)
            eight_bits = scaled_to_8_bits(values)
            alpha = None
            if channels == 4 and eight_bits[..., 3].min() < 255:
                alpha = eight_bits[..., 3].copy()  # not a view holding all four channels
            if grey_with_alpha:
                return _Pixels(np.ascontiguousarray(eight_bits[..., :3]), alpha, "LA;16",
                               np.ascontiguousarray(values[..., [0, 3]]))
            return _Pixels(np.ascontiguousarray(eight_bits[..., :3]), alpha,
                           "RGB;16" if channels == 3 else "RGBA;16", values)
    notes.append("16-bit colour written as 8 bits: OpenCV did not read its 16 bits as PIL read "
                 "their high bytes")
    return pixels


def _opencv_decoded(data: bytes, frame: int) -> np.ndarray | None:
    """Frame `frame` (a TIFF's page) as OpenCV reads it, None where it cannot."""
    buffer = np.frombuffer(data, np.uint8)
    if frame == 0:
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    read, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED, range=(frame, frame + 1))
    return pages[0] if read and pages else None


def _within_a_level(values16: np.ndarray, eight_bits: np.ndarray) -> bool:
    """Whether PIL's 8 bits are these 16 (its high byte, or a PPM's rounded scaling): the two
    decoders read one image, not two layouts of it."""
    return bool((np.abs((values16 >> 8).astype(np.int16) - eight_bits) <= 1).all())


@skip_type_inference
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
        """One element per frame: a multi-frame input's frames go through the models apart."""
        info, data = element
        if info.status is not None:  # failed upstream
            self._errors.inc()
            yield beam.pvalue.TaggedOutput(self.ERROR, info)
            return
        extension = posixpath.splitext(info.relative_path)[1].lower()
        if extension in CAMERA_RAW_EXTENSIONS:
            self._errors.inc()
            yield beam.pvalue.TaggedOutput(self.ERROR, info.failed(
                "decode", f"a camera raw file ({extension}): {CAMERA_RAW_ADVICE}"))
            return
        try:
            for decoded in decode_frames(data, self._max_pixels):
                height, width = decoded.rgb.shape[:2]
                # From the first frame on, a failure is one frame's, and joins its image's frames.
                info = info.replace(frames=decoded.frames)
                yield info.replace(image_format=info.image_format or decoded.image_format, width=width,
                                   height=height, notes=info.notes + tuple(decoded.notes),
                                   alpha=decoded.alpha, encoding=decoded.encoding), decoded.rgb
                info = info.replace(frame=info.frame + 1)
        except Exception as e:  # noqa: BLE001 - any undecodable input (or frame) is an error row
            count_error(self._errors, info)
            yield beam.pvalue.TaggedOutput(self.ERROR, info.failed("decode", e))
