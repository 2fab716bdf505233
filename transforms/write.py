"""Stage 6: encode each image in its input's format and write it atomically under <output>/images/."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import posixpath
import uuid
import zlib
from collections.abc import Sequence

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

from models.grey_values import scaled_to_8_bits
from transforms.decode import IPTC_TAG, PHOTOSHOP_TAG, UPRIGHT, XMP_TAG, bgr_order, packed_colours
from transforms.frame_store import store_frame
from transforms.image_metadata import (
    XMP_PNG_KEY, RegionBox, has_regions, iim_without_keywords, photoshop_without_keywords, well_formed,
    with_gif_xmp, with_photoshop_resources, without_removed_regions, xml_codec, xmp_to_write)
from transforms.png_rows import GREY_WITH_ALPHA, PNG_HEADER_BYTES, png_chunk, png_of_16_bit_samples
from transforms.read import NAMESPACE, read_bytes
from transforms.records import CLEANED, UNCHANGED, ImageInfo, SourceEncoding, skip_type_inference
from transforms.select import removed_region

# Formats PIL writes that keep what the input had; anything else (XPM, PCX, ...)
# is written in its own format where PIL can, else as PNG (lossless) under `<name>.png`.
_JPEG_QUALITY = 95  # lossy WebP, HEIF and AVIF (no input says its own), and JPEG in TIFF
_LOSSY_FORMATS = {"JPEG", "HEIF", "AVIF"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_PALETTE_FORMATS = {"GIF", "PNG", "BMP", "TIFF"}
_CMYK_FORMATS = {"JPEG", "TIFF"}  # elsewhere (a TFRecord's PNG, a PSD's fallback) CMYK is written as RGB
# The colour space of an ICC profile (its header's bytes 16-20) that fits each written mode.
_PROFILE_SPACES = {"RGB": b"RGB ", "RGBA": b"RGB ", "P": b"RGB ", "L": b"GRAY", "LA": b"GRAY", "1": b"GRAY",
                   "I;16": b"GRAY", "CMYK": b"CMYK"}
_TIFF_LOSSLESS = {"tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "zstd", "lzma"}
_TIFF_FAX = {"group3", "group4", "tiff_ccitt"}
# An MPO (a camera's multi-picture JPEG) of one picture is written as a JPEG.
_WRITTEN_AS = {"MPO": "JPEG"}
_JPEG_FORMATS = {"JPEG", "MPO"}  # an MPO's pictures are JPEGs: each keeps its own tables
FALLBACK_FORMAT = "PNG"


def output_root(output: str | None) -> str | None:
    """--output, made absolute when local: the rows' `output_uri`s then name their files wherever
    the metadata is read."""
    return output if not output or "://" in output else os.path.abspath(output)


def output_path(output_root: str, relative_path: str) -> str:
    return FileSystems.join(output_root.rstrip("/"), "images", relative_path)


def sidecar_output_path(output_root: str, relative_path: str, sidecar: str) -> str:
    """Where a sidecar of the image at `relative_path` is written: beside it, under its own name."""
    return output_path(output_root, posixpath.join(posixpath.dirname(relative_path), posixpath.basename(sidecar)))


def fallback_path(path: str) -> str:
    """Where an image whose format PIL cannot write goes: a PNG named so that it cannot be
    mistaken for the input's format."""
    return f"{path}.{FALLBACK_FORMAT.lower()}"


def existing_output(output_root: str, relative_path: str) -> str | None:
    """The output already written for `relative_path`, under its own name or, when its extension
    is not one PIL writes, under the fallback name."""
    path = output_path(output_root, relative_path)
    candidates = [path]
    extension_format = Image.registered_extensions().get(posixpath.splitext(path)[1].lower())
    if extension_format not in Image.SAVE:
        candidates.append(fallback_path(path))
    return next((candidate for candidate in candidates if FileSystems.exists(candidate)), None)


def encode_image(rgb: np.ndarray, image_format: str | None, alpha: np.ndarray | None = None,
                 encoding: SourceEncoding | None = None) -> tuple[bytes, str | None]:
    """Returns the image encoded in its input's format and None, or, where PIL cannot write that
    format, PNG bytes and the reason."""
    return encode_frames([(rgb, alpha, encoding or SourceEncoding())], image_format)


