"""Decoding inputs and encoding outputs: what comes back out is what went in, outside the hole."""
from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from tests.conftest import textured_image
from transforms.decode import bgr_order, decode_image, is_lossless_webp
from transforms.records import SourceEncoding
from transforms.png_rows import GREY_WITH_ALPHA, PNG_HEADER_BYTES, png_chunk, png_of_16_bit_samples
from transforms.write import encode_image

ORIENTATION, MAKE, EXIF_IFD, DATE_TIME_ORIGINAL = 0x0112, 0x010F, 0x8769, 0x9003


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _round_trip(data: bytes, change=None):
    """Decodes `data`, lets `change` paint a hole into the pixels, encodes as the pipeline does."""
    decoded = decode_image(data)
    rgb = decoded.rgb.copy()
    if change is not None:
        change(rgb)
    written, not_written_because = encode_image(rgb, decoded.image_format, decoded.alpha, decoded.encoding)
    assert not_written_because is None
    return decoded, written


def _paint_hole(rgb):
    rgb[4:12, 5:15] = np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3) * 3


def _outside_hole(array):
    outside = np.ones(array.shape[:2], bool)
    outside[4:12, 5:15] = False
    return array[outside]


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_mpo_is_written_as_a_jpeg_of_its_first_picture():
    pictures = [Image.fromarray(textured_image(30, 40, seed)) for seed in (1, 2)]
    mpo = _encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=90)
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    _, written = _round_trip(mpo)
    output = Image.open(io.BytesIO(written))
    assert output.format == "JPEG" and getattr(output, "n_frames", 1) == 1
    assert output.quantization == Image.open(io.BytesIO(mpo)).quantization


@pytest.mark.parametrize("quality,subsampling,progressive", [(50, 2, False), (95, 0, True), (80, 1, False)])
def test_jpeg_is_re_encoded_with_its_own_tables_so_outside_the_hole_barely_changes(
        quality, subsampling, progressive):
    data = _encoded(Image.fromarray(textured_image(64, 96, 2)), "JPEG", quality=quality,
                    subsampling=subsampling, progressive=progressive)
    decoded, written = _round_trip(data, _paint_hole)
    source, output = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(written))
    assert output.quantization == source.quantization
    assert JpegImagePlugin.get_sampling(output) == subsampling
    assert bool(output.info.get("progressive")) == progressive
    # Away from the hole's blocks (and the chroma blocks around them) next to no generation loss
    # (re-encoding at quality 95 instead: mean 0.3 to 7.9, up to 50 on one channel).
    far = np.ones((64, 96), bool)
    far[:28, :32] = False
    difference = np.abs(decode_image(written).rgb.astype(int) - decoded.rgb)[far]
    assert difference.max() <= 6 and difference.mean() < 0.2
    assert len(written) < 1.05 * len(data)


def _inks(height: int, width: int) -> Image.Image:
    """CMYK with black ink too (PIL's own RGB -> CMYK conversion never uses K)."""
    return Image.fromarray(np.dstack([textured_image(height, width, 5), textured_image(height, width, 6)[:, :, :1]]),
                           "CMYK")


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_stays_cmyk_with_its_inks_and_profile(fmt):
    profile = _profile_for(b"CMYK")
    data = _encoded(_inks(64, 96), fmt, icc_profile=profile, **({"quality": 80} if fmt == "JPEG" else {}))
    decoded, written = _round_trip(data, _paint_hole)
    output = Image.open(io.BytesIO(written))
    assert output.mode == "CMYK" and output.info.get("icc_profile") == profile
    inks, written_inks = np.asarray(Image.open(io.BytesIO(data))), np.asarray(output).astype(int)
    painted = decoded.rgb.copy()
    _paint_hole(painted)
    if fmt == "TIFF":  # lossless: the inks outside the hole as they were, the fill exactly its RGB
        np.testing.assert_array_equal(_outside_hole(written_inks), _outside_hole(inks))
        np.testing.assert_array_equal(decode_image(written).rgb, painted)
    else:  # with the input's tables: the inks away from the hole's blocks barely change
        assert output.quantization == Image.open(io.BytesIO(data)).quantization
        assert np.abs(written_inks[28:, 32:] - inks[28:, 32:]).mean() < 0.3


