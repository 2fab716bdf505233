"""The PConv training input pipeline: mask generator, TFRecord/image sources, crops, mask folders."""
import contextlib
import io
import logging
import os

import fsspec
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, features

from models.pconv import data
from tests.conftest import textured_image


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _example(array: np.ndarray, encoded: bytes | None = None, image_key: str = "image/encoded") -> bytes:
    """A tf.train.Example in the seed's ImageNet-1k Kaggle layout (`encoded` instead of the PNG of
    `array`, under `image_key`, to make bad records)."""
    encoded = _png_bytes(array) if encoded is None else encoded
    features = {
        image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[array.shape[0]])),
        "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[array.shape[1]])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _random_images(count, height=20, width=30, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _decoded(dataset):
    return [tf.io.decode_png(encoded).numpy() for encoded, _ in dataset]


def _skip_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "skipping" in r.getMessage()]


@pytest.mark.parametrize("ratio_range", [(0.0, 0.1), (0.2, 0.3), (0.5, 0.6), (0.05, 0.06)])
def test_generated_masks_hit_the_requested_hole_ratio_range(ratio_range):
    size = 64
    masks = np.stack(list(data.generated_masks(size, ratio_range, seed=3).take(12).as_numpy_iterator()))
    assert masks.shape == (12, size, size, 1)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    hole_ratios = 1.0 - masks.mean(axis=(1, 2, 3))
    low, high = ratio_range
    one_pixel = 1.0 / size ** 2
    assert np.all(hole_ratios >= low - one_pixel) and np.all(hole_ratios <= high + one_pixel), hole_ratios
    assert len({mask.tobytes() for mask in masks}) == len(masks), "every mask differs"


def test_generated_masks_are_reproducible_per_seed():
    first = next(data.generated_masks(48, (0.1, 0.4), seed=11).as_numpy_iterator())
    again = next(data.generated_masks(48, (0.1, 0.4), seed=11).as_numpy_iterator())
    other = next(data.generated_masks(48, (0.1, 0.4), seed=12).as_numpy_iterator())
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# The second is compressed as `TFRecordWriter(path, "GZIP")` and Beam's WriteToTFRecord write it,
# told by its extension: read raw, it gave no photo, only a warning that it was corrupt.
@pytest.mark.parametrize("name, compression", [("train-00000-of-00001", None), ("part.tfrecord.gz", "GZIP")])
def test_tfrecord_shard_written_here_is_read_back(tmp_path, name, compression):
    images = _random_images(3, seed=4)
    shard = str(tmp_path / name)
    with tf.io.TFRecordWriter(shard, options=compression) as writer:
        for image in images:
            writer.write(_example(image))

    files = data.expand_sources([str(tmp_path)])
    assert files == [shard]
    for got, expected in zip(_decoded(data.encoded_images(files, shuffle=False)), images, strict=True):
        np.testing.assert_array_equal(got, expected)
    sources = [source.decode() for _, source in data.encoded_images(files, shuffle=False).as_numpy_iterator()]
    assert sources == [f"{shard}#0", f"{shard}#1", f"{shard}#2"]
    assert len(data.validation_set(files, image_size=16, image_count=1, held_out_records={shard: 1})) == 6
    assert data.first_decodable_photo(files, {shard: 1}) is not None


def test_remote_tfrecord_and_image_files_are_read_through_fsspec(tmp_path):
    images = _random_images(3, seed=1)
    shard = tmp_path / "part.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for image in images[:2]:
            writer.write(_example(image))
    fs = fsspec.filesystem("memory")
    fs.pipe("/pconv-test/shards/part.tfrecord", shard.read_bytes())
    fs.pipe("/pconv-test/photos/c.png", _png_bytes(images[2]))
    try:
        files = data.expand_sources(["memory://pconv-test/shards/*", "memory://pconv-test/photos"])
        assert len(files) == 2 and all(f.startswith("memory://") for f in files)
        decoded = _decoded(data.encoded_images(files, shuffle=False))
        assert len(decoded) == 3
        for got, expected in zip(sorted(decoded, key=bytes), sorted(images, key=bytes)):
            np.testing.assert_array_equal(got, expected)
    finally:
        fs.rm("/pconv-test", recursive=True)