def encode_frames(frames: Sequence[tuple[np.ndarray, np.ndarray | None, SourceEncoding]],
                  image_format: str | None) -> tuple[bytes, str | None]:
    """The frames of one image (each its RGB, alpha or None, and encoding) as `encode_image`
    encodes one: in the input's format and None or, where PIL cannot write it (or not several
    frames of it), PNG bytes, an animated PNG of every frame, and the reason."""
    image_format = (image_format or FALLBACK_FORMAT).upper()
    if len(frames) == 1:
        image_format = _WRITTEN_AS.get(image_format, image_format)
    Image.init()
    as_fallback = f" (its {len(frames)} frames as an animated {FALLBACK_FORMAT})" if len(frames) > 1 else ""
    if image_format not in Image.SAVE:
        return _encoded(frames, FALLBACK_FORMAT), f"PIL cannot write {image_format}{as_fallback}"
    if len(frames) > 1 and image_format not in Image.SAVE_ALL:
        return _encoded(frames, FALLBACK_FORMAT), f"PIL cannot write several frames as {image_format}{as_fallback}"
    try:
        return _encoded(frames, image_format), None
    except (KeyError, OSError, ValueError) as e:
        return _encoded(frames, FALLBACK_FORMAT), f"PIL could not write {image_format} ({e}){as_fallback}"


def _encoded(frames: Sequence[tuple[np.ndarray, np.ndarray | None, SourceEncoding]], image_format: str) -> bytes:
    """A TIFF's pages are encoded one by one, each in its own mode, size, compression and tags
    (16-bit colour through OpenCV), then chained; other formats' frames are saved together, the
    file's metadata and options from the first (PIL's writers take them once)."""
    if len(frames) == 1 or image_format == "TIFF":
        pages = [_encode(rgb, alpha, image_format, encoding) for rgb, alpha, encoding in frames]
        return pages[0] if len(pages) == 1 else _joined_tiff(pages)
    # 16-bit colour as 8 bits: no format PIL animates holds it.
    encodings = [dataclasses.replace(encoding, mode="RGB", own_values=None)
                 if encoding.mode in ("RGB;16", "RGBA;16") else encoding for _, _, encoding in frames]
    built = [_frame_image(rgb, alpha, image_format, encoding)
             for (rgb, alpha, _), encoding in zip(frames, encodings)]
    images = [image for image, _ in built]
    for image, options in built[1:]:
        image.encoderinfo = options  # an MPO's later pictures take their own quantization tables
    if image_format in _ONE_MODE_FORMATS:
        images = _in_one_mode(images)
    transparent = any(alpha is not None for _, alpha, _ in frames)
    return _saved(images[0], image_format,
                  {**built[0][1], **_animation_options(image_format, encodings, transparent)},
                  encodings[0], append_images=images[1:])


def _animation_options(image_format: str, encodings: list[SourceEncoding], transparent: bool) -> dict:
    """Each frame's duration and the loop count where the input had them; an animated PNG's
    default image, a HEIF's primary picture. Frames are written whole, as PIL composites them
    (disposal, blending and a GIF's background then change nothing): PIL's writers store only what
    changes between them."""
    options = {"save_all": True}
    animated = encodings
    if image_format == "PNG" and encodings[0].default_image:
        options["default_image"] = True
        animated = encodings[1:]
    if all(encoding.duration is not None for encoding in animated):
        options["duration"] = [encoding.duration for encoding in animated]
    if encodings[0].loop is not None:
        options["loop"] = encodings[0].loop
    if image_format == "GIF" and transparent:
        options["disposal"] = 2  # each frame drawn on a cleared canvas, so its transparent pixels stay so
    if image_format == "WEBP" and transparent:
        # Every frame a key frame: libwebp's frame differences drop the alpha of transparent black
        # pixels after opaque ones (which is how PIL decodes them), and of the whole file with it.
        options.update(kmin=0, kmax=1)
    if image_format == "HEIF":
        options["primary_index"] = next((i for i, encoding in enumerate(encodings) if encoding.primary), 0)
    return options


# Animations whose frames PIL writes in one mode (the first one's, or one for all).
_ONE_MODE_FORMATS = {"PNG", "WEBP", "AVIF"}