def test_cmyk_written_where_cmyk_cannot_go_is_rgb_without_its_profile():
    """As a TFRecord record's <id>.png, or the PNG a format PIL cannot write falls back to."""
    decoded = decode_image(_encoded(_inks(20, 30), "JPEG", icc_profile=_profile_for(b"CMYK")))
    written, not_written_because = encode_image(decoded.rgb, "PNG", decoded.alpha, decoded.encoding)
    output = Image.open(io.BytesIO(written))
    assert not_written_because is None and output.mode == "RGB" and "icc_profile" not in output.info
    np.testing.assert_array_equal(np.asarray(output), decoded.rgb)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_lossless_webp_stays_lossless(mode):
    image = Image.fromarray(textured_image(20, 30, 3)).convert(mode)
    if mode == "RGBA":
        alpha = np.full((20, 30), 255, np.uint8)
        alpha[:, :10] = 0
        alpha[:, 10:20] = 128
        image.putalpha(Image.fromarray(alpha))
    data = _encoded(image, "WEBP", lossless=True, exact=True)
    assert is_lossless_webp(data)
    decoded, written = _round_trip(data, _paint_hole)
    assert is_lossless_webp(written)
    again = decode_image(written)
    np.testing.assert_array_equal(_outside_hole(again.rgb), _outside_hole(decoded.rgb))
    if mode == "RGBA":
        np.testing.assert_array_equal(again.alpha, decoded.alpha)


def test_lossy_webp_stays_lossy_at_quality_95():
    data = _encoded(Image.fromarray(textured_image(20, 30, 3)), "WEBP", quality=80)
    assert not is_lossless_webp(data)
    _, written = _round_trip(data)
    assert not is_lossless_webp(written)


