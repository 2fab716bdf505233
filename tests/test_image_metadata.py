"""Captions, credits and rights survive cleaning; thumbnails (which would show what was removed) and
a stale XMP orientation do not."""
from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, IptcImagePlugin, PngImagePlugin, TiffImagePlugin, TiffTags

from tests.bad_input_corpus import REGIONS_XMP
from tests.conftest import textured_image
from transforms.decode import decode_image
from transforms.image_metadata import gif_xmp, photoshop_resources, with_gif_xmp, with_photoshop_resources, xmp_to_write
from transforms.write import encode_image

ORIENTATION = 0x0112
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" tiff:Orientation="6"><dc:rights>(c) City Archive</dc:rights>'
       b'<xmp:Thumbnails><rdf:Alt><rdf:li>/9j/4AAQSkZJRg</rdf:li></rdf:Alt></xmp:Thumbnails>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')
COPYRIGHT = (2, 116)  # IPTC record 2, dataset 116


def _resource(resource_id: int, data: bytes) -> bytes:
    return b"8BIM" + struct.pack(">H", resource_id) + b"\x00\x00" + struct.pack(">I", len(data)) + data + (
        b"\x00" if len(data) % 2 else b"")


def _iptc_resources(thumbnail: bytes = b"") -> bytes:
    iptc = b"\x1c\x02\x74" + struct.pack(">H", 16) + b"(c) City Archive"
    return _resource(0x0404, iptc) + (_resource(0x040C, thumbnail) if thumbnail else b"")


def _with_app13(jpeg: bytes, payload: bytes) -> bytes:
    segment = b"Photoshop 3.0\x00" + payload
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def _cleaned(data: bytes):
    decoded = decode_image(data)
    rgb = decoded.rgb.copy()
    rgb[2:6, 2:6] = 0
    written, _ = encode_image(rgb, decoded.image_format, decoded.alpha, decoded.encoding)
    return decoded, Image.open(io.BytesIO(written))


def _jpeg(**options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(textured_image(20, 30, 1)).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_jpeg_keeps_xmp_iptc_and_comment_without_thumbnails_and_turned_upright():
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = _with_app13(_jpeg(xmp=XMP, comment=b"scan 1987, box 12", exif=exif.tobytes()),
                       _iptc_resources(thumbnail=b"\xff\xd8 a small picture of what was removed"))
    _, output = _cleaned(data)
    assert output.size == (20, 30)  # turned upright
    assert b"(c) City Archive" in output.info["xmp"] and b'tiff:Orientation="1"' in output.info["xmp"]
    assert b"Thumbnails" not in output.info["xmp"]
    assert output.info["comment"] == b"scan 1987, box 12"
    assert IptcImagePlugin.getiptcinfo(output)[COPYRIGHT] == b"(c) City Archive"
    assert photoshop_resources(output, []) == _iptc_resources()  # the thumbnail resource left out


def test_unreadable_photoshop_block_costs_only_itself_with_a_note():
    decoded, output = _cleaned(_with_app13(_jpeg(comment=b"kept"), b"8BIM\x04\x04 cut"))
    assert any(note.startswith("IPTC not kept: its Photoshop block is unreadable") for note in decoded.notes)
    assert output.info["comment"] == b"kept" and IptcImagePlugin.getiptcinfo(output) is None


def test_photoshop_resources_over_one_segment_are_split_and_read_back_whole():
    resources = _resource(0x0404, b"\x1c\x02\x78" + struct.pack(">H", 30000) + b"c" * 30000) * 5
    jpeg = Image.open(io.BytesIO(with_photoshop_resources(_jpeg(), resources)))
    assert sum(marker == "APP13" for marker, _ in jpeg.applist) == 3
    assert photoshop_resources(jpeg, []) == resources


def test_png_keeps_its_text_and_xmp():
    info = PngImagePlugin.PngInfo()
    info.add_text("Copyright", "(c) City Archive")
    info.add_itxt("Title", "Bøåt at Nazaré ☀")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    buffer = io.BytesIO()
    Image.fromarray(textured_image(20, 30, 1)).save(buffer, "PNG", pnginfo=info)
    _, output = _cleaned(buffer.getvalue())
    assert output.text["Copyright"] == "(c) City Archive"
    assert output.text["Title"] == "Bøåt at Nazaré ☀"
    assert "(c) City Archive</dc:rights>" in output.text["XML:com.adobe.xmp"]


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_webp_and_tiff_keep_their_xmp_turned_upright(fmt):
    image = Image.fromarray(textured_image(20, 30, 1))
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    if fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700], tags[ORIENTATION] = XMP, 6
        image.save(buffer, fmt, tiffinfo=tags)
    else:
        image.save(buffer, fmt, xmp=XMP, exif=exif.tobytes())
    _, output = _cleaned(buffer.getvalue())
    assert output.size == (20, 30)
    xmp = output.tag_v2[700] if fmt == "TIFF" else output.info["xmp"]
    assert b"(c) City Archive" in xmp and b'tiff:Orientation="1"' in xmp and b"Thumbnails" not in xmp