def test_expand_sources_skips_non_data_files_and_rejects_empty_patterns(tmp_path):
    for name in ("a.jpg", "b.PNG", "README.md", "manifest.csv", "train-00001-of-00002"):
        (tmp_path / name).write_bytes(b"x")
    names = [os.path.basename(p) for p in data.expand_sources([str(tmp_path)])]
    assert names == ["a.jpg", "b.PNG", "train-00001-of-00002"]
    assert [os.path.basename(p) for p in data.expand_sources([str(tmp_path)], kinds="images")] == ["a.jpg", "b.PNG"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        data.expand_sources([str(tmp_path / "nothing-here*.jpg")])
    # A file:// URI (an fsspec URI, as --help promises) names the same local files.
    assert data.expand_sources([f"file://{tmp_path}/*.jpg"]) == [str(tmp_path / "a.jpg")]


def test_photos_training_cannot_read_are_named_not_passed_over_silently(tmp_path, caplog):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "scan.TIF").write_bytes(b"x")  # read now, through PIL
    for name in ("photo.jxl", "layers.PSD"):
        (tmp_path / "other" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "other" / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="models.pconv.data"):
        assert [os.path.basename(p) for p in data.expand_sources([str(tmp_path)])] == ["a.jpg", "scan.TIF"]
    assert "skipping 2 photos in formats training cannot read (e.g. " in caplog.text
    with pytest.raises(FileNotFoundError, match=r"only 2 photos in formats training cannot read .*: it reads "
                                                r"\.jpg, .*\.tif, \.tiff, \.heic, .*; convert them first"):
        data.expand_sources([str(tmp_path / "other")])


def test_small_photos_are_upscaled_without_aspect_distortion():
    # 20x40 horizontal ramp: upscaled x1.6 to 32x64, the centre crop shows the middle half of the ramp.
    ramp = np.tile(np.linspace(0, 255, 40), (20, 1)).astype(np.uint8)
    encoded = _png_bytes(np.stack([ramp] * 3, axis=-1))
    crop = data.center_crop(tf.constant(encoded), 32).numpy()
    assert crop.shape == (32, 32, 3)
    np.testing.assert_allclose(crop[:, :, 0], np.broadcast_to(crop[:1, :, 0], (32, 32)), atol=1e-6)
    assert crop[0, 0, 0] == pytest.approx(0.25, abs=0.04)
    assert crop[0, -1, 0] == pytest.approx(0.75, abs=0.04)

    random = data.random_crop(tf.constant(encoded), tf.constant([1, 2], tf.int64), 32).numpy()
    assert random.shape == (32, 32, 3)
    step = np.abs(np.diff(random[0, :, 0])).mean()
    assert step == pytest.approx(1 / 39 / 1.6, rel=0.05), "the ramp is stretched x1.6, as the height"


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# 24x32 photos: a 16 px crop is one of 9 x 17 windows (or its mirror), which tells it apart.
_PHOTO = textured_image(24, 32, seed=3)
# 16-bit grey with known values where the centre crop (rows 4-19, columns 8-23) starts: v * 255 //
# 65535 gives 0, 0, 128, 255 (the high byte would give 1 for 256).
_GREY16 = np.random.default_rng(1).integers(0, 65536, (24, 32)).astype(np.uint16)
_GREY16[4, 8:12] = [0, 256, 32896, 65535]