def _in_one_mode(images: list[Image.Image]) -> list[Image.Image]:
    """Frames that PIL writes in one mode (and on one palette): where they differ, all are RGBA if
    any has transparency, else RGB, so no frame loses its alpha or its colours (a GIF's frames
    each have their own palette)."""
    palettes = {bytes(image.getpalette() or ()) for image in images if image.mode == "P"}
    if len({image.mode for image in images}) == 1 and len(palettes) <= 1:
        return images
    mode = "RGBA" if any(image.has_transparency_data for image in images) else "RGB"
    return [image.convert(mode) for image in images]


def _joined_tiff(pages: list[bytes]) -> bytes:
    """Single-page TIFFs chained into one by PIL's own appending writer, which moves their offsets."""
    buffer = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buffer) as tiff:
        for page in pages:
            tiff.write(page)
            tiff.newFrame()
    return buffer.getvalue()


def _encode(rgb: np.ndarray, alpha: np.ndarray | None, image_format: str, encoding: SourceEncoding) -> bytes:
    if encoding.mode in ("RGB;16", "RGBA;16"):
        return _colour16(rgb, image_format, encoding)
    if encoding.mode == "LA;16":
        return _grey_with_alpha16(rgb, image_format, encoding)
    image, options = _frame_image(rgb, alpha, image_format, encoding)
    return _saved(image, image_format, options, encoding)


def _saved(image: Image.Image, image_format: str, options: dict, encoding: SourceEncoding, **more) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options, **more)
    if image_format == "JPEG" and encoding.photoshop:
        return with_photoshop_resources(buffer.getvalue(), encoding.photoshop)
    if image_format == "GIF" and encoding.xmp:
        return with_gif_xmp(buffer.getvalue(), encoding.xmp)
    return buffer.getvalue()


def _frame_image(rgb: np.ndarray, alpha: np.ndarray | None, image_format: str,
                 encoding: SourceEncoding) -> tuple[Image.Image, dict]:
    """One frame in the input's own mode (palette, grey, bilevel, 16-bit grey, CMYK, alpha), and
    PIL's save options that keep its compression, quality and metadata."""
    options = {}
    if image_format in _PALETTE_FORMATS and encoding.palette:
        image = onto_palette(rgb, alpha, encoding.palette, encoding.transparency)
    elif encoding.mode == "CMYK" and image_format in _CMYK_FORMATS:
        image = cmyk_image(rgb, encoding.own_values)
    elif encoding.mode not in ("RGB", "CMYK"):
        image = grey_image(rgb, alpha if image_format in _ALPHA_FORMATS else None, encoding)
    elif alpha is not None and image_format in _ALPHA_FORMATS:
        image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        image = Image.fromarray(rgb, "RGB")
    if encoding.transparency is not None and image.mode in ("P", "I;16"):
        image.info["transparency"] = encoding.transparency  # where a GIF's writer reads each frame's
    if image_format in _JPEG_FORMATS and encoding.jpeg_tables:
        options.update(qtables=[list(table) for table in encoding.jpeg_tables],
                       progressive=encoding.progressive)
        if encoding.jpeg_subsampling >= 0:
            options["subsampling"] = encoding.jpeg_subsampling
    elif image_format in _LOSSY_FORMATS or (image_format == "WEBP" and not encoding.lossless):
        options["quality"] = _JPEG_QUALITY
    elif image_format == "WEBP":
        options.update(lossless=True, exact=True)  # exact: keep the colour under transparent pixels
    elif image_format == "TIFF" and _tiff_compression_fits(encoding.tiff_compression, image.mode):
        options["compression"] = encoding.tiff_compression
        if encoding.tiff_compression == "jpeg":
            options["quality"] = _JPEG_QUALITY
    elif image_format == "ICO":
        options["sizes"] = [image.size]  # else PIL writes only the standard sizes below it: a smaller icon
    # Writers that cannot store a resolution, a profile or EXIF ignore them.
    if encoding.dpi:
        options["dpi"] = encoding.dpi
    if encoding.icc_profile and encoding.icc_profile[16:20] == _PROFILE_SPACES.get(image.mode):
        options["icc_profile"] = encoding.icc_profile  # not a CMYK one on a CMYK input's RGB PNG
    if encoding.exif:
        options["exif"] = encoding.exif
    options.update(_descriptive_metadata(image_format, encoding))
    return image, options