def test_tiff_photoshop_resources_lose_their_thumbnail():
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[34377] = _iptc_resources(thumbnail=b"a small picture of what was removed")
    tags.tagtype[34377] = TiffTags.UNDEFINED
    buffer = io.BytesIO()
    Image.fromarray(textured_image(20, 30, 1)).save(buffer, "TIFF", tiffinfo=tags)
    _, output = _cleaned(buffer.getvalue())
    assert bytes(output.tag_v2[34377]) == _iptc_resources()


@pytest.mark.parametrize("written", [b'tiff:Orientation="6"', b"tiff:Orientation = '6'",
                                     b"<tiff:Orientation>6</tiff:Orientation>"])
def test_every_spelling_of_an_xmp_orientation_is_set_upright(written):
    assert xmp_to_write(b"<x " + written + b"/>", True, []) == b"<x " + written.replace(b"6", b"1") + b"/>"
    assert xmp_to_write(b"<x " + written + b"/>", False, []) == b"<x " + written + b"/>"


@pytest.mark.parametrize("sixteen_bits", [False, True])
def test_png_keeps_how_its_values_are_meant_to_be_shown(sixteen_bits):
    """gAMA, cHRM and sRGB, which PIL reads but does not write back."""
    from transforms.png_rows import PNG_HEADER_BYTES, png_chunk

    pixels = textured_image(20, 30, 1).astype(np.uint16) * 257 if sixteen_bits else textured_image(20, 30, 1)
    buffer = io.BytesIO()
    if sixteen_bits:
        buffer.write(cv2.imencode(".png", pixels[..., ::-1])[1].tobytes())
    else:
        Image.fromarray(pixels).save(buffer, "PNG")
    colour = (png_chunk(b"gAMA", struct.pack(">I", 45455)) + png_chunk(b"sRGB", b"\x01")
              + png_chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)))
    png = buffer.getvalue()
    _, output = _cleaned(png[:PNG_HEADER_BYTES] + colour + png[PNG_HEADER_BYTES:])
    assert output.info["gamma"] == pytest.approx(0.45455) and output.info["srgb"] == 1
    assert output.info["chromaticity"] == pytest.approx((0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06))