def _photo_in(fmt: str) -> tuple[bytes, np.ndarray]:
    """A photo in format `fmt` (a file name's extension) and the uint8 RGB pixels training must
    crop from it: the source's where the format is lossless, its decoder's where it is not."""
    if fmt == "tif":
        return _encoded(Image.fromarray(_PHOTO), "TIFF", compression="tiff_lzw"), _PHOTO
    if fmt == "grey16.tiff":
        expected = (_GREY16 // 257).astype(np.uint8)  # v * 255 // 65535
        return _encoded(Image.fromarray(_GREY16), "TIFF"), np.repeat(expected[:, :, None], 3, axis=2)
    if fmt == "float.tif":
        values = _PHOTO[:, :, 1].astype(np.float32) / 255
        return _encoded(Image.fromarray(values, "F"), "TIFF"), np.repeat(_PHOTO[:, :, 1:2], 3, 2)
    if fmt == "jp2":
        return _encoded(Image.fromarray(_PHOTO), "JPEG2000"), _PHOTO  # lossless by default
    if fmt == "ppm":
        return _encoded(Image.fromarray(_PHOTO), "PPM"), _PHOTO
    if fmt == "mpo":  # a JPEG: TensorFlow decodes its first picture
        encoded = _encoded(Image.fromarray(_PHOTO), "MPO", save_all=True,
                           append_images=[Image.fromarray(_PHOTO[::-1])], quality=95)
        return encoded, tf.io.decode_jpeg(encoded, channels=3).numpy()
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("this PIL writes no AVIF")
    encoded = _encoded(Image.fromarray(_PHOTO), {"heic": "HEIF", "avif": "AVIF"}[fmt], quality=90)
    decoded = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    assert np.abs(decoded.astype(int) - _PHOTO).mean() < 12, "lossy, but the photo (another one: 80)"
    return encoded, decoded


def _is_crop_of(crop: np.ndarray, expected: np.ndarray) -> bool:
    """Whether the float `crop` is, to the 8-bit level, a window of `expected`, mirrored or not
    (training flips half its crops)."""
    pixels = np.rint(crop * 255).astype(np.uint8)
    size = len(pixels)
    return any(np.array_equal(pixels, image[top:top + size, left:left + size])
               for image in (expected, expected[:, ::-1])
               for top in range(len(expected) - size + 1) for left in range(expected.shape[1] - size + 1))


def _assert_crops_of(crops, expected: np.ndarray) -> None:
    for crop in np.asarray(crops):
        assert _is_crop_of(crop, expected), "not a crop of the photo"


# Formats training passed over with a warning to convert them first (TensorFlow decodes an MPO,
# a JPEG, but training did not list the files).
_FORMATS_TRAINING_PASSED_OVER = ["tif", "grey16.tiff", "float.tif", "heic", "avif", "jp2", "ppm", "mpo"]


@pytest.mark.parametrize("fmt", _FORMATS_TRAINING_PASSED_OVER)
def test_photos_training_passed_over_train_and_validate_with_their_own_pixels(tmp_path, caplog, fmt):
    encoded, expected = _photo_in(fmt)
    photo = tmp_path / f"photo.{fmt}"
    photo.write_bytes(encoded)
    files = data.expand_sources([str(tmp_path)])
    assert files == [str(photo)]

    batches = data.training_dataset(files, image_size=16, batch_size=2, masks=data.MaskConfig(), seed=4)
    for _, truth in batches.take(2):
        _assert_crops_of(truth, expected)
    [(read, source)] = data.encoded_images(files, shuffle=False).as_numpy_iterator()
    assert source.decode() == str(photo)
    _assert_crops_of([data.random_crop(read, tf.constant([5, 6], tf.int64), 16)], expected)
    val = data.validation_set(files, image_size=16, image_count=1)
    np.testing.assert_array_equal(np.rint(val.images[0] * 255), expected[4:20, 8:24])
    if fmt == "grey16.tiff":
        assert list(np.rint(val.images[0][0, :4, 0] * 255)) == [0, 0, 128, 255]
    assert data.decode_error(encoded) is None
    assert not _skip_warnings(caplog)


@pytest.mark.parametrize("fmt, by_tensorflow", [
    ("JPEG", True), ("MPO", True), ("PNG", True), ("GIF", True), ("BMP", True), ("WEBP", True),
    ("TIFF", False), ("HEIF", False), ("JPEG2000", False), ("PPM", False)])
def test_tensorflows_formats_stay_on_its_fast_in_graph_decoder(fmt, by_tensorflow):
    """Only what TensorFlow cannot decode goes to PIL, in Python: most training sets are JPEG."""
    encoded = _encoded(Image.fromarray(_PHOTO), fmt)
    assert bool(data._tensorflow_decodes(tf.constant(encoded))) is by_tensorflow
    assert not data._tensorflow_decodes(tf.constant(encoded[:1])), "too short for any signature"


def test_tfrecord_records_holding_tiff_and_heic_bytes_are_decoded(tmp_path):
    photos = [_photo_in(fmt) for fmt in ("tif", "grey16.tiff", "heic")]
    shard = str(tmp_path / "train-00000-of-00001")
    with tf.io.TFRecordWriter(shard) as writer:
        for encoded, expected in photos:
            writer.write(_example(expected, encoded=encoded))
    val = data.validation_set([shard], image_size=16, image_count=3)
    for image, (_, expected) in zip(val.images[:3], photos, strict=True):
        np.testing.assert_array_equal(np.rint(image * 255), expected[4:20, 8:24])
    batches = data.training_dataset([shard], image_size=16, batch_size=3, masks=data.MaskConfig(), seed=2)
    (_, truth), = batches.take(1)
    for crop in truth.numpy():
        assert any(_is_crop_of(crop, expected) for _, expected in photos)


def test_a_corrupt_tiff_is_named_and_skipped_as_a_corrupt_jpeg_is(tmp_path, caplog):
    Image.fromarray(_PHOTO).save(tmp_path / "good.png")
    whole = _encoded(Image.fromarray(_PHOTO), "TIFF")
    (tmp_path / "broken.tif").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "not-a-photo.heic").write_bytes(b"just some notes\n" * 4)
    files = data.expand_sources([str(tmp_path)])
    assert len(files) == 3
    batches = data.training_dataset(files, image_size=16, batch_size=2, masks=data.MaskConfig(), seed=1)
    for _, truth in batches.take(4):
        _assert_crops_of(truth, _PHOTO)
    broken, not_a_photo = sorted(_skip_warnings(caplog))
    assert broken.startswith(f"skipping {tmp_path / 'broken.tif'}: undecodable photo: truncated or corrupt TIFF "
                             "data (image file is truncated")
    assert not_a_photo == (f"skipping {tmp_path / 'not-a-photo.heic'}: undecodable photo: Unknown image file "
                           "format (starts with b'just some notes\\n')")

    caplog.clear()
    val = data.validation_set(files, image_size=16, image_count=3)
    assert len(val) == 6, "the good photo in every band"
    assert {w.split(":")[0] for w in _skip_warnings(caplog)} == {
        f"skipping {tmp_path / 'broken.tif'}", f"skipping {tmp_path / 'not-a-photo.heic'}"}
    assert data.first_decodable_photo([str(tmp_path / "broken.tif")]) is None