def _descriptive_metadata(image_format: str, encoding: SourceEncoding) -> dict:
    """PIL's save options that put back the input's XMP, comment, PNG text and colour chunks."""
    options = {}
    if encoding.xmp and image_format in ("JPEG", "MPO", "WEBP", "HEIF", "AVIF"):
        options["xmp"] = encoding.xmp
    if encoding.comment and image_format in ("JPEG", "MPO", "GIF"):
        options["comment"] = encoding.comment
    if image_format == "PNG" and (encoding.text or encoding.xmp or encoding.png_colour):
        info = PngImagePlugin.PngInfo()
        for kind, data in encoding.png_colour:
            info.add(kind, data)  # PIL puts these before the palette and image data, as PNG requires
        for key, value in encoding.text:
            info.add_text(key, value)  # iTXt where the value is not Latin-1
        if encoding.xmp:
            info.add_itxt(XMP_PNG_KEY, encoding.xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    return options


def _tiff_compression_fits(compression: str | None, mode: str) -> bool:
    """Whether libtiff writes `mode` with the input's compression (it aborts the whole process on
    some pairs, e.g. JPEG for bilevel): lossless ones for any mode, fax ones for bilevel, JPEG for
    8-bit RGB or grey. Others are written uncompressed."""
    return (compression in _TIFF_LOSSLESS or (compression in _TIFF_FAX and mode == "1")
            or (compression == "jpeg" and mode in ("RGB", "L")))


def grey_image(rgb: np.ndarray, alpha: np.ndarray | None, encoding: SourceEncoding) -> Image.Image:
    """A grey input's own mode back. Luma of the RGB: each pixel not removed is (g, g, g), whose
    luma is exactly g, and the fill loses the tint the colour model gives it. Bilevel: the fill
    dithered, every pure black or white pixel as it was. 16-bit: each pixel the model did not
    change keeps its 16-bit value, the fill's v becomes v * 257."""
    grey = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    if encoding.mode == "1":
        dithered = np.asarray(Image.fromarray(grey, "L").convert("1"))
        return Image.fromarray(np.where((grey == 0) | (grey == 255), grey == 255, dithered))
    if encoding.mode == "I;16":
        return Image.fromarray(with_16_bits_kept(grey, encoding.own_values))
    if alpha is not None:
        return Image.fromarray(np.dstack([grey, alpha]), "LA")
    return Image.fromarray(grey, "L")


def with_own_values_kept(model_pixels: np.ndarray, own_values: np.ndarray, seen_by_models,
                         from_models) -> np.ndarray:
    """Each pixel the model did not change (still what the models were given of it) keeps the
    input's own value; the fill is written as `from_models` of it."""
    kept = model_pixels == seen_by_models(own_values)
    if kept.ndim == 3:
        kept = kept.all(axis=2, keepdims=True)
    return np.where(kept, own_values, from_models(model_pixels))


def with_16_bits_kept(eight_bits: np.ndarray, values16: np.ndarray) -> np.ndarray:
    """16-bit values outside the hole, the fill's v as v * 257."""
    return with_own_values_kept(eight_bits, values16, scaled_to_8_bits,
                                lambda fill: fill.astype(np.uint16) * 257)


def cmyk_image(rgb: np.ndarray, cmyk: np.ndarray) -> Image.Image:
    """The input's inks outside the hole, so a print file's colours do not pass through RGB; the
    fill in PIL's inks for it (what PIL converts back to exactly the fill's RGB)."""
    def as_rgb(inks):
        return np.asarray(Image.fromarray(inks, "CMYK").convert("RGB"))

    def as_inks(colours):
        return np.asarray(Image.fromarray(colours, "RGB").convert("CMYK"))

    return Image.fromarray(with_own_values_kept(rgb, cmyk, as_rgb, as_inks), "CMYK")


def _colour16(rgb: np.ndarray, image_format: str, encoding: SourceEncoding) -> bytes:
    """16-bit RGB(A), its alpha as it was. PIL writes neither a 16-bit colour PNG nor TIFF: OpenCV
    encodes the samples, and the metadata the 8-bit path keeps is added to what it wrote."""
    values = encoding.own_values
    colour = with_16_bits_kept(rgb, values[..., :3])
    values = colour if values.shape[2] == 3 else np.dstack([colour, values[..., 3]])
    if image_format == "PNG":
        return _png16(values, encoding)
    if image_format == "TIFF":
        return _tiff16(values, encoding)
    if image_format == "PPM":  # no metadata to keep
        return _opencv_encoded(".ppm", values, [])
    raise ValueError("16-bit colour is written as PNG, TIFF or PPM only")


def _grey_with_alpha16(rgb: np.ndarray, image_format: str, encoding: SourceEncoding) -> bytes:
    """16-bit grey and alpha (a PNG's), its alpha as it was, its grey as `grey_image` makes it."""
    if image_format != "PNG":
        raise ValueError("16-bit grey with alpha is written as PNG only")
    grey = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    values = encoding.own_values
    samples = np.dstack([with_16_bits_kept(grey, values[..., 0]), values[..., 1]])
    return _with_png_metadata(png_of_16_bit_samples(samples, GREY_WITH_ALPHA), encoding)


def _png16(values: np.ndarray, encoding: SourceEncoding) -> bytes:
    png = _opencv_encoded(".png", values, [cv2.IMWRITE_PNG_COMPRESSION, 6])  # PIL's level
    return _with_png_metadata(png, encoding)


def _with_png_metadata(png: bytes, encoding: SourceEncoding) -> bytes:
    """A PNG written without PIL, with the chunks PIL writes for the 8-bit path: resolution,
    profile, EXIF, and those of `_descriptive_metadata` (text, XMP, colour chunks)."""
    chunks = []
    if encoding.dpi:
        chunks.append((b"pHYs", b"".join(round(dpi / 0.0254).to_bytes(4, "big") for dpi in encoding.dpi)
                       + b"\x01"))  # pixels per metre
    if encoding.icc_profile:
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(encoding.icc_profile)))
    if encoding.exif:
        chunks.append((b"eXIf", encoding.exif.removeprefix(b"Exif\0\0")))
    if text := _descriptive_metadata("PNG", encoding).get("pnginfo"):
        chunks += [(kind, data) for kind, data, *_ in text.chunks]
    metadata = b"".join(png_chunk(kind, data) for kind, data in chunks)
    return png[:PNG_HEADER_BYTES] + metadata + png[PNG_HEADER_BYTES:]