def _palette_image(fmt: str, transparency=None) -> bytes:
    """All 256 entries in use, two of them 1 apart (which catches a nearest-colour search that is
    only approximate); entry 2 is black (the transparent one, if any)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(20, 256, (256, 3))
    colours[:3] = [(100, 100, 100), (101, 100, 100), (0, 0, 0)]
    indices = np.concatenate([np.arange(256), rng.integers(0, 256, 16 * 20 - 256)])
    image = Image.fromarray(rng.permutation(indices).reshape(16, 20).astype(np.uint8), "P")
    image.putpalette(colours.astype(np.uint8).tobytes())
    return _encoded(image, fmt, **({} if transparency is None else {"transparency": transparency}))


@pytest.mark.parametrize("fmt,transparent", [("GIF", False), ("GIF", True), ("PNG", False), ("PNG", True),
                                             ("BMP", False), ("TIFF", False)])
def test_palette_image_keeps_its_palette_colours_and_transparency(fmt, transparent):
    def paint_new_colours(rgb):
        _paint_hole(rgb)  # 80 colours more than the palette holds: re-quantising would shift others
        rgb[4, 5] = (1, 1, 1)  # nearest to the transparent black entry: must stay visible

    data = _palette_image(fmt, 2 if transparent else None)
    decoded, written = _round_trip(data, paint_new_colours)
    assert (decoded.alpha is not None) == transparent
    output = Image.open(io.BytesIO(written))
    assert output.format == fmt and output.mode == "P"
    def colours(image):  # PIL's GIF writer may reorder the entries, and drops unused ones
        return set(zip(*[iter(image.getpalette())] * 3))

    assert colours(output) <= colours(Image.open(io.BytesIO(data)))
    again = decode_image(written)
    np.testing.assert_array_equal(_outside_hole(again.rgb), _outside_hole(decoded.rgb))
    if transparent:
        np.testing.assert_array_equal(again.alpha, decoded.alpha)
        assert again.alpha[4, 5] == 255


def test_palette_with_partly_transparent_entries_is_written_as_rgba():
    opacity = bytes([255, 128, 0] + [255] * 253)  # a tRNS chunk: entry 1 half, entry 2 fully transparent
    decoded, written = _round_trip(_palette_image("PNG", opacity), _paint_hole)
    output = Image.open(io.BytesIO(written))
    assert output.mode == "RGBA"
    again = decode_image(written)
    np.testing.assert_array_equal(again.alpha, decoded.alpha)
    assert set(np.unique(decoded.alpha)) == {0, 128, 255}


def test_format_pil_cannot_write_is_encoded_as_png_with_the_reason():
    xpm = b'''/* XPM */
static char *icon[] = {
"4 2 2 1",
"a c #FF0000",
"b c #0000FF",
"abab",
"baba"};
'''
    decoded = decode_image(xpm)
    assert decoded.image_format == "XPM"
    written, not_written_because = encode_image(decoded.rgb, decoded.image_format, decoded.alpha,
                                                decoded.encoding)
    assert not_written_because == "PIL cannot write XPM"
    assert written.startswith(b"\x89PNG")
    np.testing.assert_array_equal(decode_image(written).rgb, decoded.rgb)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_icc_profile_and_exif_are_kept_with_orientation_reset(fmt):
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "TestCam"
    profile = _srgb_profile()
    data = _encoded(Image.fromarray(textured_image(20, 30, 4)), fmt, icc_profile=profile, exif=exif.tobytes())
    decoded, written = _round_trip(data)
    assert any("EXIF orientation 6" in note for note in decoded.notes)
    output = Image.open(io.BytesIO(written))
    assert output.format == fmt and output.size == (20, 30)  # written upright
    assert output.info.get("icc_profile") == profile
    assert output.getexif().get(MAKE) == "TestCam"
    assert output.getexif().get(ORIENTATION) == 1


def test_exif_of_an_upright_image_keeps_its_orientation_tag_as_it_was():
    exif = Image.Exif()
    exif[MAKE] = "TestCam"
    data = _encoded(Image.fromarray(textured_image(20, 30, 4)), "JPEG", exif=exif.tobytes())
    _, written = _round_trip(data)
    written_exif = Image.open(io.BytesIO(written)).getexif()
    assert written_exif.get(MAKE) == "TestCam" and ORIENTATION not in written_exif


def _profile_for(space: bytes) -> bytes:
    profile = bytearray(_srgb_profile())
    profile[16:20] = space  # only the header's colour space is read
    return bytes(profile)


def test_a_profile_for_another_colour_space_than_the_written_one_is_dropped_with_a_note():
    data = _encoded(Image.fromarray(textured_image(20, 30, 5)), "JPEG", icc_profile=_profile_for(b"CMYK"))
    decoded, written = _round_trip(data)
    assert decoded.encoding.icc_profile is None
    assert "CMYK ICC profile not kept: the image is written as RGB" in decoded.notes
    assert "icc_profile" not in Image.open(io.BytesIO(written)).info


def test_tiff_layout_tags_do_not_follow_the_pixels_into_the_output():
    values = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    data = _encoded(Image.fromarray(values, "F"), "TIFF")
    _, written = _round_trip(data)
    output = Image.open(io.BytesIO(written))
    assert output.mode == "L"
    assert np.asarray(output)[-1, -1] == 255


@pytest.mark.parametrize("values,expected,note", [
    (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255], "32-bit float values 0-1 scaled to 8 bits"),
    (np.array([[-5.0, 100.0, 300.0]], np.float32), [0, 100, 255], "32-bit float values clipped to 0-255"),
    (np.array([[0, 32768, 65535]], np.int32), [0, 127, 255], None),
    (np.array([[0, 2**30, 2**31 - 1]], np.int32), [0, 127, 255], "32-bit integer values scaled to 8 bits"),
    (np.array([[0, 100, 255]], np.int32), [0, 100, 255], None),
])
def test_float_and_wide_integer_tiffs_are_scaled_to_8_bits_with_a_note(values, expected, note):
    decoded = decode_image(_encoded(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(decoded.rgb[0, :, 0], expected)
    np.testing.assert_array_equal(decoded.rgb[..., 0], decoded.rgb[..., 2])
    if note:
        assert note in decoded.notes
    else:
        assert not [n for n in decoded.notes if "bits" in n or "clipped" in n]


FILL_LUMA = round(200 * 0.299 + 60 * 0.587 + 90 * 0.114)


def _grey_with_colour_fill(rgb):
    """A hole painted in colour, as the colour model fills a grey photo."""
    rgb[4:12, 5:15] = (200, 60, 90)


def _written_pixels(written: bytes):
    output = Image.open(io.BytesIO(written))
    return output, np.asarray(output)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
def test_grey_stays_grey_without_a_tinted_fill(fmt):
    grey = textured_image(20, 30, 3)[:, :, 0]
    decoded, written = _round_trip(_encoded(Image.fromarray(grey, "L"), fmt), _grey_with_colour_fill)
    output, pixels = _written_pixels(written)
    assert output.mode == "L" and output.format == fmt
    if fmt == "JPEG":  # at the input's quality, 75, with the texture around the hole's blocks
        assert abs(pixels[4:12, 5:15].mean() - FILL_LUMA) < 3
    else:
        assert (pixels[4:12, 5:15] == FILL_LUMA).all()
        np.testing.assert_array_equal(_outside_hole(pixels), _outside_hole(grey))


def test_grey_with_alpha_keeps_both():
    grey, alpha = textured_image(20, 30, 3)[:, :, 0], textured_image(20, 30, 4)[:, :, 1]
    _, written = _round_trip(_encoded(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"),
                             _grey_with_colour_fill)
    output, pixels = _written_pixels(written)
    assert output.mode == "LA"
    np.testing.assert_array_equal(_outside_hole(pixels[..., 0]), _outside_hole(grey))
    np.testing.assert_array_equal(pixels[..., 1], alpha)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_bilevel_stays_bilevel_with_a_dithered_fill(fmt):
    bits = textured_image(20, 30, 3)[:, :, 0] > 128
    _, written = _round_trip(_encoded(Image.fromarray(bits), fmt), _grey_with_colour_fill)
    output, pixels = _written_pixels(written)
    assert output.mode == "1"
    np.testing.assert_array_equal(_outside_hole(pixels), _outside_hole(bits))
    assert 0 < pixels[4:12, 5:15].mean() < 1  # mid grey, dithered: neither all black nor all white


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_keeps_its_16_bits_outside_the_hole(fmt):
    values = np.random.default_rng(0).integers(0, 65536, (20, 30)).astype(np.uint16)
    decoded, written = _round_trip(_encoded(Image.fromarray(values), fmt), _grey_with_colour_fill)
    np.testing.assert_array_equal(decoded.rgb[..., 0], values // 257)  # the models see 8 bits
    assert not [note for note in decoded.notes if "bits" in note]
    output, pixels = _written_pixels(written)
    assert output.mode == "I;16"
    np.testing.assert_array_equal(_outside_hole(pixels), _outside_hole(values))
    assert (pixels[4:12, 5:15] == FILL_LUMA * 257).all()


def test_16_bit_grey_keeps_its_transparent_value():
    values = np.random.default_rng(0).integers(0, 65536, (20, 30)).astype(np.uint16)
    _, written = _round_trip(_encoded(Image.fromarray(values), "PNG", transparency=int(values[0, 0])),
                             _grey_with_colour_fill)
    output = Image.open(io.BytesIO(written))
    assert output.mode == "I;16" and output.info["transparency"] == values[0, 0]


@pytest.mark.parametrize("opaque", [False, True])
def test_16_bit_grey_with_alpha_stays_16_bit_grey_with_alpha(opaque):
    """Neither PIL nor OpenCV writes this PNG layout: it was written as 16-bit RGBA."""
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 65536, (20, 30, 2)).astype(np.uint16)
    if opaque:
        samples[..., 1] = 65535
    png = png_of_16_bit_samples(samples, GREY_WITH_ALPHA)
    png = png[:PNG_HEADER_BYTES] + png_chunk(b"tEXt", b"Copyright\0the archive") + png[PNG_HEADER_BYTES:]
    decoded, written = _round_trip(png, _grey_with_colour_fill)
    assert decoded.encoding.mode == "LA;16" and (decoded.alpha is None) == opaque
    output = Image.open(io.BytesIO(written))
    assert output.tile[0].args == "LA;16B" and output.text["Copyright"] == "the archive"
    values = cv2.imdecode(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)  # grey as B, G, R
    assert values.dtype == np.uint16
    np.testing.assert_array_equal(_outside_hole(values[..., 0]), _outside_hole(samples[..., 0]))
    assert (values[4:12, 5:15, 0] == FILL_LUMA * 257).all()
    np.testing.assert_array_equal(values[..., 3], samples[..., 1])  # the alpha, hole and all


def test_a_16_bit_png_written_row_by_row_reads_back_in_any_decoder():
    """Every one of PNG's five row filters is chosen somewhere (smooth, noisy, flat and stepped
    rows), and bands of rows follow on from each other."""
    height, width = 600, 37
    ramp = np.linspace(0, 65535, width)[None, :] * np.linspace(0.2, 1, height)[:, None]
    samples = np.dstack([ramp, ramp[::-1, ::-1]]).astype(np.uint16)
    samples[100:200] = np.random.default_rng(2).integers(0, 65536, (100, width, 2))
    samples[300:310] = 4242
    samples[400::3, ::2] = 9
    png = png_of_16_bit_samples(samples, GREY_WITH_ALPHA)
    values = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(values[..., 0], samples[..., 0])
    np.testing.assert_array_equal(values[..., 3], samples[..., 1])
    filters = set(zlib.decompress(png[PNG_HEADER_BYTES + 8:])[::1 + width * 4])
    assert filters == {0, 1, 2, 3, 4}


def test_a_grey_profile_is_kept_for_grey_output():
    grey_profile = bytearray(_srgb_profile())
    grey_profile[16:20] = b"GRAY"  # only the header's colour space is read
    data = _encoded(Image.fromarray(textured_image(20, 30, 5)[:, :, 0], "L"), "PNG",
                    icc_profile=bytes(grey_profile))
    decoded, written = _round_trip(data)
    assert Image.open(io.BytesIO(written)).info.get("icc_profile") == bytes(grey_profile)
    assert not [note for note in decoded.notes if "ICC" in note]


@pytest.mark.parametrize("compression,mode", [
    ("tiff_lzw", "RGB"), ("tiff_adobe_deflate", "L"), ("packbits", "RGBA"), ("zstd", "P"),
    ("group4", "1"), ("tiff_ccitt", "1"), ("jpeg", "RGB"), ("jpeg", "L")])
def test_tiff_keeps_its_compression(compression, mode):
    image = Image.fromarray(textured_image(32, 48, 1)).convert(mode)
    if mode == "RGBA":  # not all opaque, so it stays RGBA
        image.putalpha(Image.fromarray(textured_image(32, 48, 2)[:, :, 0]))
    data = _encoded(image, "TIFF", compression=compression)
    decoded, written = _round_trip(data, _paint_hole)
    output = Image.open(io.BytesIO(written))
    assert output.info["compression"] == compression and output.mode == mode
    if compression != "jpeg":
        np.testing.assert_array_equal(_outside_hole(decode_image(written).rgb), _outside_hole(decoded.rgb))


@pytest.mark.parametrize("fmt,orientation", [("JPEG", 6), ("PNG", 6), ("TIFF", 6), ("BMP", None), ("PNG", None)])
def test_resolution_is_kept_and_turns_with_the_image(fmt, orientation):
    exif = Image.Exif()
    if orientation:  # turned a quarter: the written x is the input's y
        exif[ORIENTATION] = orientation
    data = _encoded(Image.fromarray(textured_image(20, 30, 4)), fmt, dpi=(600, 300), exif=exif.tobytes())
    _, written = _round_trip(data)
    output = Image.open(io.BytesIO(written))
    assert output.size == ((20, 30) if orientation else (30, 20))
    assert np.allclose(output.info["dpi"], (300, 600) if orientation else (600, 300), rtol=1e-4)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_transparent_colour_is_kept_as_alpha(mode):
    pixels = textured_image(20, 30, 6)
    pixels[:, :8] = (10, 20, 30)
    image = Image.fromarray(pixels).convert(mode)
    data = _encoded(image, "PNG", transparency=image.getpixel((0, 0)))  # a tRNS chunk
    input_alpha = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., 3]
    assert input_alpha.min() == 0
    decoded, written = _round_trip(data, _paint_hole)
    output = Image.open(io.BytesIO(written))
    assert output.mode == f"{mode}A"
    np.testing.assert_array_equal(np.asarray(output.convert("RGBA"))[..., 3], input_alpha)


def _colour16(channels: int, height=20, width=30) -> np.ndarray:
    return np.random.default_rng(channels).integers(0, 65536, (height, width, channels)).astype(np.uint16)


def _opencv_encoded(rgb16: np.ndarray, fmt: str) -> bytes:
    """A 16-bit colour file as a scanner's software writes it (PIL writes none)."""
    return cv2.imencode(f".{fmt.lower()}", bgr_order(rgb16))[1].tobytes()