def _names(xmp: bytes) -> list[str]:
    from xml.etree import ElementTree
    root = ElementTree.fromstring(xmp[xmp.index(b"<x:xmpmeta"):xmp.index(b"</x:xmpmeta>") + 12])
    mwg = "{http://www.metadataworkinggroup.com/schemas/regions/}Name"
    mp = "{http://ns.microsoft.com/photo/1.2/t/Region#}PersonDisplayName"
    people = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}PersonInImage"
    return ([e.get(mwg) or e.text for e in root.iter() if mwg in e.attrib or e.tag == mwg]
            + [e.get(mp) for e in root.iter() if mp in e.attrib]
            + [li.text for p in root.iter(people) for li in p.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")])


def _left_half(box) -> bool:
    """A stand-in for the removed area: whether a region lies in the left half of a 40x20 photo."""
    return box(40, 20)[2] <= 0.5


def test_xmp_regions_of_a_removed_person_go_with_their_name_the_others_stay():
    from transforms.image_metadata import without_removed_regions

    assert _names(REGIONS_XMP) == ["Alice", "Bob", "Alice", "Bob", "Alice", "Bob"]
    xmp, dropped, gone = without_removed_regions(REGIONS_XMP, _left_half)
    assert dropped == 2 and gone == {"Alice"} and _names(xmp) == ["Bob", "Bob", "Bob"]
    assert b"(c) City Archive" in xmp and xmp.startswith(b'<?xpacket begin=') and xmp.endswith(b'<?xpacket end="w"?>')
    assert b"xmlns:mwg-rs=" in xmp and b"<mwg-rs:RegionList>" in xmp  # its own prefixes, for readers that need them
    assert without_removed_regions(REGIONS_XMP, lambda box: False) == (REGIONS_XMP, 0, frozenset())
    assert without_removed_regions(XMP, _left_half) == (XMP, 0, frozenset())  # no regions: untouched
    bare = REGIONS_XMP[REGIONS_XMP.index(b"<rdf:RDF"):REGIONS_XMP.index(b"</x:xmpmeta>")]  # no x:xmpmeta, as XMP allows
    xmp, dropped, gone = without_removed_regions(bare, _left_half)
    assert dropped == 2 and gone == {"Alice"} and xmp.startswith(b"<rdf:RDF") and xmp.endswith(b"</rdf:RDF>")
    assert b"Alice" not in xmp and xmp.count(b"Bob") == 3


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_an_xml_files_codec_is_told_by_its_first_bytes(codec):
    """XMP may be UTF-16 or UTF-32, with a byte order mark (`utf-16`, `utf-32`) or without."""
    from transforms.image_metadata import xml_codec

    data = REGIONS_XMP.decode().encode(codec)
    assert xml_codec(data) == {"utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(codec, codec)
    assert data.decode(xml_codec(data)).lstrip("\ufeff") == REGIONS_XMP.decode()


def _written_without_regions_of(data: bytes, removed: np.ndarray) -> bytes:
    """The 40x20 photo `data` as written once a person covering `removed` was: its XMP less the
    regions there, which must be two."""
    from transforms.records import ImageInfo
    from transforms.select import encode_rle
    from transforms.write import without_removed_regions_in_xmp

    decoded = decode_image(data)
    ys, xs = np.nonzero(removed)
    info = ImageInfo("/in/x", "x", width=40, height=20, encoding=decoded.encoding, instances=(
        {"label": "person", "label_id": 1, "score": 0.9,
         "bbox": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
         "mask": encode_rle(removed), "area": int(removed.sum()), "removed": True, "frame": 0},))
    cleaned = without_removed_regions_in_xmp(info)
    assert cleaned.notes == ("2 XMP face or person regions of what was removed dropped, with the names only they gave",)
    return encode_image(decoded.rgb, decoded.image_format, None, cleaned.encoding)[0]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "GIF"])
def test_a_cleaned_photo_loses_the_regions_of_what_was_removed(fmt):
    buffer = io.BytesIO()
    image = Image.fromarray(textured_image(20, 40, 2))
    if fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700] = REGIONS_XMP
        image.save(buffer, fmt, tiffinfo=tags)
    elif fmt == "GIF":
        image.save(buffer, fmt)
        buffer = io.BytesIO(with_gif_xmp(buffer.getvalue(), REGIONS_XMP))
    else:
        image.save(buffer, fmt, xmp=REGIONS_XMP)
    person = np.zeros((20, 40), bool)
    person[4:18, 4:16] = True  # Alice's box: x 0.15-0.35, y 0.3-0.7
    written = _written_without_regions_of(buffer.getvalue(), person)
    output = Image.open(io.BytesIO(written))
    xmp = {"TIFF": lambda: output.tag_v2[700], "GIF": lambda: gif_xmp(written)}.get(fmt, lambda: output.info["xmp"])()
    assert _names(xmp) == ["Bob", "Bob", "Bob"]


def test_an_animated_gif_keeps_its_xmp_which_pil_neither_reads_nor_writes():
    from transforms.write import encode_frames

    frames = [Image.fromarray(textured_image(20, 30, seed)).quantize(32) for seed in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=[120, 80], loop=0)
    gif = with_gif_xmp(buffer.getvalue(), XMP)
    assert gif_xmp(gif) == XMP and Image.open(io.BytesIO(gif)).n_frames == 2  # the trailer reads as sub-blocks
    decoded = [decode_image(gif, frame=frame) for frame in (0, 1)]
    cleaned = [frame.rgb.copy() for frame in decoded]
    for rgb in cleaned:
        rgb[2:6, 2:6] = 0
    written, _ = encode_frames([(rgb, frame.alpha, frame.encoding) for rgb, frame in zip(cleaned, decoded)], "GIF")
    output = Image.open(io.BytesIO(written))
    assert output.n_frames == 2 and output.info["duration"] == 120 and output.info["loop"] == 0
    xmp = gif_xmp(written)
    assert b"(c) City Archive</dc:rights>" in xmp and b"Thumbnails" not in xmp


