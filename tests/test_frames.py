"""Multi-frame inputs (animations, pages, a camera's or a phone's several pictures): every frame
decoded, and written back together in the input's format with its timing."""
from __future__ import annotations

import inspect
import io
import struct

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import textured_image
from tests.test_encode_decode import _encoded, _outside_hole, _paint_hole
from transforms.decode import decode_frames, decode_image, is_lossless_webp
from transforms.write import encode_frames, encode_image

MAKE = 0x010F
ORIENTATION = 0x0112


def _cleaned(data: bytes, hole_in=(1,)) -> tuple[list, bytes, str | None]:
    """Decodes every frame, paints a hole into those `hole_in`, encodes them together."""
    frames = list(decode_frames(data))
    painted = []
    for index, frame in enumerate(frames):
        rgb = frame.rgb.copy()
        if index in hole_in:
            _paint_hole(rgb)
        painted.append((rgb, frame.alpha, frame.encoding))
    written, not_written_because = encode_frames(painted, frames[0].image_format)
    return frames, written, not_written_because


def _moving_transparent_band(index: int, width=30) -> np.ndarray:
    alpha = np.full((20, width), 255, np.uint8)
    alpha[:, 8 * index:8 * index + 6] = 0
    return alpha


def _gif_frames() -> list[Image.Image]:
    """Palette frames, each with its own colours and a transparent band that moves."""
    frames = []
    for index in range(3):
        frame = Image.fromarray(textured_image(20, 30, index)).quantize(200)
        indices = np.array(frame)
        indices[_moving_transparent_band(index) == 0] = 255
        frame = Image.fromarray(indices, "P")
        frame.putpalette(Image.fromarray(textured_image(20, 30, index)).quantize(200).getpalette())
        frames.append(frame)
    return frames


def test_animated_gif_keeps_every_frame_its_duration_transparency_and_loop():
    frames = _gif_frames()
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[100, 150, 200],
                    loop=0, transparency=255, disposal=2)
    decoded, written, not_written_because = _cleaned(data)
    assert not_written_because is None
    assert [frame.frames for frame in decoded] == [3, 3, 3]
    assert all(frame.notes == [] for frame in decoded)  # no "first frame of 3 processed"
    output = Image.open(io.BytesIO(written))
    assert output.format == "GIF" and output.n_frames == 3 and output.info["loop"] == 0
    again = list(decode_frames(written))
    assert [frame.encoding.duration for frame in again] == [100, 150, 200]
    for index, (before, after) in enumerate(zip(decoded, again)):
        # Each frame's colours are its palette: those outside the hole exactly as they were.
        np.testing.assert_array_equal(_outside_hole(after.rgb), _outside_hole(before.rgb))
        np.testing.assert_array_equal(after.alpha, _moving_transparent_band(index))


def test_a_gif_that_plays_once_still_does():
    frames = [Image.fromarray(textured_image(20, 30, seed)).quantize(64) for seed in range(2)]
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80)
    decoded, written, _ = _cleaned(data)
    assert decoded[0].encoding.loop is None
    output = Image.open(io.BytesIO(written))
    assert output.n_frames == 2 and "loop" not in output.info


def _rgba_frames(count=3) -> list[Image.Image]:
    """Frame 0 opaque, the later ones with a transparent band (coloured underneath)."""
    return [Image.fromarray(np.dstack([textured_image(20, 30, index), _moving_transparent_band(index)
                                       if index else np.full((20, 30), 255, np.uint8)]))
            for index in range(count)]


@pytest.mark.parametrize("fmt,options", [("PNG", {}), ("WEBP", {"lossless": True, "exact": True})])
def test_lossless_animation_keeps_its_frames_exactly_with_their_alpha(fmt, options):
    frames = _rgba_frames()
    data = _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=[40, 50, 60], loop=3,
                    **options)
    decoded, written, not_written_because = _cleaned(data)
    assert not_written_because is None and decoded[0].alpha is None
    output = Image.open(io.BytesIO(written))
    assert output.format == fmt and output.n_frames == 3 and output.info["loop"] == 3
    again = list(decode_frames(written))
    assert [frame.encoding.duration for frame in again] == [40, 50, 60]
    if fmt == "WEBP":
        assert all(is_lossless_webp(written, index) for index in range(3))
    painted = decoded[1].rgb.copy()
    _paint_hole(painted)
    visible = again[1].alpha > 0  # WebP's decoder keeps no colour under transparent pixels
    np.testing.assert_array_equal(again[1].rgb[visible], painted[visible])
    for index, (before, after) in enumerate(zip(decoded, again)):
        np.testing.assert_array_equal(_outside_hole(after.rgb), _outside_hole(before.rgb))
        if index:
            np.testing.assert_array_equal(after.alpha, _moving_transparent_band(index))