def test_a_tiff_mask_folder_is_read(tmp_path):
    picture = np.zeros((64, 64), bool)
    picture[:16] = True  # a quarter of the picture is white: the hole
    Image.fromarray(picture).save(tmp_path / "m.tif", compression="group4")  # a fax-style 1-bit TIFF
    masks = np.stack(list(data.folder_masks(str(tmp_path), 32, "white", seed=0).take(4).as_numpy_iterator()))
    np.testing.assert_allclose(1.0 - masks.mean(axis=(1, 2, 3)), 0.25)


@pytest.mark.parametrize("hole_color", ["white", "black"])
def test_mask_folder_hole_colour_and_resize(tmp_path, hole_color):
    picture = np.zeros((64, 64), np.uint8)
    picture[:16] = 255  # a quarter of the picture is white
    Image.fromarray(picture).save(tmp_path / "m.png")
    masks = np.stack(list(data.folder_masks(str(tmp_path), 32, hole_color, seed=0).take(4).as_numpy_iterator()))
    assert masks.shape == (4, 32, 32, 1)
    expected_hole = 0.25 if hole_color == "white" else 0.75
    np.testing.assert_allclose(1.0 - masks.mean(axis=(1, 2, 3)), expected_hole)


def test_an_undecodable_mask_file_is_named_and_skipped(tmp_path, caplog):
    picture = np.zeros((64, 64), np.uint8)
    picture[:16] = 255
    Image.fromarray(picture).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    masks = np.stack(list(data.folder_masks(str(tmp_path), 32, "white", seed=0).take(4).as_numpy_iterator()))
    np.testing.assert_allclose(1.0 - masks.mean(axis=(1, 2, 3)), 0.25)  # the good one, turned and flipped
    assert _skip_warnings(caplog) == [f"skipping {tmp_path / 'broken.png'}: undecodable mask image"]


