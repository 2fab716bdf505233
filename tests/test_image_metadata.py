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
from transforms.image_metadata import photoshop_resources, upright_xmp, with_photoshop_resources
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
    assert upright_xmp(b"<x " + written + b"/>", orientation_applied=True) == b"<x " + written.replace(b"6", b"1") + b"/>"
    assert upright_xmp(b"<x " + written + b"/>", orientation_applied=False) == b"<x " + written + b"/>"


@pytest.mark.parametrize("sixteen_bits", [False, True])
def test_png_keeps_how_its_values_are_meant_to_be_shown(sixteen_bits):
    """gAMA, cHRM and sRGB, which PIL reads but does not write back."""
    from transforms.write import PNG_HEADER_BYTES, png_chunk

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


def test_xmp_regions_of_a_removed_person_go_with_their_name_the_others_stay():
    from transforms.image_metadata import without_removed_regions

    assert _names(REGIONS_XMP) == ["Alice", "Bob", "Alice", "Bob", "Alice", "Bob"]
    left_half = lambda box: box[2] <= 0.5  # noqa: E731
    xmp, dropped = without_removed_regions(REGIONS_XMP, left_half)
    assert dropped == 2 and _names(xmp) == ["Bob", "Bob", "Bob"]
    assert b"(c) City Archive" in xmp and xmp.startswith(b'<?xpacket begin=') and xmp.endswith(b'<?xpacket end="w"?>')
    assert b"xmlns:mwg-rs=" in xmp and b"<mwg-rs:RegionList>" in xmp  # its own prefixes, for readers that need them
    assert without_removed_regions(REGIONS_XMP, lambda box: False) == (REGIONS_XMP, 0)
    assert without_removed_regions(XMP, left_half) == (XMP, 0)  # no regions: untouched


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_a_cleaned_photo_loses_the_regions_of_what_was_removed(fmt):
    from transforms.records import ImageInfo
    from transforms.select import encode_rle
    from transforms.write import without_removed_regions_in_xmp

    buffer = io.BytesIO()
    image = Image.fromarray(textured_image(20, 40, 2))
    if fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700] = REGIONS_XMP
        image.save(buffer, fmt, tiffinfo=tags)
    else:
        image.save(buffer, fmt, xmp=REGIONS_XMP)
    decoded = decode_image(buffer.getvalue())
    person = np.zeros((20, 40), bool)
    person[4:18, 4:16] = True  # Alice's box: x 0.15-0.35, y 0.3-0.7
    info = ImageInfo("/in/x", "x", width=40, height=20, encoding=decoded.encoding, instances=(
        {"label": "person", "label_id": 1, "score": 0.9, "bbox": [4.0, 4.0, 16.0, 18.0],
         "mask": encode_rle(person), "area": int(person.sum()), "removed": True, "frame": 0},))
    cleaned = without_removed_regions_in_xmp(info)
    assert cleaned.notes == ("2 XMP face or person regions of what was removed dropped, with the names only they gave",)
    written, _ = encode_image(decoded.rgb, fmt, None, cleaned.encoding)
    output = Image.open(io.BytesIO(written))
    assert _names(output.tag_v2[700] if fmt == "TIFF" else output.info["xmp"]) == ["Bob", "Bob", "Bob"]


def test_a_region_is_read_on_the_upright_and_on_the_stored_pixels():
    from transforms.decode import UPRIGHT
    from transforms.write import _TURNED_BACK, _in_removed

    stored = np.arange(6 * 4).reshape(6, 4)
    for orientation, turn in UPRIGHT.items():  # turning back undoes each turn
        np.testing.assert_array_equal(UPRIGHT[_TURNED_BACK.get(orientation, orientation)](turn(stored)), stored)
    removed = np.zeros((30, 20), bool)  # upright 20 wide, 30 high: its top third removed
    removed[:10] = True
    top_of_upright, right_of_stored, left_of_stored = (0.2, 0.0, 0.8, 0.3), (0.7, 0.2, 1.0, 0.8), (0.0, 0.2, 0.3, 0.8)
    assert _in_removed(removed, None)(top_of_upright) and not _in_removed(removed, None)(right_of_stored)
    # Orientation 6 turned the stored 30x20 photo clockwise: the upright top was its left.
    assert _in_removed(removed, 6)(left_of_stored) and not _in_removed(removed, 6)(right_of_stored)