def test_lossy_animated_webp_stays_lossy_with_its_frames():
    frames = [Image.fromarray(textured_image(32, 48, seed)) for seed in range(3)]
    data = _encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=[70, 80, 90],
                    quality=80)
    decoded, written, _ = _cleaned(data, hole_in=())
    again = list(decode_frames(written))
    assert len(again) == 3 and [frame.encoding.duration for frame in again] == [70, 80, 90]
    assert not any(is_lossless_webp(written, index) for index in range(3))
    for before, after in zip(decoded, again):  # re-encoded at quality 95
        assert np.abs(after.rgb.astype(int) - before.rgb).mean() < 2


@pytest.mark.parametrize("fmt,options", [("PNG", {}), ("WEBP", {"lossless": True}), ("MPO", {"quality": 95})])
def test_every_frame_of_an_exif_rotated_animation_is_turned_upright(fmt, options):
    """They share one EXIF (an MPO's pictures, the same bytes): reading the first frame's encoding
    left it at orientation 1, and the later frames were segmented and written sideways (an animated
    WebP of frames of two shapes could not be written at all)."""
    frames = [Image.fromarray(textured_image(20, 30, seed)) for seed in range(2)]
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], exif=exif.tobytes(), **options)
    decoded, written, not_written_because = _cleaned(data)
    assert not_written_because is None
    assert [(frame.rgb.shape[:2], frame.encoding.turned) for frame in decoded] == [((30, 20), 6)] * 2
    assert [frame.rgb.shape[:2] for frame in decode_frames(written)] == [(30, 20)] * 2


def test_tiff_pages_keep_each_its_size_mode_compression_and_tags():
    exif = Image.Exif()
    exif[MAKE] = "Scanner"
    grey = textured_image(12, 10, 2)[:, :, 0]
    pages = [Image.fromarray(grey, "L"), Image.fromarray(grey > 128)]
    pages[0].encoderinfo = {"compression": "packbits", "dpi": (300, 300), "exif": exif.tobytes()}
    pages[1].encoderinfo = {"compression": "group4"}
    data = _encoded(Image.fromarray(textured_image(20, 30, 0)), "TIFF", save_all=True, append_images=pages,
                    compression="tiff_lzw")
    decoded, written, not_written_because = _cleaned(data, hole_in=(0,))
    assert not_written_because is None and [page.frames for page in decoded] == [3, 3, 3]
    output = Image.open(io.BytesIO(written))
    expected = [((30, 20), "RGB", "tiff_lzw"), ((10, 12), "L", "packbits"), ((10, 12), "1", "group4")]
    for index, (size, mode, compression) in enumerate(expected):
        output.seek(index)
        assert (output.size, output.mode, output.info["compression"]) == (size, mode, compression)
        again = decode_image(written, frame=index)
        np.testing.assert_array_equal(_outside_hole(again.rgb), _outside_hole(decoded[index].rgb))
    output.seek(1)
    assert output.getexif().get(MAKE) == "Scanner" and output.info["dpi"] == (300, 300)
    np.testing.assert_array_equal(np.asarray(output), grey)