def test_training_batches_hide_the_holes_from_the_model(tmp_path):
    for i, image in enumerate(_random_images(3, height=40, width=50, seed=2)):
        Image.fromarray(image).save(tmp_path / f"{i}.jpg")
    files = data.expand_sources([str(tmp_path)])
    batches = data.training_dataset(files, image_size=32, batch_size=2,
                                    masks=data.MaskConfig(ratio_range=(0.2, 0.3)), cache=True)
    (masked, mask), truth = next(iter(batches))
    assert masked.shape == mask.shape == truth.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(masked.numpy(), (truth * mask).numpy())
    hole_ratio = 1.0 - mask.numpy().mean(axis=(1, 2, 3))
    assert np.all((hole_ratio > 0.19) & (hole_ratio < 0.31))


def test_validation_set_pairs_every_photo_with_every_band(tmp_path):
    for i, image in enumerate(_random_images(2, height=40, width=50, seed=4)):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    val = data.validation_set(data.expand_sources([str(tmp_path)]), image_size=32, image_count=2, seed=0)
    assert len(val) == 12 and val.images.shape == (12, 32, 32, 3) and val.masks.shape == (12, 32, 32, 1)
    assert val.bands == [b for b in ("00-10", "10-20", "20-30", "30-40", "40-50", "50-60") for _ in range(2)]
    hole_ratio = 1.0 - val.masks.mean(axis=(1, 2, 3))
    for index, band in enumerate(val.bands):
        low, high = int(band[:2]) / 100, int(band[3:]) / 100
        assert low - 1e-3 <= hole_ratio[index] <= high + 1e-3
    again = data.validation_set(data.expand_sources([str(tmp_path)]), image_size=32, image_count=2, seed=0)
    np.testing.assert_array_equal(val.masks, again.masks)


