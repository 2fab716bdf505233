"""What an archive records about a photo beside its pixels (XMP, IPTC, comments, PNG text: captions,
credits, copyright; a PNG's colour chunks), read from the input so the writer can put it back: a
cleaned photo must not lose its rights statement, nor show other colours. Thumbnails are left out
(they would still show what was removed), an XMP orientation is set upright where the pixels
were turned, and the XMP face and person regions of what was removed go, with their names.
"""
from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Callable
from xml.etree import ElementTree

from PIL import Image

_PHOTOSHOP = b"Photoshop 3.0\x00"
_THUMBNAIL_RESOURCES = {0x0409, 0x040C}
_MAX_SEGMENT = 65533  # a JPEG segment's payload, its 2 length bytes aside
XMP_PNG_KEY = "XML:com.adobe.xmp"
_XMP_ORIENTATION = re.compile(rb"""(tiff:Orientation(?:\s*=\s*["']|>))[1-8]""")
_XMP_THUMBNAILS = re.compile(rb"<xmp:Thumbnails\b.*?</xmp:Thumbnails>", re.DOTALL)


def upright_xmp(xmp: bytes | str, orientation_applied: bool) -> bytes:
    """The XMP without thumbnails, with orientation 1 where the pixels were turned upright (else
    viewers that read XMP would turn them again)."""
    xmp = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    xmp = _XMP_THUMBNAILS.sub(b"", xmp)
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if orientation_applied else xmp


def photoshop_resources(image: Image.Image, notes: list[str]) -> bytes | None:
    """A JPEG's Photoshop resource block (APP13: IPTC captions, credits, ...) without thumbnails."""
    segments = [data[len(_PHOTOSHOP):] for marker, data in getattr(image, "applist", ())
                if marker == "APP13" and data.startswith(_PHOTOSHOP)]
    return without_thumbnails(b"".join(segments), notes) if segments else None


def without_thumbnails(resources: bytes, notes: list[str]) -> bytes | None:
    """Photoshop resources (a JPEG's APP13, a TIFF's tag 34377) less their thumbnails; None, with a
    note, where they cannot be read."""
    try:
        return _without_thumbnails(bytes(resources)) or None
    except ValueError as e:
        notes.append(f"IPTC not kept: its Photoshop block is unreadable ({e})")
        return None


def _without_thumbnails(resources: bytes) -> bytes:
    kept, position = [], 0
    while position < len(resources):
        if resources[position:position + 4] != b"8BIM":
            raise ValueError(f"no 8BIM signature at byte {position}")
        (resource_id,) = struct.unpack_from(">H", resources, position + 4)
        name_length = resources[position + 6]
        size_at = position + 6 + ((name_length + 2) & ~1)  # the Pascal name, padded to even
        if size_at + 4 > len(resources):
            raise ValueError("cut short")
        (size,) = struct.unpack_from(">I", resources, size_at)
        end = size_at + 4 + size + (size & 1)
        if end > len(resources) + (size & 1):
            raise ValueError("cut short")
        if resource_id not in _THUMBNAIL_RESOURCES:
            kept.append(resources[position:end])
        position = end
    return b"".join(kept)


def with_photoshop_resources(jpeg: bytes, resources: bytes) -> bytes:
    """`jpeg` with APP13 segments holding `resources`, after its other APPn segments (PIL cannot
    write them)."""
    position = 2  # after SOI
    while jpeg[position] == 0xFF and 0xE0 <= jpeg[position + 1] <= 0xEF:
        (length,) = struct.unpack_from(">H", jpeg, position + 2)
        position += 2 + length
    room = _MAX_SEGMENT - len(_PHOTOSHOP)
    segments = b"".join(
        b"\xff\xed" + struct.pack(">H", 2 + len(_PHOTOSHOP) + len(chunk)) + _PHOTOSHOP + chunk
        for chunk in (resources[i:i + room] for i in range(0, len(resources), room)))
    return jpeg[:position] + segments + jpeg[position:]


_PNG_COLOUR_CHUNKS = {b"gAMA", b"cHRM", b"sRGB", b"cICP"}