# What OpenCV's libtiff compresses; a 16-bit TIFF with another compression is written uncompressed.
_OPENCV_TIFF_COMPRESSIONS = _TIFF_LOSSLESS - {"zstd", "lzma"}
# The tags of OpenCV's TIFF that describe its strips, kept beside the input's metadata.
_TIFF_STRIP_LAYOUT = (TiffImagePlugin.IMAGEWIDTH, TiffImagePlugin.IMAGELENGTH, TiffImagePlugin.BITSPERSAMPLE,
                      TiffImagePlugin.COMPRESSION, TiffImagePlugin.PHOTOMETRIC_INTERPRETATION,
                      TiffImagePlugin.SAMPLESPERPIXEL, TiffImagePlugin.ROWSPERSTRIP,
                      TiffImagePlugin.PLANAR_CONFIGURATION, TiffImagePlugin.PREDICTOR)


def _tiff16(values: np.ndarray, encoding: SourceEncoding) -> bytes:
    """OpenCV's strips, compressed as the input was, under the tags PIL writes for the 8-bit path:
    EXIF (sub-IFDs included), profile, resolution."""
    compression = encoding.tiff_compression if encoding.tiff_compression in _OPENCV_TIFF_COMPRESSIONS else "raw"
    tiff = _opencv_encoded(".tiff", values, [cv2.IMWRITE_TIFF_COMPRESSION,
                                             TiffImagePlugin.COMPRESSION_INFO_REV[compression]])
    layout = Image.open(io.BytesIO(tiff)).tag_v2
    offsets, counts = layout[TiffImagePlugin.STRIPOFFSETS], layout[TiffImagePlugin.STRIPBYTECOUNTS]
    tags = TiffImagePlugin.ImageFileDirectory_v2(prefix=tiff[:2])  # the strips' byte order
    if encoding.exif:
        exif = Image.Exif()
        exif.load(encoding.exif)
        for tag in exif:
            tags[tag] = exif.get_ifd(tag) if tag in TiffTags.TAGS_V2_GROUPS else exif[tag]
    if encoding.icc_profile:
        tags[TiffImagePlugin.ICCPROFILE] = encoding.icc_profile
    if encoding.dpi:
        tags[TiffImagePlugin.RESOLUTION_UNIT] = 2  # inches
        tags[TiffImagePlugin.X_RESOLUTION], tags[TiffImagePlugin.Y_RESOLUTION] = encoding.dpi
    for tag in _TIFF_STRIP_LAYOUT:
        if tag in layout:
            tags[tag] = layout[tag]
    if values.shape[2] == 4:
        tags[TiffImagePlugin.EXTRASAMPLES] = 2  # unassociated alpha, as PIL writes RGBA
    for long_tag in (TiffImagePlugin.STRIPOFFSETS, TiffImagePlugin.STRIPBYTECOUNTS):
        tags.tagtype[long_tag] = TiffTags.LONG  # a SHORT would not hold them past 64 KiB
    tags[TiffImagePlugin.STRIPBYTECOUNTS] = counts
    # Where each strip starts after the first: tobytes() moves them all past the tags' own data.
    tags[TiffImagePlugin.STRIPOFFSETS] = tuple(int(start) for start in np.cumsum((0,) + counts[:-1]))
    buffer = io.BytesIO()
    tags.save(buffer)
    buffer.write(b"".join(tiff[offset:offset + count] for offset, count in zip(offsets, counts)))
    return buffer.getvalue()