def _opencv_decoded(data: bytes) -> np.ndarray:
    return bgr_order(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))


def _colour16_file(rgb16: np.ndarray, fmt: str, **metadata) -> bytes:
    """A 16-bit colour file with metadata (OpenCV writes none): the writer's own, read back by PIL."""
    mode = "RGB;16" if rgb16.shape[2] == 3 else "RGBA;16"
    return encode_image(rgb16[..., :3] // 257, fmt, None, SourceEncoding(mode, rgb16, **metadata))[0]


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_colour_keeps_its_16_bits_outside_the_hole(fmt, channels):
    values = _colour16(channels)
    decoded, written = _round_trip(_opencv_encoded(values, fmt), _paint_hole)
    np.testing.assert_array_equal(decoded.rgb, values[..., :3] // 257)  # the models see 8 bits
    assert not [note for note in decoded.notes if "bits" in note]
    assert Image.open(io.BytesIO(written)).format == fmt
    pixels = _opencv_decoded(written)
    assert pixels.dtype == np.uint16 and pixels.shape == values.shape
    np.testing.assert_array_equal(_outside_hole(pixels), _outside_hole(values))
    fill = np.zeros((20, 30, 3), np.uint8)
    _paint_hole(fill)
    np.testing.assert_array_equal(pixels[4:12, 5:15, :3], fill[4:12, 5:15].astype(np.uint16) * 257)
    if channels == 4:
        np.testing.assert_array_equal(pixels[..., 3], values[..., 3])  # the alpha, all 16 bits


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_colour_is_turned_upright_with_the_models_pixels(fmt, orientation):
    values = _colour16(4)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    decoded = decode_image(_colour16_file(values, fmt, exif=exif.tobytes()))

    def upright(channel):
        image = Image.fromarray(channel)
        image.getexif()[ORIENTATION] = orientation
        return np.asarray(ImageOps.exif_transpose(image))

    expected = np.dstack([upright(values[..., c]) for c in range(4)])
    np.testing.assert_array_equal(decoded.encoding.own_values, expected)
    np.testing.assert_array_equal(decoded.rgb, expected[..., :3] // 257)
    np.testing.assert_array_equal(decoded.alpha, expected[..., 3] // 257)
    assert not [note for note in decoded.notes if "bits" in note]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_colour_keeps_its_metadata(fmt):
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "TestScanner"
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "2024:01:02 03:04:05"
    profile, xmp = _srgb_profile(), b'<x:xmpmeta xmlns:x="adobe:ns:meta/">rights</x:xmpmeta>'
    data = _colour16_file(_colour16(3), fmt, icc_profile=profile, exif=exif.tobytes(), dpi=(600, 300),
                          text=(("Copyright", "the archive"),), xmp=xmp, tiff_compression="tiff_lzw")
    decoded, written = _round_trip(data, _paint_hole)
    assert decoded.encoding.mode == "RGB;16" and not [n for n in decoded.notes if "not kept" in n]
    output = Image.open(io.BytesIO(written))
    assert output.format == fmt and output.size == (20, 30)  # written upright
    assert output.info.get("icc_profile") == profile
    assert np.allclose(output.info["dpi"], (300, 600), rtol=1e-4)  # turned with the image
    written_exif = output.getexif()
    assert written_exif.get(MAKE) == "TestScanner" and written_exif.get(ORIENTATION) == 1
    assert written_exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) == "2024:01:02 03:04:05"
    if fmt == "PNG":
        assert output.text["Copyright"] == "the archive" and b"rights" in output.info["xmp"]
    else:
        assert output.info["compression"] == "tiff_lzw"


def test_16_bit_colour_that_opencv_reads_otherwise_is_8_bits_with_a_note():
    """Premultiplied alpha: PIL unpremultiplies its 8 bits, OpenCV does not. PIL's 8 bits are kept."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.random.default_rng(0).integers(0, 65536, (6, 7, 4)).astype(np.uint16),
                     photometric="rgb", extrasamples=[1])
    decoded = decode_image(buffer.getvalue())
    assert decoded.encoding.own_values is None
    assert any(note.startswith("16-bit colour written as 8 bits") for note in decoded.notes)


def test_16_bit_colour_key_becomes_its_alpha():
    """A transparent colour (tRNS) in a 16-bit PNG: PIL's 8 bits never match it, so it was lost."""
    values = _colour16(3)
    png = _opencv_encoded(values, "PNG")
    colour_key = png_chunk(b"tRNS", values[0, 0].astype(">u2").tobytes())
    decoded, written = _round_trip(png[:PNG_HEADER_BYTES] + colour_key + png[PNG_HEADER_BYTES:], _paint_hole)
    assert decoded.alpha[0, 0] == 0 and (decoded.alpha > 0).sum() == decoded.alpha.size - 1
    output = cv2.imdecode(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]]
    assert output.dtype == np.uint16 and output[0, 0, 3] == 0 and output[0, 1, 3] == 65535
    np.testing.assert_array_equal(_outside_hole(output[..., :3]), _outside_hole(values))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_stay_in_their_format_upright_with_exif_and_xmp(fmt):
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE] = 6, "Apple"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><r xmlns:tiff="t" tiff:Orientation="6">(c) me</r></x:xmpmeta>'
    data = _encoded(Image.fromarray(textured_image(64, 96, 1)), fmt, quality=90, exif=exif.tobytes(), xmp=xmp)
    decoded, written = _round_trip(data, _paint_hole)
    assert decoded.rgb.shape == (96, 64, 3)  # turned upright
    output = Image.open(io.BytesIO(written))
    assert output.format == fmt and output.size == (64, 96)
    assert output.getexif().get(MAKE) == "Apple" and output.getexif().get(ORIENTATION) in (None, 1)
    assert b"(c) me" in output.info["xmp"] and b'Orientation="6"' not in output.info["xmp"]
    far = np.abs(decode_image(written).rgb.astype(int) - decoded.rgb)[20:, 20:]
    assert far.mean() < 2  # at quality 95, not the encoders' default


def test_a_tiff_pil_cannot_read_is_named_as_a_tiff():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 8, 3), np.uint16), photometric="rgb", planarconfig="separate")
    with pytest.raises(ValueError, match="a TIFF whose layout PIL cannot read"):  # 8 samples a pixel
        decode_image(buffer.getvalue())