def test_a_region_is_read_on_the_upright_and_on_the_stored_pixels():
    from transforms.decode import UPRIGHT
    from transforms.write import _TURNED_BACK, _in_removed

    stored = np.arange(6 * 4).reshape(6, 4)
    for orientation, turn in UPRIGHT.items():  # turning back undoes each turn
        np.testing.assert_array_equal(UPRIGHT[_TURNED_BACK.get(orientation, orientation)](turn(stored)), stored)
    removed = np.zeros((30, 20), bool)  # upright 20 wide, 30 high: its top third removed
    removed[:10] = True
    top_of_upright, right_of_stored, left_of_stored = (0.2, 0.0, 0.8, 0.3), (0.7, 0.2, 1.0, 0.8), (0.0, 0.2, 0.3, 0.8)
    fixed = lambda box: lambda width, height: box  # noqa: E731 - a box in fractions, whatever the size
    assert _in_removed(removed, None)(fixed(top_of_upright)) and not _in_removed(removed, None)(fixed(right_of_stored))
    # Orientation 6 turned the stored 30x20 photo clockwise: the upright top was its left.
    assert _in_removed(removed, 6)(fixed(left_of_stored)) and not _in_removed(removed, 6)(fixed(right_of_stored))
    # A box in pixels is read on each view's own size: 9 columns by 15 rows at (0, 4), on the stored
    # 30x20 photo all removed, on the upright one 6 rows of 15.
    box_in_pixels = lambda width, height: (0, 4 / height, 9 / width, 19 / height)  # noqa: E731
    assert _in_removed(removed, 6)(box_in_pixels) and not _in_removed(removed, None)(box_in_pixels)


_IPTC_NS = (b'xmlns:x="adobe:ns:meta/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/" '
            b'xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"')


def _iptc_region(boundary: bytes, inside: bytes) -> bytes:
    return (b'<rdf:li rdf:parseType="Resource"><Iptc4xmpExt:RegionBoundary rdf:parseType="Resource">'
            + boundary + b'</Iptc4xmpExt:RegionBoundary>' + inside + b'</rdf:li>')


def _bag(tag: bytes, *items: bytes) -> bytes:
    return b"<%s><rdf:Bag>%s</rdf:Bag></%s>" % (tag, b"".join(b"<rdf:li>%s</rdf:li>" % i for i in items), tag)


def _people(*names: bytes) -> bytes:
    return _bag(b"Iptc4xmpExt:PersonInImage", *names)