def test_16_bit_colour_on_a_later_tiff_page_keeps_its_16_bits():
    rng = np.random.default_rng(1)
    rgba16 = rng.integers(0, 65536, (8, 9, 4)).astype(np.uint16)
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tiff:
        tiff.write(textured_image(20, 30, 1), photometric="rgb")
        tiff.write(rgba16, photometric="rgb", extrasamples=[2])
    decoded, written, _ = _cleaned(buffer.getvalue(), hole_in=())
    assert decoded[1].encoding.mode == "RGBA;16" and not decoded[1].notes
    read, pages = cv2.imdecodemulti(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(pages[1][..., [2, 1, 0, 3]], rgba16)


def test_an_mpos_preview_pictures_are_neither_read_nor_written_its_other_pictures_are():
    from tests.bad_input_corpus import MP_DISPARITY, MP_VGA_PREVIEW, with_mp_types

    pictures = [Image.fromarray(textured_image(h, w, seed)) for h, w, seed in ((30, 40, 1), (15, 20, 2), (30, 40, 3))]
    data = with_mp_types(_encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=90),
                         MP_VGA_PREVIEW, MP_DISPARITY)
    decoded, written, _ = _cleaned(data)
    assert [frame.frames for frame in decoded] == [2, 2]
    assert decoded[0].notes == ["1 MPF preview picture not read: a cleaned image is written without it "
                                "(it would still show what was removed)"]
    np.testing.assert_array_equal(decoded[1].rgb, decode_image(_encoded(pictures[2], "JPEG", quality=90)).rgb)
    output = Image.open(io.BytesIO(written))
    assert output.format == "MPO" and output.n_frames == 2 and output.size == (40, 30)
    output.seek(1)
    assert output.size == (40, 30)
    preview_only = with_mp_types(_encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:2]), MP_VGA_PREVIEW)
    assert decode_image(preview_only).frames == 1
    assert Image.open(io.BytesIO(encode_image(decode_image(preview_only).rgb, "MPO")[0])).format == "JPEG"


def test_a_tiffs_reduced_resolution_pages_are_neither_read_nor_written_its_other_pages_are():
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tiff:
        tiff.write(textured_image(20, 30, 1), photometric="rgb")
        tiff.write(textured_image(10, 15, 2), photometric="rgb", subfiletype=1)  # a preview of the first
        tiff.write(textured_image(16, 24, 3), photometric="rgb")
    decoded, written, _ = _cleaned(buffer.getvalue())
    assert [frame.rgb.shape[:2] for frame in decoded] == [(20, 30), (16, 24)]
    assert decoded[0].notes == ["1 reduced-resolution page not read: a cleaned image is written without it "
                                "(it would still show what was removed)"]
    read, pages = cv2.imdecodemulti(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)
    assert [page.shape[:2] for page in pages] == [(20, 30), (16, 24)]
    np.testing.assert_array_equal(pages[0][..., ::-1], textured_image(20, 30, 1))


def test_an_animated_pngs_default_image_stays_out_of_its_animation():
    """Its first frame, which only viewers that do not animate show: written as such, with the
    animation's own durations."""
    frames = [Image.fromarray(textured_image(20, 30, seed)) for seed in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:], default_image=True,
                   duration=[70, 90], loop=3)
    decoded, written, _ = _cleaned(buffer.getvalue())
    assert [frame.encoding.default_image for frame in decoded] == [True, False, False]
    output = Image.open(io.BytesIO(written))
    assert output.info["default_image"] and output.n_frames == 3 and output.info["loop"] == 3
    durations = []
    for index in range(3):
        output.seek(index)
        durations.append(output.info.get("duration"))
    assert durations[1:] == [70, 90]


def test_mpo_keeps_every_picture_with_its_quantization():
    pictures = [Image.fromarray(textured_image(30, 40, seed)) for seed in (1, 2)]
    data = _encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=90)
    decoded, written, not_written_because = _cleaned(data)
    assert not_written_because is None
    output = Image.open(io.BytesIO(written))
    assert output.format == "MPO" and output.n_frames == 2
    for index, frame in enumerate(decoded):
        output.seek(index)
        assert output.quantization == Image.open(io.BytesIO(data)).quantization
        # Each picture as encode_image writes it alone: a JPEG with its tables.
        rgb = frame.rgb.copy()
        if index == 1:
            _paint_hole(rgb)
        alone = encode_image(rgb, "JPEG", None, frame.encoding)[0]
        np.testing.assert_array_equal(np.asarray(output.convert("RGB")), decode_image(alone).rgb)


def test_heif_keeps_its_pictures_and_which_one_is_primary():
    pictures = [Image.fromarray(textured_image(32, 48, seed)) for seed in range(3)]
    data = _encoded(pictures[0], "HEIF", save_all=True, append_images=pictures[1:], primary_index=2, quality=90)
    decoded, written, not_written_because = _cleaned(data, hole_in=())
    assert not_written_because is None
    assert [frame.encoding.primary for frame in decoded] == [False, False, True]
    again = list(decode_frames(written))
    assert [frame.encoding.primary for frame in again] == [False, False, True]
    for before, after in zip(decoded, again):
        assert np.abs(after.rgb.astype(int) - before.rgb).mean() < 2


