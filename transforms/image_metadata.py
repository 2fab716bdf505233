"""What an archive records about a photo beside its pixels (XMP, IPTC, comments, PNG text: captions,
credits, copyright; a PNG's colour chunks), read from the input so the writer can put it back: a
cleaned photo must not lose its rights statement, nor show other colours. Thumbnails are left out
(they would still show what was removed), an XMP orientation is set upright where the pixels
were turned, and the XMP face and person regions of what was removed go, with their names.
"""
from __future__ import annotations

import codecs
import contextlib
import hashlib
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


def xmp_to_write(xmp: bytes | str, orientation_applied: bool, notes: list[str]) -> bytes:
    """The XMP as a re-encoded image is to carry it: without thumbnails, with orientation 1 where
    the pixels were turned upright (else viewers that read XMP would turn them again), and without
    what describes parts of the file that are not written (`without_detached_parts`)."""
    xmp = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    xmp = _XMP_THUMBNAILS.sub(b"", xmp)
    xmp = _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if orientation_applied else xmp
    return without_detached_parts(xmp, notes)


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
    return b"".join(header + struct.pack(">I", len(data)) + data + b"\0" * (len(data) & 1)
                    for resource_id, header, data in _resources(resources)
                    if resource_id not in _THUMBNAIL_RESOURCES)


def _resources(resources: bytes):
    """(id, its signature, id and name as written, its data) of each Photoshop resource."""
    position = 0
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
        yield resource_id, resources[position:size_at], resources[size_at + 4:size_at + 4 + size]
        position = end


def without_jpegs(data: bytes) -> tuple[bytes, int]:
    """`data` (a camera's maker note) with each JPEG inside it, a preview of the photo, zeroed in
    place, so every offset in it still holds; and how many there were."""
    blanked, count, start = bytearray(data), 0, data.find(b"\xff\xd8\xff")
    while start != -1:
        end = _jpeg_end(data, start)
        if end is not None:
            blanked[start:end] = bytes(end - start)
            count += 1
        start = data.find(b"\xff\xd8\xff", end or start + 3)
    return bytes(blanked), count


def _jpeg_end(data: bytes, start: int) -> int | None:
    """Where the JPEG starting at `start` ends (after its EOI), or None where its markers are not
    a JPEG's (the three bytes were a chance in other data)."""
    position = start + 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2:
            return None
        position += 2 + length
        if marker == 0xDA:  # the scan: in its data an 0xFF is followed by 0 or a restart marker
            end = data.find(b"\xff\xd9", position)
            return None if end == -1 else end + 2
    return None


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


# ImageMagick's copies of a photo's EXIF, XMP, IPTC and Photoshop resources in a PNG's text,
# `Raw profile type <kind>`: "\n<kind>\n<length>\n<hex, in lines>".
# XMP in a GIF: an application extension whose data is the packet as is, then a "magic trailer"
# (1, 255, 254, ... 1, 0 and the terminator) that lets a reader skip it as sub-blocks.
_GIF_XMP = b"\x21\xff\x0bXMP DataXMP"
_GIF_XMP_TRAILER = bytes([1, *range(255, -1, -1), 0])


def gif_xmp(data: bytes) -> bytes | None:
    """A GIF's XMP packet (PIL reads none)."""
    start = data.find(_GIF_XMP)
    if start < 0:
        return None
    start += len(_GIF_XMP)
    end = data.find(_GIF_XMP_TRAILER[:4], start)  # 1, 255, 254, 253: no byte of UTF-8 text
    return (data[start:end] or None) if end > 0 else None


def with_gif_xmp(gif: bytes, xmp: bytes) -> bytes:
    """`gif` (as PIL writes it, without XMP) with `xmp`, before its first frame."""
    colour_table = 3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0
    header_end = 13 + colour_table  # the header, screen descriptor and global colour table
    return gif[:header_end] + _GIF_XMP + xmp + _GIF_XMP_TRAILER + gif[header_end:]


_RAW_PROFILE = "Raw profile type "