# A 40x20 photo as IPTC's image regions describe it: Alice left (a relative rectangle), Bob right
# (a circle in pixels), Carol left (a polygon, with her details), a crop over the left half (stays),
# and every name also a keyword, flat and in a hierarchy, as Lightroom and digiKam write them.
IPTC_REGIONS_XMP = (
    b'<x:xmpmeta ' + _IPTC_NS + b'><rdf:RDF><rdf:Description rdf:about="">'
    b'<Iptc4xmpExt:ImageRegion><rdf:Bag>'
    + _iptc_region(b'<Iptc4xmpExt:rbShape>rectangle</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>relative</Iptc4xmpExt:rbUnit>'
                   b'<Iptc4xmpExt:rbX>0.1</Iptc4xmpExt:rbX><Iptc4xmpExt:rbY>0.2</Iptc4xmpExt:rbY>'
                   b'<Iptc4xmpExt:rbW>0.25</Iptc4xmpExt:rbW><Iptc4xmpExt:rbH>0.5</Iptc4xmpExt:rbH>',
                   _people(b"Alice") + b'<Iptc4xmpExt:rCtype><rdf:Bag><rdf:li rdf:parseType="Resource">'
                   b'<Iptc4xmpExt:Name><rdf:Alt><rdf:li xml:lang="en">Human</rdf:li></rdf:Alt></Iptc4xmpExt:Name>'
                   b'</rdf:li></rdf:Bag></Iptc4xmpExt:rCtype>')
    + _iptc_region(b'<Iptc4xmpExt:rbShape>circle</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>pixel</Iptc4xmpExt:rbUnit>'
                   b'<Iptc4xmpExt:rbX>30</Iptc4xmpExt:rbX><Iptc4xmpExt:rbY>10</Iptc4xmpExt:rbY>'
                   b'<Iptc4xmpExt:rbRx>4</Iptc4xmpExt:rbRx>',
                   b'<Iptc4xmpExt:Name><rdf:Alt><rdf:li xml:lang="x-default">Bob</rdf:li></rdf:Alt></Iptc4xmpExt:Name>')
    + _iptc_region(b'<Iptc4xmpExt:rbShape>polygon</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>relative</Iptc4xmpExt:rbUnit>'
                   b'<Iptc4xmpExt:rbVertices><rdf:Seq><rdf:li Iptc4xmpExt:rbX="0.05" Iptc4xmpExt:rbY="0.1"/>'
                   b'<rdf:li Iptc4xmpExt:rbX="0.3" Iptc4xmpExt:rbY="0.5"/><rdf:li Iptc4xmpExt:rbX="0.1" Iptc4xmpExt:rbY="0.9"/>'
                   b'</rdf:Seq></Iptc4xmpExt:rbVertices>',
                   b'<Iptc4xmpExt:PersonInImageWDetails><rdf:Bag><rdf:li rdf:parseType="Resource"><Iptc4xmpExt:PersonName>'
                   b'<rdf:Alt><rdf:li xml:lang="x-default">Carol</rdf:li></rdf:Alt></Iptc4xmpExt:PersonName></rdf:li>'
                   b'</rdf:Bag></Iptc4xmpExt:PersonInImageWDetails>')
    + _iptc_region(b'<Iptc4xmpExt:rbShape>rectangle</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>relative</Iptc4xmpExt:rbUnit>'
                   b'<Iptc4xmpExt:rbX>0</Iptc4xmpExt:rbX><Iptc4xmpExt:rbY>0</Iptc4xmpExt:rbY>'
                   b'<Iptc4xmpExt:rbW>0.5</Iptc4xmpExt:rbW><Iptc4xmpExt:rbH>1</Iptc4xmpExt:rbH>',
                   b'<Iptc4xmpExt:rRole><rdf:Bag><rdf:li rdf:parseType="Resource"><xmp:Identifier><rdf:Bag><rdf:li>'
                   b'http://cv.iptc.org/newscodes/imageregionrole/cropping</rdf:li></rdf:Bag></xmp:Identifier></rdf:li>'
                   b'</rdf:Bag></Iptc4xmpExt:rRole>')
    + b'</rdf:Bag></Iptc4xmpExt:ImageRegion>'
    + _people(b"Alice", b"Bob", b"Carol")
    + b'<Iptc4xmpExt:PersonInImageWDetails><rdf:Bag><rdf:li rdf:parseType="Resource"><Iptc4xmpExt:PersonName>'
      b'<rdf:Alt><rdf:li xml:lang="x-default">Carol</rdf:li></rdf:Alt></Iptc4xmpExt:PersonName></rdf:li>'
      b'</rdf:Bag></Iptc4xmpExt:PersonInImageWDetails>'
    + _bag(b"dc:subject", b"Alice", b"Bob", b"Carol", b"beach", b"Alice Springs", b"Human")
    + _bag(b"lr:hierarchicalSubject", b"People|Alice", b"People|Bob", b"People|Carol", b"Places|beach")
    + _bag(b"digiKam:TagsList", b"People/Alice", b"People/Bob", b"Places/beach")
    + b'</rdf:Description></rdf:RDF></x:xmpmeta>')


