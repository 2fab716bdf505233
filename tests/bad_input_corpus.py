"""Generates the messy-archive corpus of issue 8 (no checked-in binaries): each case is a file
plus, for masks mode, its mask, and the status the pipeline must give it."""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

from tests.conftest import textured_image
from transforms.png_rows import png_chunk


@dataclass
class Case:
    relative: str           # path under the input folder
    data: bytes
    expected: str           # status
    error_contains: str = ""
    mask: bytes | None = None  # the user mask file for masks mode; None = none written
    note_contains: str = ""
    written_as: str = ""  # the output's path under images/ when it is not `relative`
    written_format: str = ""  # the output's format when it is not the input's (nor PNG, as written_as)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _rgb(h, w, seed=0) -> Image.Image:
    return Image.fromarray(textured_image(h, w, seed))


def decompression_bomb_png(width=100_000, height=100_000) -> bytes:
    """A few hundred bytes declaring 10 gigapixels: must be refused from the header alone."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def ycck_jpeg(h, w) -> bytes:
    """A YCCK JPEG (Adobe transform 2), as Photoshop writes CMYK: encode YCCK values as CMYK,
    then flip the Adobe marker's transform flag so decoders convert YCCK -> CMYK -> RGB."""
    r, g, b = np.moveaxis(textured_image(h, w, 5).astype(np.float32), 2, 0)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    ycck = np.clip(np.dstack([y, cb, cr, np.full_like(y, 255)]), 0, 255).astype(np.uint8)
    data = bytearray(_encode(Image.fromarray(ycck, "CMYK"), "JPEG", quality=95))
    adobe = data.find(b"Adobe")
    assert adobe > 0, "PIL wrote no Adobe marker for a CMYK JPEG"
    data[adobe + 11] = 2  # 'Adobe' + version(2) + flags0(2) + flags1(2) -> transform byte
    return bytes(data)


def exif_rotated_jpeg(h, w) -> bytes:
    """Stored landscape (w x h) with orientation 6: displayed portrait (h x w)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_rgb(h, w, 7), "JPEG", quality=95, exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [_rgb(24, 24, s).convert("P") for s in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def multipage_tiff() -> bytes:
    pages = [_rgb(20, 30, s) for s in range(2)]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def xpm_image(h, w) -> bytes:
    """A checkerboard XPM: a format PIL reads but cannot write."""
    rows = ['"' + "".join("ab"[(x + y) % 2] for x in range(w)) + '"' for y in range(h)]
    return ("/* XPM */\nstatic char *icon[] = {\n"
            f'"{w} {h} 2 1",\n"a c #FF0000",\n"b c #0000FF",\n' + ",\n".join(rows) + "};\n").encode()


def float_tiff(h, w) -> bytes:
    """32-bit float samples in 0-1, as scientific and HDR tools write them."""
    return _encode(Image.fromarray(textured_image(h, w, 12)[:, :, 0].astype(np.float32) / 255, "F"), "TIFF")


def mpo_jpeg(h, w) -> bytes:
    """A camera's multi-picture JPEG (PIL opens it as MPO)."""
    pictures = [_rgb(h, w, seed) for seed in (13, 14)]
    return _encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=95)


MP_VGA_PREVIEW, MP_DISPARITY = 0x010001, 0x020002


def with_mp_types(mpo: bytes, *types: int) -> bytes:
    """`mpo` (as PIL writes it) with its later pictures' MP types set: PIL writes 'Undefined'."""
    header = mpo.index(b"MPF\x00") + 4  # a little-endian TIFF header, then the MP index's IFD
    (ifd,) = struct.unpack_from("<L", mpo, header + 4)
    (count,) = struct.unpack_from("<H", mpo, header + ifd)
    tags = [struct.unpack_from("<HHLL", mpo, header + ifd + 2 + 12 * n) for n in range(count)]
    at = header + next(offset for tag, _, _, offset in tags if tag == 0xB002) + 16  # after the primary's entry
    for mp_type in types:
        mpo = mpo[:at] + struct.pack("<L", mp_type) + mpo[at + 4:]
        at += 16
    return mpo