def png_text(image: Image.Image, notes: list[str]) -> tuple[tuple[str, str], ...]:
    """A PNG's text chunks (title, author, copyright, ...), XMP apart, and ImageMagick's raw
    profiles apart where they hold what is written otherwise: its EXIF (PIL reads the image's from
    there, and it is written as eXIf, upright and without its thumbnail, where this copy would keep
    both) and XMP (`png_raw_xmp`); its Photoshop resources stay, less their thumbnails."""
    kept = []
    for key, value in (getattr(image, "text", None) or {}).items():
        kind = key[len(_RAW_PROFILE):].lower() if key.startswith(_RAW_PROFILE) else None
        if key == XMP_PNG_KEY or not isinstance(value, str) or kind in ("exif", "app1", "xmp"):
            continue
        if kind == "8bim" and (profile := _raw_profile(value)) is not None:
            resources = without_thumbnails(profile, notes)
            if resources is None:
                continue
            value = _as_raw_profile(kind, resources)
        kept.append((key, value))
    return tuple(kept)


def png_raw_xmp(image: Image.Image) -> bytes | None:
    """The XMP of ImageMagick's raw profile, where a PNG has it."""
    value = (getattr(image, "text", None) or {}).get(_RAW_PROFILE + "xmp")
    return _raw_profile(value) if isinstance(value, str) else None


def _raw_profile(value: str) -> bytes | None:
    lines = value.strip("\n").split("\n")
    try:
        return bytes.fromhex("".join(lines[2:]))
    except ValueError:
        return None


def _as_raw_profile(kind: str, data: bytes) -> str:
    digits = data.hex()
    return f"\n{kind}\n{len(data):8d}\n" + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n"


# Face and person regions that photo managers (Lightroom, digiKam, Picasa: MWG; Windows Photo
# Gallery: Microsoft's; Photo Mechanic and news desks: IPTC's image regions) write into XMP, with
# the person's name: a removed person's would stay.
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_MWG_REGIONS = "http://www.metadataworkinggroup.com/schemas/regions/"
_AREA = "http://ns.adobe.com/xmp/sType/Area#"
_MP_REGION = "http://ns.microsoft.com/photo/1.2/t/Region#"
_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
# The x:xmpmeta element or, in XMP without it (which the standard allows: some sidecars), rdf:RDF.
_XMP_META = re.compile(rb"<(?:[\w.-]+:)?xmpmeta\b.*</(?:[\w.-]+:)?xmpmeta\s*>|<(?:[\w.-]+:)?RDF\b.*</(?:[\w.-]+:)?RDF\s*>",
                       re.DOTALL)
_NAMESPACE = re.compile(rb"""xmlns:([\w.-]+)\s*=\s*["']([^"']*)["']""")
# The keyword lists photo managers add a tagged person's name to, and what parts a hierarchical
# keyword's levels ("People|Alice"): a removed person's name is taken out of them too.
_KEYWORD_LISTS = {
    "{http://purl.org/dc/elements/1.1/}subject": None,
    "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject": "|",
    "{http://www.digikam.org/ns/1.0/}TagsList": "/",
    "{http://ns.microsoft.com/photo/1.0/}LastKeywordXMP": "/",
    "{http://ns.microsoft.com/photo/1.0/}LastKeywordIPTC": "/",
    "{http://ns.iview-multimedia.com/mediapro/1.0/}CatalogSets": "|",
}
_IIM_RESOURCE, _IIM_DIGEST_RESOURCE = 0x0404, 0x0425  # IPTC's IIM record, and its MD5 digest

# What phones and cameras store beside the photo in the same file, described in its XMP: a motion
# photo's video (Google's Motion Photo and MicroVideo), an Ultra HDR gain map, a depth map and the
# photo before its blur, the part of the XMP too big for its segment, a C2PA manifest (content
# credentials). None of it is read, and a
# re-encoded image is written without it: its description would point past the end of the file,
# or at the wrong bytes (and each would still show what was removed).
HDR_GAIN_MAP = "http://ns.adobe.com/hdr-gain-map/1.0/"
GAIN_MAP = "Ultra HDR gain map"
C2PA_CREDENTIALS = "C2PA content credentials (signed for the input's pixels)"
_DETACHED_PARTS = {  # namespace -> (the properties in it, or None for all; what they describe)
    # The list of the file's parts: named in notes by the parts it lists.
    "http://ns.google.com/photos/1.0/container/": (("Directory",), None),
    "http://ns.google.com/photos/1.0/camera/": (
        ("MotionPhoto", "MotionPhotoVersion", "MotionPhotoPresentationTimestampUs", "MicroVideo",
         "MicroVideoVersion", "MicroVideoOffset", "MicroVideoPresentationTimestampUs"), "motion photo's video"),
    HDR_GAIN_MAP: (None, GAIN_MAP),
    "http://ns.google.com/photos/1.0/depthmap/": (None, "depth map"),
    "http://ns.google.com/photos/1.0/image/": (None, "photo before its blur"),
    "http://ns.adobe.com/xmp/note/": (("HasExtendedXMP",), "extended XMP"),
    # A C2PA manifest (JPEG APP11, a PNG caBX chunk, ...) signs the input's pixels: where the XMP
    # points at it, the cleaned photo would fail its check.
    "http://purl.org/dc/terms/": (("provenance",), C2PA_CREDENTIALS),
}