def _list(xmp: bytes, tag: str) -> list[str]:
    from xml.etree import ElementTree
    return [li.text for element in ElementTree.fromstring(xmp).iter(tag)
            for li in element.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li") if li.text and li.text.strip()]


def test_iptc_image_regions_of_removed_people_go_with_their_names_and_keywords_a_crop_stays():
    from transforms.image_metadata import without_removed_regions

    xmp, dropped, gone = without_removed_regions(IPTC_REGIONS_XMP, _left_half)
    assert dropped == 2 and gone == {"Alice", "Carol"}
    iptc = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
    regions = _list(xmp, f"{iptc}ImageRegion")
    assert "Bob" in regions and "http://cv.iptc.org/newscodes/imageregionrole/cropping" in regions
    assert not {"Alice", "Carol"} & set(regions)
    people = [name for name in _list(xmp, f"{iptc}PersonInImage")]
    assert people == ["Bob"] and _list(xmp, f"{iptc}PersonInImageWDetails") == []
    assert _list(xmp, "{http://purl.org/dc/elements/1.1/}subject") == ["Bob", "beach", "Alice Springs", "Human"]
    assert _list(xmp, "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject") == ["People|Bob", "Places|beach"]
    assert _list(xmp, "{http://www.digikam.org/ns/1.0/}TagsList") == ["People/Bob", "Places/beach"]
    # Bob's circle, 4 px around (30, 10): right of the middle on a 40x20 photo, left of it on a 100x20 one.
    right_half = lambda box: box(40, 20)[0] >= 0.5  # noqa: E731
    assert without_removed_regions(IPTC_REGIONS_XMP, right_half)[1:] == (1, {"Bob"})
    assert without_removed_regions(IPTC_REGIONS_XMP, lambda box: box(100, 20)[0] >= 0.5)[1] == 0


def _iim(*datasets: tuple[tuple[int, int], bytes]) -> bytes:
    return b"".join(b"\x1c" + bytes(key) + struct.pack(">H", len(value)) + value for key, value in datasets)


KEYWORDS = (2, 25)


def test_a_removed_persons_name_leaves_iptc_keywords_and_the_digest_is_made_again():
    import hashlib

    from transforms.image_metadata import _resources, iim_without_keywords, photoshop_without_keywords

    iim = _iim((COPYRIGHT, b"(c) City Archive"), (KEYWORDS, b"Alice"), (KEYWORDS, b"beach"),
               (KEYWORDS, "Zoë".encode()), (KEYWORDS, "Zoë".encode("latin-1")))
    expected = _iim((COPYRIGHT, b"(c) City Archive"), (KEYWORDS, b"beach"))
    assert iim_without_keywords(iim, frozenset({"Alice", "Zoë"})) == expected
    assert iim_without_keywords(iim + b"\0\0", frozenset({"Alice", "Zoë"})) == expected + b"\0\0"  # padding kept
    resources = _resource(0x0404, iim) + _resource(0x0425, hashlib.md5(iim).digest()) + _resource(0x03ED, b"16 bytes of dpi.")
    cleaned = dict((resource_id, data) for resource_id, _, data in _resources(
        photoshop_without_keywords(resources, frozenset({"Alice", "Zoë"}))))
    assert cleaned == {0x0404: expected, 0x0425: hashlib.md5(expected).digest(), 0x03ED: b"16 bytes of dpi."}


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_a_cleaned_photo_loses_its_removed_persons_iptc_regions_and_keywords(fmt):
    iim = _iim((COPYRIGHT, b"(c) City Archive"), (KEYWORDS, b"Alice"), (KEYWORDS, b"Bob"))
    buffer = io.BytesIO()
    image = Image.fromarray(textured_image(20, 40, 2))
    if fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700], tags[33723] = IPTC_REGIONS_XMP, iim
        image.save(buffer, fmt, tiffinfo=tags)
        data = buffer.getvalue()
    else:
        image.save(buffer, fmt, xmp=IPTC_REGIONS_XMP)
        data = _with_app13(buffer.getvalue(), _resource(0x0404, iim))
    people = np.zeros((20, 40), bool)
    people[:, :14] = True  # Alice's and Carol's boxes
    output = Image.open(io.BytesIO(_written_without_regions_of(data, people)))
    xmp = output.tag_v2[700] if fmt == "TIFF" else output.info["xmp"]
    assert _list(xmp, "{http://purl.org/dc/elements/1.1/}subject") == ["Bob", "beach", "Alice Springs", "Human"]
    assert IptcImagePlugin.getiptcinfo(output)[KEYWORDS] == b"Bob"  # one keyword left: not a list
    assert IptcImagePlugin.getiptcinfo(output)[COPYRIGHT] == b"(c) City Archive"


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_a_tiffs_iptc_typed_long_as_photoshop_writes_it_is_kept_whole(byte_order):
    import tifffile

    iim = _iim((COPYRIGHT, b"(c) City Archive"), (KEYWORDS, b"beach"))
    padded = iim + b"\0" * (-len(iim) % 4)
    longs = struct.unpack(f"{byte_order}{len(padded) // 4}I", padded)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, textured_image(8, 8, 3), photometric="rgb", byteorder=byte_order,
                     extratags=[(33723, 4, len(longs), longs, True)])
    _, output = _cleaned(buffer.getvalue())
    assert output.tag_v2[33723] == padded  # PIL's own reading keeps only its first four bytes