def test_16_bit_colour_in_separate_planes_is_refused_not_read_as_noise():
    planes = np.random.default_rng(0).integers(0, 65536, (3, 20, 30)).astype(np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, planes, photometric="rgb", planarconfig="separate")
    with pytest.raises(ValueError, match="separate colour planes"):
        decode_image(buffer.getvalue())
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, (planes >> 8).astype(np.uint8), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(decode_image(buffer.getvalue()).rgb, np.moveaxis(planes >> 8, 0, 2))


def test_an_icon_keeps_its_size():
    data = _encoded(Image.fromarray(textured_image(22, 32, 1)), "ICO", sizes=[(32, 22)])
    decoded, written = _round_trip(data, _paint_hole)
    again = decode_image(written)
    assert again.rgb.shape == decoded.rgb.shape == (22, 32, 3)
    np.testing.assert_array_equal(_outside_hole(again.rgb), _outside_hole(decoded.rgb))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_bigtiff_is_written_with_its_tags(dtype):
    """PIL failed to write a BigTIFF's EXIF back (struct.error): every cleaned one was an error row."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.random.default_rng(0).integers(0, 255, (20, 30, 3)).astype(dtype),
                     photometric="rgb", bigtiff=True, metadata=None, extratags=[(MAKE, "s", 0, "Scanner", True)])
    decoded, written = _round_trip(buffer.getvalue(), _paint_hole)
    output = Image.open(io.BytesIO(written))
    assert output.format == "TIFF" and output.getexif().get(MAKE) == "Scanner"


def test_16_bit_ppm_stays_16_bit():
    """PIL scales a 16-bit PPM to 8 bits, silently."""
    values = _colour16(3)
    ppm = cv2.imencode(".ppm", values[..., ::-1])[1].tobytes()
    decoded, written = _round_trip(ppm, _paint_hole)
    assert written.startswith(b"P6") and not decoded.notes
    output = cv2.imdecode(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert output.dtype == np.uint16
    np.testing.assert_array_equal(_outside_hole(output), _outside_hole(values))