def without_detached_parts(xmp: bytes, notes: list[str]) -> bytes:
    """The XMP less its description of the parts of the file beside the photo (`_DETACHED_PARTS`),
    each one found named in `notes`. XMP that is not well-formed comes back as it was."""
    if not any(namespace.encode() in xmp for namespace in _DETACHED_PARTS):
        return xmp
    root, meta = _parsed(xmp)
    if root is None:
        return xmp
    found = []
    for element in list(root.iter()):
        for name in [name for name in element.attrib if _is_detached(name)]:
            del element.attrib[name]
            found.append(_DETACHED_PARTS[name[1:].partition("}")[0]][1])
        for child in [child for child in element if _is_detached(child.tag)]:
            element.remove(child)
            found.append(_DETACHED_PARTS[child.tag[1:].partition("}")[0]][1])
    if not found:
        return xmp
    for part in dict.fromkeys(part for part in found if part):
        note_detached(part, notes)
    return xmp[:meta.start()] + _xml_text(root) + xmp[meta.end():]


def note_detached(part: str, notes: list[str]) -> None:
    """Says in `notes`, once, that `part` of the file is not read nor written with a re-encoded image."""
    if (note := f"{part} not read: a re-encoded image is written without it") not in notes:
        notes.append(note)


def _is_detached(name: str) -> bool:
    namespace, _, local = name[1:].partition("}")
    properties, _ = _DETACHED_PARTS.get(namespace, ((), ""))
    return properties is None or local in properties


Box = tuple[float, float, float, float]  # x0, y0, x1, y1, as fractions of the width and height
RegionBox = Callable[[int, int], Box]  # a region's box on pixels of that width and height


def has_regions(xmp: bytes) -> bool:
    """Whether XMP (or what holds it) may name face or person regions."""
    return (any(uri in xmp for uri in (_MWG_REGIONS.encode(), _MP_REGION.encode()))
            or (_IPTC_EXT.encode() in xmp and b"ImageRegion" in xmp))


def without_removed_regions(xmp: bytes, removed: Callable[[RegionBox], bool]) -> tuple[bytes, int, frozenset[str]]:
    """The XMP less the face and person regions (MWG, Microsoft's, IPTC's) that `removed` says lie
    in the removed area, and less the names only they gave (in IPTC's PersonInImage and its
    details, and in keywords: `photoshop_without_keywords` takes them out of IPTC's own); how many regions
    were dropped; and those names. An XMP without regions, or that is not well-formed XML, comes
    back as it was. An IPTC region marking a crop is not a person's: it stays."""
    root, meta = _parsed(xmp) if has_regions(xmp) else (None, None)
    if root is None:
        return xmp, 0, frozenset()
    dropped, dropped_names, kept_names = 0, set(), set()
    for bag in list(root.iter(f"{{{_RDF}}}Bag")):
        for item in list(bag):
            box = _region_box(item)
            if box is None:
                continue
            if removed(box):
                bag.remove(item)
                dropped += 1
                dropped_names |= _region_names(item)
            else:
                kept_names |= _region_names(item)
    if not dropped:
        return xmp, 0, frozenset()
    gone = frozenset(dropped_names - kept_names)
    _without_names(root, gone)
    return xmp[:meta.start()] + _xml_text(root) + xmp[meta.end():], dropped, gone


def well_formed(xmp: bytes) -> bool:
    """Whether the XMP's x:xmpmeta (else rdf:RDF) element is there and parses: where it does not,
    its regions cannot be read, nor taken out."""
    return _parsed(xmp)[0] is not None


# How XMP in UTF-32 or UTF-16, which the XMP standard allows, starts: a byte order mark or its
# first '<'. Read as bytes, none of its names would match ours.
_WIDE_XML = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (b"<\0\0\0", "utf-32-le"),
             (b"\0\0\0<", "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
             (b"<\0", "utf-16-le"), (b"\0<", "utf-16-be"))