def _dcx(pages: list[Image.Image]) -> bytes:
    """A DCX (PCX pages behind an offset table): a format PIL reads but cannot write."""
    encoded = [_encoded(page, "PCX") for page in pages]
    offsets, position = [], 4 + 4 * (len(pages) + 1)
    for page in encoded:
        offsets.append(position)
        position += len(page)
    return struct.pack(f"<{len(pages) + 2}I", 0x3ADE68B1, *offsets, 0) + b"".join(encoded)


def test_frames_pil_cannot_write_together_are_an_animated_png_with_the_reason():
    pages = [Image.fromarray(textured_image(20, 30, seed)) for seed in range(2)]
    decoded, written, not_written_because = _cleaned(_dcx(pages))
    assert decoded[0].image_format == "DCX" and len(decoded) == 2
    assert not_written_because == "PIL cannot write DCX (its 2 frames as an animated PNG)"
    again = list(decode_frames(written))
    assert again[0].image_format == "PNG" and len(again) == 2
    np.testing.assert_array_equal(again[0].rgb, decoded[0].rgb)
    np.testing.assert_array_equal(_outside_hole(again[1].rgb), _outside_hole(decoded[1].rgb))

    frames = [(frame.rgb, frame.alpha, frame.encoding) for frame in decoded]
    written, not_written_because = encode_frames(frames, "BMP")
    assert not_written_because == "PIL cannot write several frames as BMP (its 2 frames as an animated PNG)"
    assert Image.open(io.BytesIO(written)).n_frames == 2


def test_gif_frames_on_their_own_palettes_keep_their_colours_as_an_animated_png():
    """A TFRecord's GIF is written as `<id>.png`: an animated PNG holds one palette, so frames
    with palettes of their own are written as RGB rather than read through the first's."""
    frames = [Image.fromarray(textured_image(20, 30, seed)) for seed in range(3)]
    decoded = list(decode_frames(_encoded(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                          duration=90)))
    written, not_written_because = encode_frames(
        [(frame.rgb, frame.alpha, frame.encoding) for frame in decoded], "PNG")
    assert not_written_because is None
    again = list(decode_frames(written))
    assert len(again) == 3
    for before, after in zip(decoded, again):
        np.testing.assert_array_equal(after.rgb, before.rgb)


def test_the_pixel_limit_bounds_all_frames_of_an_image_together():
    frames = _gif_frames()  # 3 frames of 30 x 20
    gif = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"image declares 3 frames of 1,800 pixels in all, over the limit of 1,799"):
        decode_image(gif, max_pixels=1799)
    with pytest.raises(ValueError, match="3 frames"):
        next(decode_frames(gif, max_pixels=1799))
    assert len(list(decode_frames(gif, max_pixels=1800))) == 3
    # Pages of their own sizes: 30 x 20 and 10 x 12, 720 pixels.
    tiff = _encoded(Image.fromarray(textured_image(20, 30, 0)), "TIFF", save_all=True,
                    append_images=[Image.fromarray(textured_image(12, 10, 1))])
    with pytest.raises(ValueError, match="2 frames of 720 pixels"):
        decode_image(tiff, max_pixels=719)
    assert decode_image(tiff, max_pixels=720, frame=1).rgb.shape == (12, 10, 3)


def test_frames_are_decoded_one_at_a_time_and_singly_as_in_sequence():
    frames = _gif_frames()
    gif = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[10, 20, 30])
    assert inspect.isgenerator(decode_frames(gif))
    for index, frame in enumerate(decode_frames(gif)):
        alone = decode_image(gif, frame=index)
        np.testing.assert_array_equal(alone.rgb, frame.rgb)
        assert alone.encoding == frame.encoding
    with pytest.raises(ValueError, match="no frame 3: the image has 3"):
        decode_image(gif, frame=3)


def test_one_frame_is_written_exactly_as_encode_image_writes_it():
    pictures = [Image.fromarray(textured_image(30, 40, seed)) for seed in (1, 2)]
    mpo = decode_image(_encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=90))
    palette = decode_image(_encoded(pictures[0].quantize(50), "GIF", transparency=3))
    for decoded in (mpo, palette):
        assert encode_frames([(decoded.rgb, decoded.alpha, decoded.encoding)], decoded.image_format) == \
            encode_image(decoded.rgb, decoded.image_format, decoded.alpha, decoded.encoding)
    assert Image.open(io.BytesIO(encode_image(mpo.rgb, "MPO", None, mpo.encoding)[0])).format == "JPEG"
    assert decode_image(_encoded(pictures[0], "PNG")).frames == 1