def jpeg_with_preview(h, w) -> bytes:
    """A camera JPEG with a smaller preview of itself in an MPF index, as Sony's, Nikon's and
    Fujifilm's write them (PIL opens it as MPO)."""
    mpo = _encode(_rgb(h, w, 15), "MPO", save_all=True, append_images=[_rgb(h // 2, w // 2, 16)], quality=95)
    return with_mp_types(mpo, MP_VGA_PREVIEW)


def tiff_with_tags(tags: dict[int, tuple[int, object]]) -> bytes:
    """A small RGB TIFF carrying `tags` ({tag: (TIFF type, value)}), e.g. a camera raw's."""
    directory = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, (kind, value) in tags.items():
        directory.tagtype[tag] = kind
        directory[tag] = value
    return _encode(_rgb(16, 24, 14), "TIFF", tiffinfo=directory)


# Alice (left) and Bob (right) as Lightroom/Picasa (MWG, Alice's area as attributes, Bob's as
# elements) and Windows Photo Gallery (Microsoft's rectangles) tag them, and in IPTC's PersonInImage.
REGIONS_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" '
    b'xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" '
    b'xmlns:MP="http://ns.microsoft.com/photo/1.2/" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" '
    b'xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#" '
    b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
    b'<dc:rights>(c) City Archive</dc:rights>'
    b'<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:AppliedToDimensions stDim:w="40" stDim:h="20" stDim:unit="pixel"/>'
    b'<mwg-rs:RegionList><rdf:Bag>'
    b'<rdf:li><rdf:Description mwg-rs:Name="Alice" mwg-rs:Type="Face"><mwg-rs:Area stArea:x="0.25" stArea:y="0.5" '
    b'stArea:w="0.2" stArea:h="0.4" stArea:unit="normalized"/></rdf:Description></rdf:li>'
    b'<rdf:li rdf:parseType="Resource"><mwg-rs:Name>Bob</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>'
    b'<mwg-rs:Area rdf:parseType="Resource"><stArea:x>0.75</stArea:x><stArea:y>0.5</stArea:y><stArea:w>0.2</stArea:w>'
    b'<stArea:h>0.4</stArea:h><stArea:unit>normalized</stArea:unit></mwg-rs:Area></rdf:li>'
    b'</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>'
    b'<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>'
    b'<rdf:li MPReg:Rectangle="0.15, 0.3, 0.2, 0.4" MPReg:PersonDisplayName="Alice"/>'
    b'<rdf:li MPReg:Rectangle="0.65, 0.3, 0.2, 0.4" MPReg:PersonDisplayName="Bob"/>'
    b'</rdf:Bag></MPRI:Regions></MP:RegionInfo>'
    b'<Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Alice</rdf:li><rdf:li>Bob</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>'
    b'</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>')


def mask_png(w: int, h: int) -> bytes:
    """A hole over the middle half of a w x h image (at least one pixel)."""
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4:max(h // 4 + 1, 3 * h // 4), w // 4:max(w // 4 + 1, 3 * w // 4)] = 255
    return _encode(Image.fromarray(mask), "PNG")


def left_mask_png(w: int, h: int) -> bytes:
    """A hole over the left 45% of a w x h image: where REGIONS_XMP puts Alice."""
    mask = np.zeros((h, w), np.uint8)
    mask[:, :w * 45 // 100] = 255
    return _encode(Image.fromarray(mask), "PNG")


def build_cases() -> list[Case]:
    good_png = _encode(_rgb(32, 40, 1), "PNG")
    good_jpeg = _encode(_rgb(32, 40, 2), "JPEG", quality=90)
    palette = _rgb(30, 30, 3).convert("P", palette=Image.ADAPTIVE, colors=16)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 0
    rgba = _rgb(30, 30, 4).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (30, 1))))
    la = _rgb(30, 30, 6).convert("LA")
    grey16 = Image.fromarray((np.arange(30 * 30).reshape(30, 30) * 70).astype(np.uint16))
    colour16 = (np.arange(30 * 30 * 4).reshape(30, 30, 4) * 18).astype(np.uint16)  # BGRA
    return [
        Case("zero.jpg", b"", "error", "empty file"),
        Case("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "error", "truncated", mask=mask_png(40, 32)),
        Case("truncated.png", good_png[: len(good_png) // 2], "error", "truncated or corrupt PNG", mask=mask_png(40, 32)),
        Case("text.jpg", b"just some notes, not a photo\n" * 10, "error", "not an image file"),
        Case("document.jpg", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "error",
             "not an image file (a PDF document: only still images are cleaned)"),
        Case("IMG_0001.MOV", b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(64), "error",
             "not an image file (a video (MP4, QuickTime or 3GP): only still images are cleaned)"),
        Case("error-page.png", b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "error",
             "not an image file"),
        Case("bomb.png", decompression_bomb_png(), "error", "over the limit"),
        Case("grey16.png", _encode(grey16, "PNG"), "cleaned", mask=mask_png(30, 30)),
        Case("rgb16.png", cv2.imencode(".png", colour16[..., :3])[1].tobytes(), "cleaned",
             mask=mask_png(30, 30)),
        Case("rgba16.tif", cv2.imencode(".tiff", colour16)[1].tobytes(), "cleaned", mask=mask_png(30, 30)),
        Case("cmyk.jpg", _encode(_rgb(30, 30, 8).convert("CMYK"), "JPEG", quality=95), "cleaned",
             mask=mask_png(30, 30)),
        Case("ycck.jpg", ycck_jpeg(30, 30), "cleaned", mask=mask_png(30, 30)),
        Case("palette.png", _encode(palette, "PNG"), "cleaned", mask=mask_png(30, 30)),
        Case("palette-transparent.png", _encode(palette_t, "PNG"), "cleaned", mask=mask_png(30, 30)),
        Case("rgba.png", _encode(rgba, "PNG"), "cleaned", mask=mask_png(30, 30)),
        Case("la.png", _encode(la, "PNG"), "cleaned", mask=mask_png(30, 30)),
        Case("grey.jpg", _encode(_rgb(30, 30, 9).convert("L"), "JPEG"), "cleaned", mask=mask_png(30, 30)),
        Case("phone.heic", _encode(_rgb(30, 40, 12), "HEIF", quality=90), "cleaned", mask=mask_png(40, 30)),
        Case("phone.avif", _encode(_rgb(30, 40, 13), "AVIF", quality=90), "cleaned", mask=mask_png(40, 30)),
        Case("one-pixel.png", _encode(_rgb(1, 1, 10), "PNG"), "error", mask=mask_png(1, 1),
             error_contains="cover the whole image"),  # its one pixel: nothing to fill it from
        Case("five-pixels.png", _encode(_rgb(1, 5, 10), "PNG"), "cleaned", mask=mask_png(5, 1)),
        Case("tall.png", _encode(_rgb(10000, 2, 11), "PNG"), "cleaned", mask=mask_png(2, 10000)),
        Case("animated.gif", animated_gif(), "cleaned", mask=mask_png(24, 24)),  # one mask, every frame
        Case("pages.tif", multipage_tiff(), "cleaned", mask=mask_png(30, 20)),
        Case("rotated.jpg", exif_rotated_jpeg(20, 40), "cleaned", mask=mask_png(20, 40),
             note_contains="EXIF orientation 6"),
        Case("float.tif", float_tiff(20, 30), "cleaned", mask=mask_png(30, 20),
             note_contains="32-bit float values 0-1 scaled to 8 bits"),
        Case("camera.jpg", mpo_jpeg(20, 30), "cleaned", mask=mask_png(30, 20)),
        Case("camera-with-preview.jpg", jpeg_with_preview(20, 30), "cleaned", mask=mask_png(30, 20),
             note_contains="1 MPF preview picture not read", written_format="JPEG"),
        # Camera raw files: by their name, or by the tags of one built on TIFF whatever its name.
        Case("raw/camera.nef", _encode(_rgb(16, 24, 15), "JPEG"), "error", "a camera raw file (.nef): its raw pixels"),
        Case("raw/renamed-dng.tif", tiff_with_tags({50706: (TiffTags.BYTE, 1)}), "error", "a camera raw file (DNG)"),
        Case("raw/preview-first.tif", tiff_with_tags({254: (TiffTags.LONG, 1), 330: (TiffTags.LONG, 8)}), "error",
             "a camera raw file (its first image a reduced-resolution preview"),
        Case("tagged-people.jpg", _encode(_rgb(20, 40, 16), "JPEG", xmp=REGIONS_XMP), "cleaned",
             mask=left_mask_png(40, 20), note_contains="2 XMP face or person regions of what was removed dropped"),
        Case("icon.xpm", xpm_image(12, 16), "cleaned", mask=mask_png(16, 12),
             note_contains="PIL cannot write XPM: written as PNG to icon.xpm.png", written_as="icon.xpm.png"),
        Case("names/with space.png", good_png, "cleaned", mask=mask_png(40, 32)),
        Case("names/ünïcödé 写真.png", good_png, "cleaned", mask=mask_png(40, 32)),
        Case("names/hash#1.png", good_png, "cleaned", mask=mask_png(40, 32)),
        Case("names/what?.png", good_png, "cleaned", mask=mask_png(40, 32)),
        Case("names/100%.png", good_png, "cleaned", mask=mask_png(40, 32)),
        Case("mask-missing.png", good_png, "error", "no mask file"),
        Case("mask-wrong-size.png", good_png, "error", "image is 40x32", mask=mask_png(10, 10)),
        Case("mask-not-image.png", good_png, "error", "not a readable image (starts with b'GIF89a not reall')",
             mask=b"GIF89a not really"),
    ]