def _opencv_encoded(extension: str, values: np.ndarray, parameters: list[int]) -> bytes:
    written, encoded = cv2.imencode(extension, bgr_order(values), parameters)
    if not written:
        raise ValueError(f"OpenCV could not write a 16-bit {extension[1:].upper()}")
    return encoded.tobytes()


def onto_palette(rgb: np.ndarray, alpha: np.ndarray | None, palette: bytes,
                 transparency: int | None) -> Image.Image:
    """A P image on the input's own palette, without dithering: every pixel whose colour is in
    the palette keeps it exactly, the inpainted ones get the nearest. Only transparent pixels get
    the transparent index."""
    colours = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette(palette)
    # PIL's search is fast but approximate (it buckets colours by their high bits), so it only
    # places the colours the palette lacks; the others are looked up exactly below.
    indices = np.array(Image.fromarray(rgb, "RGB").quantize(palette=palette_image, dither=Image.Dither.NONE))
    opaque = np.flatnonzero(np.arange(len(colours)) != (-1 if transparency is None else transparency))
    if opaque.size:
        keys = packed_colours(colours[opaque])
        order = np.argsort(keys, kind="stable")
        keys, entries = keys[order], opaque[order]
        packed = packed_colours(rgb)
        position = np.searchsorted(keys, packed).clip(max=len(keys) - 1)
        exact = keys[position] == packed
        indices[exact] = entries[position[exact]]
        if transparency is not None:  # a new colour nearest the transparent entry's stays visible
            stray = ~exact & (indices == transparency)
            distances = np.abs(rgb[stray][:, None, :].astype(np.int32) - colours[opaque][None]).sum(axis=2)
            indices[stray] = opaque[distances.argmin(axis=1)]
    if transparency is not None and alpha is not None:
        indices[alpha == 0] = transparency
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette(palette)
    return image