def xml_codec(xml: bytes) -> str:
    """The codec of an XML file (an XMP sidecar): UTF-16 or UTF-32 where it starts as they do, else UTF-8."""
    return next((codec for start, codec in _WIDE_XML if xml.startswith(start)), "utf-8")


def _parsed(xmp: bytes) -> tuple[ElementTree.Element | None, re.Match | None]:
    """The XMP's x:xmpmeta (else rdf:RDF) element parsed, and where it lies; (None, None) where it
    is missing or not well-formed."""
    meta = _XMP_META.search(xmp)
    if meta is None or b"<!DOCTYPE" in xmp:
        return None, None  # XMP has no DOCTYPE: one would only declare entities to expand
    for prefix, uri in _NAMESPACE.findall(xmp):  # written back under the prefixes it had
        with contextlib.suppress(ValueError):  # a prefix ElementTree keeps for itself
            ElementTree.register_namespace(prefix.decode(), uri.decode())
    try:
        return ElementTree.fromstring(meta.group()), meta
    except ElementTree.ParseError:
        return None, None


def _xml_text(root: ElementTree.Element) -> bytes:
    # As text, not bytes: those would start with an XML declaration, out of place after the xpacket's.
    return ElementTree.tostring(root, encoding="unicode").encode("utf-8")


def _region_box(item: ElementTree.Element) -> RegionBox | None:
    """An MWG region's area (its centre, width and height, normalized), a Microsoft one's
    rectangle (its top left corner, width and height) or an IPTC one's boundary, as corners; None
    for anything else."""
    try:
        if (rectangle := _value(item, f"{{{_MP_REGION}}}Rectangle")) is not None:
            x, y, w, h = (float(part) for part in rectangle.split(","))
            return _fixed((x, y, x + w, y + h))
        if (boundary := next(item.iter(f"{{{_IPTC_EXT}}}RegionBoundary"), None)) is not None:
            return _iptc_box(item, boundary)
        area = next(item.iter(f"{{{_MWG_REGIONS}}}Area"), None)
        if area is None or (_value(area, f"{{{_AREA}}}unit") or "normalized") != "normalized":
            return None
        x, y = (float(_value(area, f"{{{_AREA}}}{axis}")) for axis in "xy")
        w, h = (float(_value(area, f"{{{_AREA}}}{size}") or 0) for size in "wh")  # a point has none
    except (TypeError, ValueError):  # a region without its numbers
        return None
    return _fixed((x - w / 2, y - h / 2, x + w / 2, y + h / 2))


def _fixed(box: Box) -> RegionBox:
    return lambda width, height: box


def _iptc_box(item: ElementTree.Element, boundary: ElementTree.Element) -> RegionBox | None:
    """An IPTC region boundary's box: a rectangle (top left corner, width, height), a circle
    (centre, radius: a share of the width when relative) or a polygon (its vertices), in pixels or
    relative to the image; None for a region marking a crop (its role says so)."""
    roles = next(item.iter(f"{{{_IPTC_EXT}}}rRole"), None)
    if roles is not None and any("cropping" in (text or "").lower() for text in roles.itertext()):
        return None

    def number(element, name):
        return float(_value(element, f"{{{_IPTC_EXT}}}{name}"))

    shape = (_value(boundary, f"{{{_IPTC_EXT}}}rbShape") or "rectangle").lower()
    in_pixels = (_value(boundary, f"{{{_IPTC_EXT}}}rbUnit") or "relative").lower() == "pixel"
    if shape == "polygon":
        vertices = [(number(vertex, "rbX"), number(vertex, "rbY"))
                    for vertex in boundary.iter(f"{{{_RDF}}}li")]
        xs, ys = zip(*vertices) if vertices else ((), ())
        corners = min(xs), min(ys), max(xs), max(ys)
    elif shape == "circle":
        x, y, r = (number(boundary, name) for name in ("rbX", "rbY", "rbRx"))
        if not in_pixels:  # a relative radius is a share of the width
            return lambda width, height: (x - r, y - r * width / height, x + r, y + r * width / height)
        corners = x - r, y - r, x + r, y + r
    else:
        x, y, w, h = (number(boundary, name) for name in ("rbX", "rbY", "rbW", "rbH"))
        corners = x, y, x + w, y + h
    if not in_pixels:
        return _fixed(corners)
    x0, y0, x1, y1 = corners
    return lambda width, height: (x0 / width, y0 / height, x1 / width, y1 / height)