def test_undecodable_photos_are_named_and_skipped(tmp_path, caplog):
    Image.fromarray(_random_images(1, height=40, width=50)[0]).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = data.expand_sources([str(tmp_path)])
    assert data.first_decodable_photo(files) == str(tmp_path / "good.png")
    assert data.first_decodable_photo([str(tmp_path / "broken.jpg")]) is None

    val = data.validation_set(files, image_size=32, image_count=2, seed=0)
    assert val.images.shape == (6, 32, 32, 3), "the good photo in every band"
    assert any("broken.jpg" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    with pytest.raises(ValueError, match="no decodable validation photos"):
        data.validation_set([str(tmp_path / "broken.jpg")], image_size=32, image_count=2)


def test_training_names_each_photo_it_cannot_decode_once(tmp_path, caplog):
    good = _random_images(3, height=40, width=50, seed=5)
    for i, image in enumerate(good[:2]):
        Image.fromarray(image).save(tmp_path / f"good{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shard = str(tmp_path / "train-00000-of-00001")
    with tf.io.TFRecordWriter(shard) as writer:
        writer.write(_example(good[2]))
        writer.write(_example(good[2], encoded=b"garbage"))
        writer.write(_example(good[2], image_key="image/raw"))
    batches = data.training_dataset(data.expand_sources([str(tmp_path)]), image_size=16, batch_size=2,
                                    masks=data.MaskConfig(), seed=1)
    for (masked, _), truth in batches.take(8):  # about five passes over the three good photos
        assert truth.shape == (2, 16, 16, 3)
    warnings = _skip_warnings(caplog)
    assert len(warnings) == 3, warnings  # each bad photo once, however often it is read
    [broken] = [w for w in warnings if "broken.jpg" in w]
    assert broken.startswith(f"skipping {tmp_path / 'broken.jpg'}: undecodable photo: ")
    assert "Invalid JPEG data" in broken and "function_node" not in broken
    assert any(w.startswith(f"skipping {shard}#1: undecodable photo: Unknown image file format") for w in warnings)
    assert any(w.startswith(f"skipping {shard}#2: undecodable photo: no image bytes") for w in warnings)


def _training_stderr(folder, bad: str) -> str:
    """What six batches (about four passes) of training on `folder`'s photos print, TensorFlow's
    warnings shown (the tests hide them), with the file `bad` made undecodable ("broken.jpg", a
    truncated "broken.tif"), gone after listing ("gone.png") or a shard of one record that is not a
    tf.train.Example."""
    import subprocess
    import sys

    script = f"""
import os
from models.pconv import data
files = data.expand_sources([{str(folder)!r}])
if {bad!r} == "gone.png":
    os.unlink(os.path.join({str(folder)!r}, "gone.png"))
batches = data.training_dataset(files, image_size=16, batch_size=2, masks=data.MaskConfig(), seed=1)
assert len(list(batches.take(6))) == 6
"""
    for index, image in enumerate(_random_images(2, height=40, width=50, seed=7)):
        Image.fromarray(image).save(folder / f"good{index}.png")
    if bad.endswith(".tif"):
        whole = _encoded(Image.fromarray(_PHOTO), "TIFF")
        (folder / bad).write_bytes(whole[: len(whole) // 2])
    elif data.is_image_file(bad):
        (folder / bad).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    else:
        with tf.io.TFRecordWriter(str(folder / bad)) as writer:
            writer.write(_NOT_AN_EXAMPLE)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, timeout=300,
                          encoding="utf-8", errors="replace",  # TensorFlow logs a bad record's bytes
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_a_photo_training_skips_is_named_without_tensorflows_anonymous_warning(tmp_path):
    """TensorFlow's `Error raised with error message ...` named no photo and came again on
    every pass over the set, beside the warning that names it."""
    stderr = _training_stderr(tmp_path, "broken.jpg")
    assert f"skipping {tmp_path / 'broken.jpg'}: undecodable photo" in stderr
    assert "Error raised with error message" not in stderr


def test_a_corrupt_tiff_training_skips_is_named_without_a_traceback_on_every_pass(tmp_path):
    """PIL's failure in tf.numpy_function made TensorFlow log its Python traceback, on every pass."""
    stderr = _training_stderr(tmp_path, "broken.tif")
    assert stderr.count(f"skipping {tmp_path / 'broken.tif'}: undecodable photo: truncated or corrupt TIFF") == 1
    assert "Traceback" not in stderr and "Error raised with error message" not in stderr


def test_a_file_gone_after_listing_is_named_once_without_tensorflows_warning_on_every_pass(tmp_path):
    """Only TensorFlow's warnings named it, again on every pass over the photos."""
    stderr = _training_stderr(tmp_path, "gone.png")
    assert stderr.count(f"skipping {tmp_path / 'gone.png'}: unreadable file: No such file or directory") == 1
    assert "Error raised with error message" not in stderr
    # TensorFlow's own log of the failed read comes once, not on each of the 4 passes.
    assert stderr.count(f"{tmp_path / 'gone.png'}; No such file or directory") == 1


@pytest.mark.parametrize("where", ["local", "memory"])
def test_training_goes_on_past_a_photo_gone_after_listing(tmp_path, caplog, where):
    for index, image in enumerate(_random_images(3, height=40, width=50, seed=9)):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
    if where == "local":
        folder = str(tmp_path)
    else:
        for index in range(3):
            fsspec.filesystem("memory").pipe(f"/pconv-gone/{index}.png", (tmp_path / f"{index}.png").read_bytes())
        folder = "memory://pconv-gone"
    files = data.expand_sources([folder])
    fsspec.open(files[1]).fs.rm(fsspec.core.url_to_fs(files[1])[1])
    try:
        batches = data.training_dataset(files, image_size=16, batch_size=2, masks=data.MaskConfig(), seed=1)
        assert len(list(batches.take(6))) == 6  # six passes over the two photos left
    finally:
        if where == "memory":
            fsspec.filesystem("memory").rm("/pconv-gone", recursive=True)
    [warning] = _skip_warnings(caplog)
    assert warning.startswith(f"skipping {files[1]}: unreadable file: ")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_truncated_shard_is_read_up_to_the_cut_and_named(tmp_path, caplog, where):
    shard = tmp_path / "train-00000-of-00001"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for image in _random_images(3, seed=6):
            writer.write(_example(image))
    cut = shard.read_bytes()[:-10]  # the third record loses its end
    if where == "local":
        shard.write_bytes(cut)
        path = str(shard)
    else:
        fsspec.filesystem("memory").pipe("/pconv-cut/train-00000-of-00001", cut)
        path = "memory://pconv-cut/train-00000-of-00001"
    try:
        sources = [s.decode() for _, s in data.encoded_images([path], shuffle=False).as_numpy_iterator()]
        assert sources == [f"{path}#0", f"{path}#1"]
        batches = data.training_dataset([path], image_size=16, batch_size=2, masks=data.MaskConfig(), seed=1)
        assert len(list(batches.take(4))) == 4, "training goes on with the records before the cut"
    finally:
        if where == "memory":
            fsspec.filesystem("memory").rm("/pconv-cut", recursive=True)
    [warning] = set(_skip_warnings(caplog))
    assert warning.startswith(f"skipping {path}#2: ") and "truncated" in warning


def test_a_seed_gives_the_same_batches_from_tfrecord_shards_on_every_run(tmp_path):
    """Shards were read several at once and their records taken as they came, so two runs with
    one seed trained on different batches (image files were already reproducible)."""
    images = _random_images(48, height=96, width=128, seed=3)
    shards = [str(tmp_path / f"train-{index:05d}-of-00004") for index in range(4)]
    for index, shard in enumerate(shards):
        with tf.io.TFRecordWriter(shard) as writer:
            for image in images[index::4]:
                writer.write(_example(image))

    def first_batches():
        batches = data.training_dataset(shards, image_size=32, batch_size=4, masks=data.MaskConfig(), seed=5)
        return [target for _, (_, target) in zip(range(6), batches.as_numpy_iterator())]

    for first, again in zip(first_batches(), first_batches(), strict=True):
        np.testing.assert_array_equal(first, again)


def _flat_colour_records(colours) -> list[bytes]:
    """Examples of flat-colour photos: a crop of one tells which record it came from."""
    return [_example(np.full((20, 30, 3), colour, np.uint8)) for colour in colours]


def _colour_of(crop: np.ndarray) -> tuple[int, ...]:
    return tuple(int(round(value * 255)) for value in crop[0, 0])


@contextlib.contextmanager
def _shard_in(where: str, local):
    """The shard file `local` as a local path, or copied to fsspec's memory file system (a remote
    shard's reader), removed afterwards."""
    if where == "local":
        yield str(local)
        return
    folder = f"/pconv-{local.parent.name}"
    fsspec.filesystem("memory").pipe(f"{folder}/{local.name}", local.read_bytes())
    try:
        yield f"memory:/{folder}/{local.name}"
    finally:
        fsspec.filesystem("memory").rm(folder, recursive=True)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_held_out_shard_lends_validation_its_first_records_and_trains_on_the_rest(tmp_path, caplog, where):
    """A held-out shard was held out whole: with 4 training shards, a quarter of the photos while
    validation scores 8. Now validation reads only its first records (even where some do not
    decode) and training reads every one after them."""
    colours = [(index * 40, 250 - index * 40, 90) for index in range(6)]
    local = tmp_path / "train-00000-of-00001"
    with tf.io.TFRecordWriter(str(local)) as writer:
        writer.write(_example(np.zeros((20, 30, 3), np.uint8), encoded=b"garbage"))
        for record in _flat_colour_records(colours):
            writer.write(record)
    with _shard_in(where, local) as shard:
        held_out = {shard: 3}  # the garbage record and the first two photos
        val = data.validation_set([shard], image_size=16, image_count=4, held_out_records=held_out)
        assert {_colour_of(image) for image in val.images} == set(colours[:2]), "not a record after the third"
        assert len(val) == 2 * 6

        sources = [s.decode() for _, s in data.encoded_images(
            [shard], shuffle=False, record_ranges={shard: slice(3, None)}).as_numpy_iterator()]
        assert sources == [f"{shard}#{index}" for index in range(3, 7)], "the real record indices"
        batches = data.training_dataset([shard], image_size=16, batch_size=4, masks=data.MaskConfig(), seed=2,
                                        held_out_records=held_out)
        trained = {_colour_of(crop) for _, truth in batches.take(4).as_numpy_iterator() for crop in truth}
        assert trained == set(colours[2:]), "every record after the held-out ones, and none of those"
        assert data.first_decodable_photo([shard], {shard: 7}) is None, "nothing left to train on"
    [warning] = set(_skip_warnings(caplog))  # no other record is named (none was cut short)
    assert warning.startswith(f"skipping {shard}#0: undecodable photo: Unknown image file format")


_NOT_AN_EXAMPLE = np.random.default_rng(0).bytes(300)  # a TFRecord record of random bytes


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_record_that_is_not_an_example_is_named_once(tmp_path, caplog, where):
    """Random bytes as a record failed to parse before the photo was numbered: training dropped it
    with only TensorFlow's anonymous warning, and validation dropped the rest of its shard."""
    images = _random_images(3, height=40, width=50, seed=8)
    local = tmp_path / "train-00000-of-00001"
    with tf.io.TFRecordWriter(str(local)) as writer:
        for record in (_NOT_AN_EXAMPLE, *map(_example, images)):
            writer.write(record)
    with _shard_in(where, local) as shard:
        batches = data.training_dataset([shard], image_size=16, batch_size=2, masks=data.MaskConfig(), seed=1)
        assert len(list(batches.take(6))) == 6  # four passes over the three photos
        val = data.validation_set([shard], image_size=16, image_count=3)
        assert len(val) == 3 * 6, "the photos after it"
    # Once in training, once in validation (which reads the shard apart).
    assert _skip_warnings(caplog) == [f"skipping {shard}#0: not a tf.train.Example (the record does not "
                                      "parse as one)"] * 2


def test_a_record_that_is_not_an_example_is_named_without_tensorflows_warning_on_every_pass(tmp_path):
    stderr = _training_stderr(tmp_path, "not-an-example.tfrecord")
    assert stderr.count(f"skipping {tmp_path / 'not-an-example.tfrecord'}#0: not a tf.train.Example") == 1
    assert "Error raised with error message" not in stderr
    # TensorFlow's own log of the failed parse comes once, not on each of the 4 passes.
    assert stderr.count("Could not parse example input") == 1