def without_removed_regions_in_xmp(info: ImageInfo) -> ImageInfo:
    """The cleaned image's (or frame's) info less the XMP face and person regions of what was
    removed, in its XMP or a TIFF's (in its EXIF), less the names only they gave (in XMP and in
    IPTC's keywords), and with a note saying how many."""
    encoding = info.encoding
    if encoding is None or not any(has_regions(data) for data in (encoding.xmp, encoding.exif) if data):
        return info
    in_removed = _in_removed(removed_region(info, info.frame), encoding.turned)
    dropped, gone = 0, frozenset()
    if encoding.xmp:
        xmp, dropped, gone = without_removed_regions(encoding.xmp, in_removed)
        encoding = dataclasses.replace(encoding, xmp=xmp)
    exif = Image.Exif()
    if encoding.exif and has_regions(encoding.exif):  # a TIFF's XMP
        exif.load(encoding.exif)
    if (xmp := exif.get(XMP_TAG)) is not None:
        exif[XMP_TAG], dropped_in_exif, gone_in_exif = without_removed_regions(
            xmp.encode() if isinstance(xmp, str) else bytes(xmp), in_removed)
        dropped, gone = max(dropped, dropped_in_exif), gone | gone_in_exif
    if not dropped:
        return info
    if gone:  # out of IPTC's keywords too: a JPEG's Photoshop block, a TIFF's, or a TIFF's IPTC tag
        if encoding.photoshop:
            encoding = dataclasses.replace(encoding, photoshop=photoshop_without_keywords(encoding.photoshop, gone))
        if PHOTOSHOP_TAG in exif:
            exif[PHOTOSHOP_TAG] = photoshop_without_keywords(bytes(exif[PHOTOSHOP_TAG]), gone)
        if IPTC_TAG in exif:
            exif[IPTC_TAG] = iim_without_keywords(bytes(exif[IPTC_TAG]), gone)
    if len(exif):
        encoding = dataclasses.replace(encoding, exif=exif.tobytes())
    regions = "region" if dropped == 1 else "regions"
    return info.replace(encoding=encoding).with_note(
        f"{dropped} XMP face or person {regions} of what was removed dropped, with the names only they gave")


def _in_removed(removed: np.ndarray, turned: int | None):
    """Whether half a region's box or more was removed. The box is read on the written, upright
    pixels and, where an orientation turned them, on the stored ones too: photo managers differ."""
    views = [removed] + ([UPRIGHT[_TURNED_BACK.get(turned, turned)](removed)] if turned else [])

    def test(box: RegionBox) -> bool:
        return any(_share_removed(view, box(view.shape[1], view.shape[0])) >= 0.5 for view in views)
    return test


_TURNED_BACK = {6: 8, 8: 6}  # the orientations whose turn undoes the other's; the rest undo their own


def _share_removed(removed: np.ndarray, box) -> float:
    height, width = removed.shape
    x0, y0, x1, y1 = box
    left, top = (min(max(int(v * size), 0), size - 1) for v, size in ((x0, width), (y0, height)))
    right, bottom = (max(min(int(np.ceil(v * size)), size), start + 1)
                     for v, size, start in ((x1, width, left), (y1, height, top)))
    return float(removed[top:bottom, left:right].mean())


def orientation_only(encoding: SourceEncoding | None) -> SourceEncoding | None:
    """What a frame's info keeps of its encoding where the writer does not need the rest: how its
    pixels were turned upright, which its image's XMP sidecar is written upright with."""
    return SourceEncoding(turned=encoding.turned) if encoding is not None and encoding.turned else None


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