def _region_names(item: ElementTree.Element) -> set[str]:
    """The names a region gives: an MWG region's, a Microsoft one's person, an IPTC one's own name
    and its people's."""
    names = {_value(item, f"{{{_MWG_REGIONS}}}Name"), _value(item, f"{{{_MP_REGION}}}PersonDisplayName")}
    wanted = {f"{{{_IPTC_EXT}}}{name}" for name in ("Name", "PersonInImage", "PersonName")}
    for element in _outside_kinds(item):
        if element.tag in wanted:
            names.update(_items(element))
    return {name.strip() for name in names if name and name.strip()}


def _outside_kinds(element: ElementTree.Element):
    """`element` and what lies inside it, except an IPTC region's content types and roles, whose
    names ('Human', 'Main subject area') are kinds, not someone's."""
    yield element
    for child in element:
        if child.tag not in (f"{{{_IPTC_EXT}}}rCtype", f"{{{_IPTC_EXT}}}rRole"):
            yield from _outside_kinds(child)


def _items(element: ElementTree.Element) -> list[str]:
    """The texts of an XMP list's (Bag, Seq or Alt) items."""
    return [item.text for item in element.iter(f"{{{_RDF}}}li") if item.text]


def _without_names(root: ElementTree.Element, names: frozenset[str]) -> None:
    """Takes `names` out of IPTC's people in the image (and their details) and out of the keyword
    lists, a hierarchical keyword where its last level is one."""
    def drop(lists, gives_name: Callable[[ElementTree.Element], bool]):
        for values in list(lists):
            for array in values:
                for item in list(array):
                    if gives_name(item):
                        array.remove(item)

    drop(root.iter(f"{{{_IPTC_EXT}}}PersonInImage"), lambda item: (item.text or "").strip() in names)
    drop(root.iter(f"{{{_IPTC_EXT}}}PersonInImageWDetails"),
         lambda item: any(name.strip() in names for person in item.iter(f"{{{_IPTC_EXT}}}PersonName")
                          for name in _items(person)))
    for tag, separator in _KEYWORD_LISTS.items():
        drop(root.iter(tag), lambda item, separator=separator: (
            (item.text or "").rsplit(separator, 1)[-1] if separator else item.text or "").strip() in names)


def iim_without_keywords(iim: bytes, names: frozenset[str]) -> bytes:
    """IPTC's IIM record (a JPEG's or TIFF's IPTC) less the keywords (dataset 2:25) that are one of
    `names`. What cannot be read is kept as it was."""
    kept, position = [], 0
    while position + 5 <= len(iim) and iim[position] == 0x1C:
        record, dataset = iim[position + 1], iim[position + 2]
        (length,) = struct.unpack_from(">H", iim, position + 3)
        start = position + 5
        if length & 0x8000:  # an extended dataset: the next bytes hold its length
            start += length & 0x7FFF
            length = int.from_bytes(iim[position + 5:start], "big")
        end = start + length
        if not ((record, dataset) == (2, 25) and _text(iim[start:end]).strip() in names):
            kept.append(iim[position:end])
        position = end
    return b"".join(kept) + iim[position:]


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def photoshop_without_keywords(resources: bytes, names: frozenset[str]) -> bytes:
    """Photoshop resources whose IIM record has lost the keywords that are one of `names`, its
    digest made again (readers compare it to tell an IIM changed by software that ignores XMP)."""
    parts, iim = [], None
    for resource_id, header, data in _resources(resources):
        if resource_id == _IIM_RESOURCE:
            iim = data = iim_without_keywords(data, names)
        parts.append((resource_id, header, data))
    if iim is not None:
        parts = [(resource_id, header, hashlib.md5(iim).digest() if resource_id == _IIM_DIGEST_RESOURCE else data)
                 for resource_id, header, data in parts]
    return b"".join(header + struct.pack(">I", len(data)) + data + b"\0" * (len(data) & 1)
                    for _, header, data in parts)


def _value(element: ElementTree.Element, name: str) -> str | None:
    """A property of `element` or of an element inside it, written as an attribute or an element."""
    for inner in element.iter():
        if name in inner.attrib:
            return inner.attrib[name]
        if inner.tag == name:
            return (inner.text or "").strip()
    return None