_PHONE_NS = (b'xmlns:x="adobe:ns:meta/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
             b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
             b'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
             b'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
             b'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" xmlns:xmpNote="http://ns.adobe.com/xmp/note/" '
             b'xmlns:dcterms="http://purl.org/dc/terms/"')


def _phone_xmp(properties: bytes, second_item: bytes) -> bytes:
    """A phone photo's XMP: its own properties, and the list of the file's parts (the photo, then
    `second_item`) that Google's container format gives."""
    return (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta ' + _PHONE_NS + b'>'
            b'<rdf:RDF><rdf:Description rdf:about="" GCamera:BurstID="b-1" ' + properties + b'>'
            b'<dc:rights>(c) City Archive</dc:rights><Container:Directory><rdf:Seq>'
            b'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary"/></rdf:li>'
            b'<rdf:li rdf:parseType="Resource"><Container:Item ' + second_item + b'/></rdf:li>'
            b'</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>')


MOTION_PHOTO_XMP = _phone_xmp(b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" '
                              b'GCamera:MotionPhotoPresentationTimestampUs="968456" xmpNote:HasExtendedXMP="0123" '
                              b'dcterms:provenance="self#jumbf=c2pa/urn:uuid:0123"',
                              b'Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="5000"')
ULTRA_HDR_XMP = _phone_xmp(b'hdrgm:Version="1.0"', b'Item:Mime="image/jpeg" Item:Semantic="GainMap" Item:Length="900"')


def test_a_motion_photos_video_and_what_points_past_the_written_file_are_not_described():
    from transforms.image_metadata import without_detached_parts

    notes = []
    xmp = without_detached_parts(MOTION_PHOTO_XMP, notes)
    for gone in (b"MotionPhoto", b"Container:Directory", b"video/mp4", b"HasExtendedXMP", b"c2pa"):
        assert gone not in xmp
    assert b'GCamera:BurstID="b-1"' in xmp and b"(c) City Archive" in xmp and xmp.endswith(b'<?xpacket end="w"?>')
    assert notes == ["motion photo's video not read: a re-encoded image is written without it",
                     "extended XMP not read: a re-encoded image is written without it",
                     "C2PA content credentials (signed for the input's pixels) not read: a re-encoded image "
                     "is written without it"]
    assert without_detached_parts(REGIONS_XMP, notes) == REGIONS_XMP and len(notes) == 3  # nothing beside it


@pytest.mark.parametrize("spelling", ["as PIL knows it", "its own way", "ISO 21496-1"])
def test_an_ultra_hdr_jpeg_is_cleaned_as_its_photo_and_written_without_its_gain_map(spelling):
    primary, gain_map = Image.fromarray(textured_image(20, 30, 1)), Image.fromarray(textured_image(10, 15, 2))
    xmp = {"as PIL knows it": ULTRA_HDR_XMP,
           "its own way": ULTRA_HDR_XMP.replace(b'hdrgm:Version="1.0"', b'hdrgm:Version = "1.0"'),
           "ISO 21496-1": ULTRA_HDR_XMP.replace(b'hdrgm:Version="1.0"', b'').replace(
               b'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/"', b'')}[spelling]
    buffer = io.BytesIO()
    primary.save(buffer, "MPO", save_all=True, append_images=[gain_map], xmp=xmp, quality=95)
    data = buffer.getvalue()
    if spelling == "ISO 21496-1":  # its version in an APP2 segment, which PIL does not look for
        iso = b"urn:iso:std:iso:ts:21496:-1\0\0\0\0\0"
        data = data[:2] + b"\xff\xe2" + struct.pack(">H", len(iso) + 2) + iso + data[2:]
    assert Image.open(io.BytesIO(data)).format == ("JPEG" if spelling == "as PIL knows it" else "MPO")
    decoded, output = _cleaned(data)
    assert decoded.frames == 1 and decoded.notes == ["Ultra HDR gain map not read: a re-encoded image is written without it"]
    assert output.format == "JPEG" and not any(data.startswith(b"MPF") for _, data in output.applist)
    assert b"hdrgm" not in output.info["xmp"] and b"GainMap" not in output.info["xmp"]
    assert b"(c) City Archive" in output.info["xmp"]