def png_colour_chunks(data: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """A PNG's gamma, chromaticities, sRGB intent and cICP: how its values are meant to be shown,
    which PIL reads but does not write back. Read from the chunks before the image data."""
    chunks, position = [], 8  # after the signature
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IDAT":
            break
        if kind in _PNG_COLOUR_CHUNKS:
            chunks.append((kind, data[position + 8:position + 8 + length]))
        position += 12 + length  # length, type, data, CRC
    return tuple(chunks)


def png_text(image: Image.Image) -> tuple[tuple[str, str], ...]:
    """A PNG's text chunks (title, author, copyright, ...), XMP apart."""
    text = getattr(image, "text", None) or {}
    return tuple((key, value) for key, value in text.items()
                 if key != XMP_PNG_KEY and isinstance(value, str))


# Face and person regions that photo managers (Lightroom, digiKam, Picasa: MWG; Windows Photo
# Gallery: Microsoft's) write into XMP, with the person's name: a removed person's would stay.
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_MWG_REGIONS = "http://www.metadataworkinggroup.com/schemas/regions/"
_AREA = "http://ns.adobe.com/xmp/sType/Area#"
_MP_REGION = "http://ns.microsoft.com/photo/1.2/t/Region#"
_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_XMP_META = re.compile(rb"<(?:[\w.-]+:)?xmpmeta\b.*</(?:[\w.-]+:)?xmpmeta\s*>", re.DOTALL)
_NAMESPACE = re.compile(rb"""xmlns:([\w.-]+)\s*=\s*["']([^"']*)["']""")

Box = tuple[float, float, float, float]  # x0, y0, x1, y1, as fractions of the width and height


def has_regions(xmp: bytes) -> bool:
    """Whether XMP (or what holds it) may name face or person regions."""
    return any(uri in xmp for uri in (_MWG_REGIONS.encode(), _MP_REGION.encode()))


def without_removed_regions(xmp: bytes, removed: Callable[[Box], bool]) -> tuple[bytes, int]:
    """The XMP less the face and person regions (MWG or Microsoft's) that `removed` says lie in
    the removed area, and less their names in IPTC's PersonInImage where no region left names
    them; and how many regions were dropped. An XMP without regions, or that is not well-formed
    XML, comes back as it was."""
    meta = _XMP_META.search(xmp)
    if meta is None or not has_regions(xmp) or b"<!DOCTYPE" in xmp:
        return xmp, 0  # XMP has no DOCTYPE: one would only declare entities to expand
    for prefix, uri in _NAMESPACE.findall(xmp):  # written back under the prefixes it had
        with contextlib.suppress(ValueError):  # a prefix ElementTree keeps for itself
            ElementTree.register_namespace(prefix.decode(), uri.decode())
    try:
        root = ElementTree.fromstring(meta.group())
    except ElementTree.ParseError:
        return xmp, 0
    dropped, kept = [], []
    for bag in root.iter(f"{{{_RDF}}}Bag"):
        for item in list(bag):
            box = _region_box(item)
            if box is None:
                continue
            name = _value(item, f"{{{_MWG_REGIONS}}}Name") or _value(item, f"{{{_MP_REGION}}}PersonDisplayName")
            if removed(box):
                bag.remove(item)
                dropped.append(name)
            else:
                kept.append(name)
    if not dropped:
        return xmp, 0
    for people in root.iter(f"{{{_IPTC_EXT}}}PersonInImage"):
        for bag in people:
            for item in list(bag):
                if item.text in dropped and item.text not in kept:
                    bag.remove(item)
    # As text, not bytes: those would start with an XML declaration, out of place after the xpacket's.
    text = ElementTree.tostring(root, encoding="unicode").encode("utf-8")
    return xmp[:meta.start()] + text + xmp[meta.end():], len(dropped)


def _region_box(item: ElementTree.Element) -> Box | None:
    """An MWG region's area (its centre, width and height, normalized) or a Microsoft one's
    rectangle (its top left corner, width and height), as corners; None for anything else."""
    try:
        if (rectangle := _value(item, f"{{{_MP_REGION}}}Rectangle")) is not None:
            x, y, w, h = (float(part) for part in rectangle.split(","))
            return x, y, x + w, y + h
        area = next(item.iter(f"{{{_MWG_REGIONS}}}Area"), None)
        if area is None or (_value(area, f"{{{_AREA}}}unit") or "normalized") != "normalized":
            return None
        x, y = (float(_value(area, f"{{{_AREA}}}{axis}")) for axis in "xy")
        w, h = (float(_value(area, f"{{{_AREA}}}{size}") or 0) for size in "wh")  # a point has none
    except (TypeError, ValueError):  # a region without its numbers
        return None
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _value(element: ElementTree.Element, name: str) -> str | None:
    """A property of `element` or of an element inside it, written as an attribute or an element."""
    for inner in element.iter():
        if name in inner.attrib:
            return inner.attrib[name]
        if inner.tag == name:
            return (inner.text or "").strip()
    return None