@skip_type_inference
class WriteImage(beam.DoFn):
    """`(ImageInfo, rgb)` -> `ImageInfo` with `output_uri` and final status (error on failure);
    an info with no status yet (straight from the inpainter) is a cleaned image.

    With `copy_unchanged` (file inputs) an image with nothing to remove is written as the input's
    own bytes; otherwise (TFRecord inputs, written as `<id>.png`) it is encoded like a cleaned one.
    A frame of a multi-frame input is stored instead, its info on the 'frame' output, until
    `transforms.frames.AssembleFrames` writes its image's frames together.
    """

    FRAME = "frame"

    def __init__(self, output_root: str, copy_unchanged: bool):
        self._output_root = output_root
        self._copy_unchanged = copy_unchanged
        self._counters = {}

    def setup(self):
        self._counters = {status: beam.metrics.Metrics.counter(NAMESPACE, f"images_{status}")
                          for status in ("cleaned", "unchanged")}
        self._errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")
        # Counted here, once an image is written: an image that failed after its instances were
        # chosen (inpainting, encoding, the write) removed nothing.
        self._instances = {flag: beam.metrics.Metrics.counter(NAMESPACE, f"instances_{flag}")
                           for flag in ("removed", "kept")}

    def process(self, element):
        info, rgb = element
        if info.frames > 1:
            yield beam.pvalue.TaggedOutput(self.FRAME, self._stored(info, rgb))
            return
        if info.status is None:  # cleaned
            info = without_removed_regions_in_xmp(info)
        yield self.written(info, lambda: encode_image(rgb, info.image_format, info.alpha, info.encoding))

    def _stored(self, info, rgb):
        """The frame's info, its pixels stored; an unchanged frame of a file input is not stored:
        decoded again from the input, should another frame of it be cleaned."""
        info = info.replace(status=info.status or CLEANED)
        if info.status == UNCHANGED and self._copy_unchanged:
            return info.replace(alpha=None, encoding=orientation_only(info.encoding))
        try:
            return store_frame(self._output_root, info, rgb)
        except Exception as e:  # noqa: BLE001 - its image becomes an error row
            return info.failed("write", e)

    def written(self, info, encode):
        """`info` once its image is written: `encode()` gives `encode_image`'s bytes and reason."""
        status = info.status or CLEANED
        path = output_path(self._output_root, info.relative_path)
        try:
            if status == UNCHANGED and self._copy_unchanged:
                data = read_bytes(info.image_uri)
            else:
                data, not_written_because = encode()
                if not_written_because:
                    path = fallback_path(path)
                    info = info.with_note(f"{not_written_because}: written as {FALLBACK_FORMAT} "
                                          f"to {posixpath.basename(path)}")
            # First, so an image written has its sidecars; an error row has none.
            with_sidecars, sidecars = self._with_sidecars_written(info, status)
            try:
                write_atomically(path, data)
            except Exception:
                with contextlib.suppress(Exception):  # the image's own failure is its error
                    FileSystems.delete(sidecars)
                raise
        except Exception as e:  # noqa: BLE001 - a failed write is this image's error row
            self._errors.inc()
            return info.failed("write", e)
        self._counters[status].inc()
        for flag, counter in self._instances.items():
            if count := sum(bool(instance.get(flag)) for instance in info.instances):
                counter.inc(count)
        return with_sidecars.replace(status=status, output_uri=path, alpha=None, encoding=None)

    def _with_sidecars_written(self, info: ImageInfo, status: str) -> tuple[ImageInfo, list[str]]:
        """Each of the image's sidecars written beside its output, under its own name: beside an
        unchanged image as it was; beside a cleaned one an XMP sidecar as the image's own XMP is
        written (upright with it, less the face and person regions of what was removed and the
        names only they gave). One that cannot be written is a note. Returns the info and the
        sidecars written."""
        written = []
        for sidecar in info.sidecars:
            name = posixpath.basename(sidecar)
            try:
                data = read_bytes(sidecar)
                if status == CLEANED and name.lower().endswith(".xmp"):
                    data, dropped = _cleaned_sidecar(info, data)
                    if dropped:
                        info = info.with_note(f"{dropped} XMP face or person region{'s' * (dropped > 1)} of "
                                              f"what was removed dropped from its sidecar {name}, with the "
                                              f"names only they gave")
                path = sidecar_output_path(self._output_root, info.relative_path, sidecar)
                write_atomically(path, data)
                written.append(path)
            except Exception as e:  # noqa: BLE001 - the image still counts
                info = info.with_note(f"sidecar {name} not written: {type(e).__name__}: {e}")
        return info, written


def _cleaned_sidecar(info: ImageInfo, xmp: bytes) -> tuple[bytes, int]:
    """An XMP sidecar of the cleaned image `info` as its own XMP is written, in the sidecar's own
    encoding, and how many regions it lost. Those of a multi-frame image's are tested on its first
    frame. One that may name regions but is not well-formed XML is refused: as it was, it could
    still name who was removed."""
    codec = xml_codec(xmp)
    xmp = xmp.decode(codec).encode("utf-8") if codec != "utf-8" else xmp
    if has_regions(xmp) and not well_formed(xmp):
        raise ValueError("not well-formed XML, so the face and person regions of what was removed "
                         "could not be taken out of it")
    turned = info.encoding.turned if info.encoding is not None else None
    xmp = xmp_to_write(xmp, turned is not None, [])
    xmp, dropped, _ = without_removed_regions(xmp, _in_removed(removed_region(info, 0), turned))
    return (xmp.decode("utf-8").encode(codec) if codec != "utf-8" else xmp), dropped