def test_a_tiffs_c2pa_manifest_and_photoshop_layers_are_not_written_with_its_cleaned_pixels():
    """Photoshop opens a layered TIFF from its layers, not its pixels: they would show the removed
    object again."""
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, data in ((52545, b"jumb c2pa manifest signed for the input"),
                      (37724, b"Adobe Photoshop Document Data Block\0" + b"8BIMLayr" + bytes(64))):
        tags[tag] = data
        tags.tagtype[tag] = TiffTags.UNDEFINED
    tags[33432] = "(c) City Archive"  # Copyright: kept
    buffer = io.BytesIO()
    Image.fromarray(textured_image(12, 10, 4)).save(buffer, "TIFF", tiffinfo=tags)
    decoded, output = _cleaned(buffer.getvalue())
    assert decoded.notes == [
        "C2PA content credentials (signed for the input's pixels) not read: a re-encoded image is written without it",
        "Photoshop's layer data (which still shows it all) not read: a re-encoded image is written without it"]
    assert not {52545, 37724} & set(output.tag_v2) and output.tag_v2[33432] == "(c) City Archive"


def test_a_preview_inside_the_cameras_maker_note_is_blanked_in_place():
    """Nikon, Pentax and Olympus keep a small JPEG of the photo in their maker note, which EXIF
    carries into the cleaned image: zeroed, the note keeps its length and so its offsets."""
    preview = _jpeg()
    maker_note = b"Nikon\0\x02\x10\0\0MM\0*\0\0\0\x08" + b"\xff\xd8\xff\0 by chance" + preview + bytes(8)
    exif = Image.Exif()
    exif[0x010F] = "NIKON CORPORATION"
    exif.get_ifd(0x8769)[0x927C] = maker_note
    decoded, output = _cleaned(_jpeg(exif=exif.tobytes()))
    assert decoded.notes == ["preview in the camera's maker note not read: a re-encoded image is written without it"]
    written = output.getexif().get_ifd(0x8769)[0x927C]
    start = maker_note.index(preview)
    assert written == maker_note[:start] + bytes(len(preview)) + maker_note[start + len(preview):]
    assert output.getexif()[0x010F] == "NIKON CORPORATION"
    exif.get_ifd(0x8769)[0x927C] = maker_note.replace(preview, b"")  # no preview: as it was, no note
    decoded, output = _cleaned(_jpeg(exif=exif.tobytes()))
    assert not decoded.notes and output.getexif().get_ifd(0x8769)[0x927C] == maker_note.replace(preview, b"")


def test_imagemagicks_raw_profiles_in_a_png_are_not_a_way_around_the_cleaning():
    """ImageMagick copies EXIF, XMP and Photoshop resources into a PNG's text: written as they
    were, they would keep the thumbnail and the orientation the written pixels no longer need."""
    from transforms.image_metadata import _as_raw_profile, _raw_profile

    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Cam"
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", _as_raw_profile("exif", b"Exif\0\0" + exif.tobytes()[6:]), zip=True)
    info.add_text("Raw profile type xmp", _as_raw_profile("xmp", XMP), zip=True)
    info.add_text("Raw profile type 8bim", _as_raw_profile("8bim", _iptc_resources(thumbnail=b"old pixels")), zip=True)
    info.add_text("Title", "Beach")
    buffer = io.BytesIO()
    Image.fromarray(textured_image(20, 30, 5)).save(buffer, "PNG", pnginfo=info)
    decoded, output = _cleaned(buffer.getvalue())
    assert "EXIF orientation 6 applied" in decoded.notes
    assert set(output.text) == {"Title", "Raw profile type 8bim", "XML:com.adobe.xmp"}
    assert _raw_profile(output.text["Raw profile type 8bim"]) == _iptc_resources()  # less its thumbnail
    assert b'tiff:Orientation="1"' in output.info["xmp"] and b"(c) City Archive" in output.info["xmp"]
    assert output.getexif()[ORIENTATION] == 1 and output.getexif()[0x010F] == "Cam"
