"""Input pipeline for PConvUNet training: photos, hole masks and the validation set, all in tf.data.

Photos come from plain image files (JPEG, MPO, PNG, GIF, BMP and WebP decoded by TensorFlow; TIFF,
HEIC, AVIF, JPEG 2000 and PNM through PIL) or TFRecord shards in the ImageNet-1k Kaggle format
(`image/encoded`, `image/height`, `image/width`), local or remote (`gs://`, any fsspec URI). Local
files are read by TensorFlow's C++ readers; remote ones through fsspec, because TensorFlow no longer
ships a GCS filesystem. Training crops are random, square and undistorted; hole masks come from a
seeded irregular-mask generator written in TF ops (so it runs in parallel inside tf.data) and/or a
folder of mask images. tf.data works under every Keras backend, so the torch trainer uses it too.
"""
from __future__ import annotations

import glob
import itertools
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from models.pconv.metrics import HOLE_RATIO_BANDS, band_name
from models.pconv.photo_files import PHOTO_EXTENSIONS, UNREADABLE_PHOTO_EXTENSIONS, pil_decoded
from models.tfrecord import read_records
from models.uri import is_remote, local_path

logger = logging.getLogger("models.pconv.data")

AUTOTUNE = tf.data.AUTOTUNE
# Shards of the seed's ImageNet set are named `train-00012-of-01024`, without an extension.
_TFRECORD_NAME = re.compile(r"(\.tfrecords?$|\.tfrec$|tfrecord|-\d+-of-\d+$)", re.IGNORECASE)
_TFRECORD_FEATURES = {"image/encoded": tf.io.FixedLenFeature([], tf.string, default_value="")}
_ALL_RECORDS = np.iinfo(np.int64).max  # the end of a record range that reads a shard to its end
_NOT_AN_EXAMPLE = "not a tf.train.Example (the record does not parse as one)"
_CHUNK = 32  # photos read or parsed together; see _photos_or_skipped

# Irregular-mask generator: shape counts; their sizes are fractions of the image side. Together
# the shapes cover about 15-30% of the image; larger ratios scale them all up (see below).
_STROKES, _STROKE_VERTICES = 6, 5
_CIRCLES, _ELLIPSES = 4, 4


@dataclass(frozen=True)
class MaskConfig:
    """Where training holes come from.

    source: 'generated' (irregular-mask generator), 'folder' (mask images in `folder`) or 'both'
    (half of each). hole_color: which colour is the hole in the mask images ('white' as in the
    NVIDIA set, or 'black'). ratio_range: hole/image area range of generated masks.
    """

    source: str = "generated"
    ratio_range: tuple[float, float] = (0.01, 0.6)
    folder: str | None = None
    hole_color: str = "white"

    def __post_init__(self):
        if self.source not in ("generated", "folder", "both"):
            raise ValueError(f"mask source must be generated, folder or both, got {self.source!r}")
        if self.source != "generated" and not self.folder:
            raise ValueError(f"mask source {self.source!r} needs a mask folder")
        if self.hole_color not in ("white", "black"):
            raise ValueError(f"hole colour must be white or black, got {self.hole_color!r}")
        low, high = self.ratio_range
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"hole ratio range must satisfy 0 <= low < high <= 1, got {self.ratio_range}")


# ---------------------------------------------------------------------------------------------
# Finding and reading files


def is_image_file(path: str) -> bool:
    return path.lower().endswith(PHOTO_EXTENSIONS)


def _is_tfrecord_file(path: str) -> bool:
    return bool(_TFRECORD_NAME.search(os.path.basename(path.rstrip("/"))))


def expand_sources(patterns: Sequence[str], kinds: str = "images+tfrecords") -> list[str]:
    """Sorted, de-duplicated files matching `patterns` (globs or folders, local or remote).

    A folder stands for every file below it. Files that are neither images nor TFRecord shards
    (README, manifest.csv) are skipped; with kinds='images' only images are kept. A pattern that
    matches no usable file is an error, so a typo never trains on less data than intended.
    """
    keep = is_image_file if kinds == "images" else (lambda p: is_image_file(p) or _is_tfrecord_file(p))
    found: set[str] = set()
    for pattern in patterns:
        listed = _glob(pattern)
        matches = [p for p in listed if keep(p)]
        passed_over = [p for p in listed if _is_photo_training_cannot_read(p)]
        why = (f"{len(passed_over)} photos in formats training cannot read (e.g. {passed_over[0]}): it "
               f"reads {', '.join(PHOTO_EXTENSIONS)}; convert them first") if passed_over else ""
        if not matches:
            raise FileNotFoundError(f"no {kinds.replace('+', ' or ')} found for {pattern!r}"
                                    + (f", only {why}" if why else ""))
        if why:
            logger.warning("%r: skipping %s", pattern, why)
        found.update(matches)
    return sorted(found)


def _is_photo_training_cannot_read(path: str) -> bool:
    """JPEG XL, PSD, ...: photos the pipeline cleans but neither TensorFlow nor PIL reads here."""
    return path.lower().endswith(UNREADABLE_PHOTO_EXTENSIONS)


def _glob(pattern: str) -> list[str]:
    if is_remote(pattern):
        import fsspec

        fs, path = fsspec.core.url_to_fs(pattern)
        if fs.isdir(path):
            path = path.rstrip("/") + "/**"
        return [fs.unstrip_protocol(p) for p in fs.glob(path) if not fs.isdir(p)]
    pattern = local_path(pattern)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "**", "*")
    return [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]


def total_size_bytes(files: Sequence[str], stop_above: int | None = None) -> int:
    """Sum of file sizes (remote sizes via fsspec), to decide whether the encoded bytes fit a cache;
    stops counting past `stop_above`, which spares a size request per shard of a large remote set."""
    total = 0
    for path in files:
        if stop_above is not None and total > stop_above:
            break
        if is_remote(path):
            import fsspec

            fs, inner = fsspec.core.url_to_fs(path)
            total += int(fs.size(inner))
        else:
            total += os.path.getsize(path)
    return total


def _read_remote_file(path) -> bytes:
    """The bytes of a file through fsspec (any URI, or a local path)."""
    import fsspec

    with fsspec.open(path.decode() if isinstance(path, bytes) else path, "rb") as f:
        return f.read()


class SkipReport:
    """Logs each photo or shard that training skips, once per source (a small set is read again
    every epoch): the file of an image, `<shard>#<record index>` of a TFRecord record."""

    def __init__(self):
        self._reported: set[str] = set()

    def __call__(self, source: str, reason: str | Callable[[], str]) -> None:
        """`reason`: the text, or a function that works it out (only the first time)."""
        if source not in self._reported:
            self._reported.add(source)
            logger.warning("skipping %s: %s", source, reason if isinstance(reason, str) else reason())

    def in_graph(self, sources, reason):
        """Reports from inside tf.data the photos `sources` names (one, or a vector of them); returns
        False, so it can stand in a filter predicate. `reason`: a string tensor, or a function of
        the source (str) that works it out in Python."""
        def report(names, *reason_text):
            for name in (name.decode(errors="replace") for name in np.atleast_1d(names)):
                self(name, reason_text[0].decode(errors="replace") if reason_text else lambda: reason(name))
            return False

        inputs = [sources] if callable(reason) else [sources, reason]
        return tf.numpy_function(report, inputs, tf.bool, stateful=True)


def _local_image_bytes(files: tf.data.Dataset, skipped: SkipReport) -> tf.data.Dataset:
    """(bytes, path) of each image file; one that cannot be read (gone since it was listed) is
    named once to `skipped`."""
    return _photos_or_skipped(files, tf.io.read_file, lambda path: path, skipped, _why_unreadable)


def _remote_image_bytes(files: tf.data.Dataset, skipped: SkipReport) -> tf.data.Dataset:
    def read(path):
        data = tf.numpy_function(_read_remote_file, [path], tf.string, stateful=False)
        data.set_shape([])
        return data

    return _photos_or_skipped(files, read, lambda path: path, skipped, _why_unreadable)


def _why_unreadable(path: str) -> str:
    """Why the file `path` could not be read (read again to find out)."""
    try:
        _read_remote_file(path)
    except (OSError, ValueError) as error:
        return f"unreadable file: {getattr(error, 'strerror', None) or error}"
    return "unreadable file while training read it (it reads now)"


def _record_source(path, index):
    return tf.strings.join([path, "#", tf.strings.as_string(index)])


def _local_tfrecord_bytes(files: tf.data.Dataset, sizes: tf.lookup.StaticHashTable,
                          skipped: SkipReport) -> tf.data.Dataset:
    """Records read by TensorFlow's C++ reader, which ends a shard at a truncated or corrupt record
    with an error naming neither the shard nor the record; so the records read are counted against
    the shard's size (`sizes`: path -> bytes), and a shard that ends short is reported.

    `files`: (path, first record, end record) of each shard; the records before the first are read
    (to count the bytes) but not kept, the shard's reading stops at the end record."""
    def records(path, first, end):
        # ignore_errors ends the shard at its first unreadable record; an index -1 marks the end.
        read = tf.data.TFRecordDataset(path).ignore_errors().take(end).enumerate().concatenate(
            tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(b""))))

        def count(state, element):
            count, offset = state
            index, record = element
            framed = tf.cast(tf.strings.length(record), tf.int64) + 16  # length, 2 CRCs: 8 + 4 + 4 bytes
            return (count + 1, offset + framed), (path, count, record, index >= 0, offset)

        def keep(path, count, record, is_record, offset):
            def report():
                return skipped.in_graph(_record_source(path, count), tf.strings.format(
                    "the shard is truncated or corrupt at byte {} of {}; its later records are skipped too",
                    (offset, sizes.lookup(path))))

            def at_the_end():
                cut_short = (offset < sizes.lookup(path)) & (count < end)  # not stopped by `end`
                return tf.cond(cut_short, report, lambda: False)

            return tf.cond(is_record, lambda: count >= first, at_the_end)

        return read.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), count).filter(keep)

    # The source is named for a chunk of records at a time, not in the shard's sequential read.
    return _photos_or_skipped(
        files.interleave(records, cycle_length=8, num_parallel_calls=AUTOTUNE, deterministic=True),
        lambda path, index, record, *_: _encoded_photo(record), lambda path, index, *_: _record_source(path, index),
        skipped, _NOT_AN_EXAMPLE)


def _file_sizes(paths: list[str]) -> tf.lookup.StaticHashTable:
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        paths, [os.path.getsize(p) for p in paths], tf.string, tf.int64), default_value=-1)


def _compressed(path: str) -> bool:
    """Whether a shard is compressed, by its extension (`.gz`, `.bz2`, `.xz`, `.zst`): as
    TensorFlow's `TFRecordWriter(path, "GZIP")` and Beam's `WriteToTFRecord` write them."""
    from fsspec.utils import infer_compression

    return infer_compression(path) is not None


def _remote_records(path, skipped: SkipReport, first: int = 0, end: int = _ALL_RECORDS):
    """(record, `<shard>#<index>`) of a shard read through fsspec (decompressed by its extension),
    up to its first bad record: those from index `first` (the ones before are read, to find where
    the next starts) to `end`."""
    import fsspec

    path = path.decode() if isinstance(path, bytes) else path
    index = 0
    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            for record in itertools.islice(read_records(f), end):  # not one record past `end`
                if index >= first:
                    yield record, f"{path}#{index}"
                index += 1
    except (ValueError, OSError) as error:
        skipped(f"{path}#{index}", f"{error}; the shard's later records are skipped too")


def _remote_tfrecord_bytes(files: tf.data.Dataset, skipped: SkipReport) -> tf.data.Dataset:
    """`files`: (path, first record, end record) of each shard, as `_local_tfrecord_bytes`."""
    def records(path, first, end):
        return tf.data.Dataset.from_generator(
            lambda name, first, end: _remote_records(name, skipped, first, end), args=(path, first, end),
            output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)))

    return _photos_or_skipped(
        files.interleave(records, cycle_length=8, num_parallel_calls=AUTOTUNE, deterministic=True),
        lambda record, source: _encoded_photo(record), lambda record, source: source, skipped, _NOT_AN_EXAMPLE)


def _encoded_photo(record):
    """The image bytes of a tf.train.Example; a record without image/encoded gets empty bytes, so it
    is reported as undecodable with its name instead of failing the step."""
    return tf.io.parse_single_example(record, _TFRECORD_FEATURES)["image/encoded"]


def _photos_or_skipped(elements: tf.data.Dataset, photo: Callable, source: Callable, skipped: SkipReport,
                       reason) -> tf.data.Dataset:
    """(photo(*element), source(*element)) of each element, in order; `source` names a chunk of
    elements at a time (vectors). An element `photo` fails on is skipped and named once to
    `skipped` with `reason` (as `SkipReport.in_graph`'s), where tf.data's ignore_errors drops it
    unnamed. So the elements go _CHUNK at a time, each chunk a dataset of its own whose last step
    names the ones not made (a dataset per element would cost 10% more). A source that failed is
    not tried again: TensorFlow would log the failure on every pass."""
    made_now = tf.lookup.experimental.MutableHashTable(tf.string, tf.bool, default_value=False)
    failed = tf.lookup.experimental.MutableHashTable(tf.string, tf.bool, default_value=False)

    def make(element, name):
        data = photo(*element)
        with tf.control_dependencies([data]):  # noted only once `photo` made it
            noted = made_now.insert(name, True)
        with tf.control_dependencies([noted]):
            return tf.identity(data), name

    def chunk(*chunk_elements):
        names = source(*chunk_elements)
        untried = tf.ensure_shape(tf.logical_not(failed.lookup(names)), [None])
        chunk_elements = tuple(tf.boolean_mask(part, untried) for part in chunk_elements)
        names = tf.boolean_mask(names, untried)

        def report_unmade(*end_mark):
            unmade = tf.boolean_mask(names, tf.ensure_shape(tf.logical_not(made_now.lookup(names)), [None]))
            with tf.control_dependencies([made_now.remove(names),
                                          failed.insert(unmade, tf.ones_like(unmade, tf.bool))]):
                return tf.cond(tf.size(unmade) > 0, lambda: skipped.in_graph(unmade, reason), lambda: False)

        made = tf.data.Dataset.from_tensor_slices((chunk_elements, names)).map(make).ignore_errors()
        end_mark = tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(b"")))
        return made.concatenate(end_mark.filter(report_unmade))  # reached once the chunk is read

    # A block as long as a chunk keeps the elements in order.
    return elements.batch(_CHUNK).interleave(chunk, block_length=_CHUNK, num_parallel_calls=AUTOTUNE,
                                             deterministic=True)


def encoded_images(files: Sequence[str], *, shuffle: bool, seed: int = 0, cache: bool = False,
                   shuffle_buffer: int = 512, skipped: SkipReport | None = None,
                   record_ranges: Mapping[str, slice] | None = None) -> tf.data.Dataset:
    """(encoded image bytes, source) from a mix of image files and TFRecord shards, where source
    names the photo: its file, or `<shard>#<record index>`.

    record_ranges: shard -> the records of it to read, by index (`slice(8, None)`: all but the first
    8); other shards are read whole.

    shuffle=True: endless, files reshuffled each pass plus a shuffle buffer of records (training).
    shuffle=False: one pass in file order (validation). cache=True keeps the encoded bytes in
    memory after the first pass, so later epochs only decode. Image files and TFRecord shards
    given together are mixed in proportion to their file counts. A truncated or corrupt shard is
    read up to its first bad record and reported to `skipped`, and so are a file that cannot be
    read and a record that is not a tf.train.Example, skipped. Shards are read several at once,
    their records taken in a fixed order, so a seed gives the same batches on every run (as
    fast as taking them as they come: 101-105 batches/s either way, 64 px, 4 BSDS500 shards).
    """
    skipped = skipped or SkipReport()
    groups: dict[tuple[bool, bool], list[str]] = {}
    for path in files:
        # A compressed shard (`.tfrecord.gz`) is read as a remote one is, in Python: TensorFlow's
        # reader would need its compression named, and its records counted against the file's size.
        groups.setdefault((is_image_file(path), is_remote(path) or _compressed(path)), []).append(path)
    datasets, weights = [], []
    for (is_image, remote), paths in sorted(groups.items()):
        names = (tf.data.Dataset.from_tensor_slices(paths) if is_image
                 else _shard_ranges(paths, record_ranges or {}))
        if shuffle:  # a cached set keeps its first (random) order, the shuffle buffer mixes it further
            names = names.shuffle(len(paths), seed=seed, reshuffle_each_iteration=not cache)
        if is_image:
            data = (_remote_image_bytes if remote else _local_image_bytes)(names, skipped)
        elif remote:
            data = _remote_tfrecord_bytes(names, skipped)
        else:
            data = _local_tfrecord_bytes(names, _file_sizes(paths), skipped)
        if cache:
            data = data.cache()
        if shuffle:
            data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        datasets.append(data)
        weights.append(float(len(paths)))
    if len(datasets) == 1:
        return datasets[0]
    if shuffle:
        total = sum(weights)
        return tf.data.Dataset.sample_from_datasets(datasets, [w / total for w in weights], seed=seed)
    combined = datasets[0]
    for data in datasets[1:]:
        combined = combined.concatenate(data)
    return combined


def _shard_ranges(paths: list[str], record_ranges: Mapping[str, slice]) -> tf.data.Dataset:
    """(path, first record, end record) of each shard: its range in `record_ranges`, or all records."""
    ranges = [record_ranges.get(path, slice(None)) for path in paths]
    return tf.data.Dataset.from_tensor_slices((
        paths, np.array([r.start or 0 for r in ranges], np.int64),
        np.array([_ALL_RECORDS if r.stop is None else r.stop for r in ranges], np.int64)))


def decode_error(encoded: bytes) -> str | None:
    """Why `encoded` does not decode as a photo, or None when it does."""
    if not encoded:
        return "no image bytes (an empty file, or a TFRecord record without image/encoded)"
    if not _tensorflow_decodes(tf.constant(encoded)):
        return _pil_decoded_or_problem(encoded, 3)[1].decode() or None
    try:
        tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        return _first_line(error)
    return None


def _decodable_photos(path: str, records: slice = slice(None)):
    """The encoded photos of one file (an image, or each of the `records` of a shard) that decode,
    with a warning naming the photo for each one that does not."""
    skipped = SkipReport()
    photos = encoded_images([path], shuffle=False, skipped=skipped, record_ranges={path: records})
    try:
        # Read a chunk at a time: a photo that could not be read is named at the end of its chunk.
        for chunk in photos.batch(_CHUNK).as_numpy_iterator():
            for encoded, source in zip(*chunk):
                problem = decode_error(encoded)
                if problem:
                    skipped(source.decode(), f"undecodable photo: {problem}")
                    continue
                yield encoded
    except (tf.errors.OpError, OSError, ValueError) as error:
        logger.warning("skipping unreadable file %s: %s", path, _first_line(error))


def _first_line(error: Exception) -> str:
    """The first line of an error's message, without TensorFlow's `{{function_node ...}}` and
    `[Op:...]` decorations."""
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", "", getattr(error, "message", None) or str(error)).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def first_decodable_photo(files: Sequence[str], held_out_records: Mapping[str, int] | None = None) -> str | None:
    """The first of `files` holding a photo that decodes, or None. Training skips corrupt photos,
    so a set without one would otherwise wait forever for its first batch; this reads files only
    until one decodes (normally the first). held_out_records: as `training_dataset`'s."""
    for path in files:
        for _ in _decodable_photos(path, slice((held_out_records or {}).get(path, 0), None)):
            return path
    return None


# ---------------------------------------------------------------------------------------------
# Photos -> square crops

# How the files tf.io.decode_image reads start, as it tells them apart: JPEG, PNG, GIF, BMP, WebP
# ("." stands for any byte: a RIFF chunk's size).
_TENSORFLOW_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF....WEBP")
_SIGNATURE_BYTES = 12  # the longest


def _signature_table() -> tuple[np.ndarray, np.ndarray]:
    """(byte values, whether each counts): a row per signature, so that a file's first bytes are
    compared with all of them at once."""
    values = np.zeros((len(_TENSORFLOW_SIGNATURES), _SIGNATURE_BYTES), np.uint8)
    counts = np.zeros(values.shape, bool)
    for row, signature in enumerate(_TENSORFLOW_SIGNATURES):
        for column, byte in enumerate(signature):
            if byte != ord("."):
                values[row, column], counts[row, column] = byte, True
    return values, counts


_SIGNATURE_VALUES, _SIGNATURE_COUNTS = _signature_table()


def decode_photo(encoded, channels: int = 3):
    """uint8 (height, width, channels) of a photo's first frame, whatever its format: JPEG (MPO
    too), PNG, GIF, BMP and WebP by TensorFlow's decoder in-graph (fast: most training sets are
    JPEG), any other bytes (TIFF, HEIC, AVIF, JPEG 2000, PNM, ...) by PIL in Python. Fails on
    bytes neither reads, so the photo is skipped and named (`decode_error` says why) as a corrupt
    JPEG is."""
    # A tensor, not Python bytes, which NumPy would hold as a fixed-width string without its trailing NULs.
    encoded = tf.convert_to_tensor(encoded, tf.string)

    def by_pil():
        pixels, problem = tf.numpy_function(lambda data: _pil_decoded_or_problem(data, channels), [encoded],
                                            (tf.uint8, tf.string), stateful=False)
        # Failed by an assertion, which TensorFlow does not log: a failed numpy_function logs its
        # traceback, again on every pass over the photos.
        with tf.control_dependencies([tf.debugging.Assert(tf.equal(problem, ""), [problem])]):
            pixels = tf.identity(pixels)
        pixels.set_shape([None, None, channels])
        return pixels

    return tf.cond(_tensorflow_decodes(encoded),
                   lambda: tf.io.decode_image(encoded, channels=channels, expand_animations=False), by_pil)


def _pil_decoded_or_problem(data, channels: int) -> tuple[np.ndarray, bytes]:
    """(pixels, b"") of a photo PIL decodes, else (no pixels, why not). `data`: bytes, or (run
    eagerly in tf.numpy_function) a 0-d array holding them."""
    try:
        return pil_decoded(data.item() if isinstance(data, np.ndarray) else data, channels), b""
    except ValueError as error:
        return np.zeros((0, 0, channels), np.uint8), str(error).encode()


def _tensorflow_decodes(encoded):
    """Whether `encoded` starts as a format tf.io.decode_image reads. It runs for every training
    photo, so in a few ops, not one per signature: the first bytes, padded with zeros (a shorter
    file matches nothing longer), against the whole signature table at once."""
    head = tf.io.decode_raw(tf.strings.substr(encoded, 0, _SIGNATURE_BYTES), tf.uint8)
    head = tf.pad(head, [[0, _SIGNATURE_BYTES - tf.shape(head)[0]]])
    return tf.reduce_any(tf.reduce_all((head == _SIGNATURE_VALUES) | ~_SIGNATURE_COUNTS, axis=1))


def _decode_upscaled(encoded, size: int):
    """Decoded float image in [0, 1] whose shorter side is at least `size` (upscaled, aspect kept)."""
    image = tf.image.convert_image_dtype(decode_photo(encoded), tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    shorter = tf.cast(tf.minimum(height, width), tf.float32)

    def upscale():
        scale = float(size) / shorter
        new_size = tf.cast(tf.math.ceil(tf.cast(tf.stack([height, width]), tf.float32) * scale), tf.int32)
        return tf.image.resize(image, tf.maximum(new_size, size), method="bicubic", antialias=False)

    image = tf.cond(shorter < size, upscale, lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)


def random_crop(encoded, seed, size: int):
    """A random size x size crop, flipped left-right half the time (seeded, stateless)."""
    image = _decode_upscaled(encoded, size)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(image, [size, size, 3], crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def center_crop(encoded, size: int):
    image = _decode_upscaled(encoded, size)
    top = (tf.shape(image)[0] - size) // 2
    left = (tf.shape(image)[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


# ---------------------------------------------------------------------------------------------
# Hole masks (model convention: 1 = known pixel, 0 = hole)


def irregular_hole_mask(seed, size: int, ratio_range: tuple[float, float]):
    """A (size, size, 1) float mask with 1 = known, 0 = hole; hole ratio drawn from `ratio_range`.

    Random strokes (thick polylines), circles and ellipses are ranked: every pixel gets the rank of
    the first shape (in a random order) that covers it plus its normalised distance to that shape's
    core (0 on the core, 1 on the outline), and pixels outside all shapes rank after them by the
    smallest normalised distance, i.e. by how much every shape must be scaled up to reach them.
    The holes are the k lowest-ranked pixels, k = ratio * size^2, so the ratio is exact: a small
    ratio shows the first shapes, the last one thinner or smaller than drawn, instead of
    overshooting; a large ratio shows all shapes, thickened and enlarged by a common factor.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 13))
    low, high = ratio_range

    def uniform(shape, index, minval, maxval):
        return tf.random.stateless_uniform(shape, seeds[index], minval, maxval)

    # Pixel centres in [0, 1]; x and y kept apart and broadcast, which is cheaper than (P, 2) points.
    coordinates = (tf.range(size, dtype=tf.float32) + 0.5) / size
    xs, ys = coordinates[None, None, :], coordinates[None, :, None]

    # Strokes: random walks of `_STROKE_VERTICES` vertices; distance to the nearest segment.
    starts = uniform([_STROKES, 1, 2], 0, 0.0, 1.0)
    headings = uniform([_STROKES, 1], 1, 0.0, 2 * math.pi) + tf.cumsum(
        uniform([_STROKES, _STROKE_VERTICES - 1], 2, -1.2, 1.2), axis=1)
    lengths = uniform([_STROKES, _STROKE_VERTICES - 1], 3, 0.04, 0.25)
    steps = tf.stack([lengths * tf.cos(headings), lengths * tf.sin(headings)], axis=-1)
    vertices = tf.reshape(tf.concat([starts, starts + tf.cumsum(steps, axis=1)], axis=1), [-1, 2])
    segments = tf.reshape(tf.range(_STROKES * _STROKE_VERTICES), [_STROKES, _STROKE_VERTICES])[:, :-1]
    start_x, start_y = (tf.gather(vertices[:, i], tf.reshape(segments, [-1]))[:, None, None] for i in (0, 1))
    end_x, end_y = (tf.gather(vertices[:, i], tf.reshape(segments + 1, [-1]))[:, None, None] for i in (0, 1))
    vector_x, vector_y = end_x - start_x, end_y - start_y
    from_x, from_y = xs - start_x, ys - start_y  # (segments, 1, S) and (segments, S, 1)
    along = tf.clip_by_value((from_x * vector_x + from_y * vector_y)
                             / (vector_x * vector_x + vector_y * vector_y + 1e-12), 0.0, 1.0)
    squared = tf.square(from_x - along * vector_x) + tf.square(from_y - along * vector_y)
    squared = tf.reduce_min(tf.reshape(squared, [_STROKES, _STROKE_VERTICES - 1, size, size]), axis=1)
    stroke_radius = uniform([_STROKES, 1, 1], 4, 0.006, 0.035)
    stroke_distance = tf.sqrt(squared) / stroke_radius  # (strokes, S, S), < 1 inside

    # Circles and ellipses: normalised elliptic distance, < 1 inside.
    shapes = _CIRCLES + _ELLIPSES
    center_x, center_y = uniform([shapes, 1, 1], 5, 0.0, 1.0), uniform([shapes, 1, 1], 12, 0.0, 1.0)
    major = tf.concat([uniform([_CIRCLES], 6, 0.02, 0.12), uniform([_ELLIPSES], 10, 0.04, 0.2)], 0)
    minor = major * tf.concat([tf.ones([_CIRCLES]), uniform([_ELLIPSES], 7, 0.2, 0.7)], 0)
    angle = uniform([shapes, 1, 1], 8, 0.0, math.pi)
    cos, sin = tf.cos(angle), tf.sin(angle)
    offset_x, offset_y = xs - center_x, ys - center_y
    along_major = (offset_x * cos + offset_y * sin) / major[:, None, None]
    along_minor = (offset_y * cos - offset_x * sin) / minor[:, None, None]
    ellipse_distance = tf.sqrt(tf.square(along_major) + tf.square(along_minor))

    distance = tf.reshape(tf.concat([stroke_distance, ellipse_distance], axis=0), [-1, size * size])
    count = _STROKES + shapes
    order = tf.cast(tf.random.experimental.stateless_shuffle(tf.range(count), seeds[9]), tf.float32)
    inside = distance < 1.0
    rank_inside = tf.reduce_min(tf.where(inside, order[:, None] + distance, float(count + 1)), axis=0)
    rank_outside = count + tf.reduce_min(distance, axis=0)
    rank = tf.where(tf.reduce_any(inside, axis=0), rank_inside, rank_outside)

    ratio = uniform([], 11, low, high)
    hole_count = tf.clip_by_value(tf.cast(tf.round(ratio * size * size), tf.int32), 1, size * size)
    hole_pixels = tf.argsort(rank)[:hole_count]
    known = tf.tensor_scatter_nd_update(tf.ones([size * size]), hole_pixels[:, None], tf.zeros([hole_count]))
    return tf.reshape(known, [size, size, 1])


def generated_masks(size: int, ratio_range: tuple[float, float], seed: int) -> tf.data.Dataset:
    """Endless seeded irregular masks, generated in parallel."""
    return tf.data.Dataset.random(seed=seed).batch(2).map(
        lambda pair: irregular_hole_mask(pair, size, ratio_range), num_parallel_calls=AUTOTUNE)


def _load_mask(encoded, size: int, hole_is_white: bool):
    grey = decode_photo(encoded, channels=1)
    hole = grey > 127 if hole_is_white else grey <= 127
    # Area resampling then 0.5 keeps the hole ratio when a 512 mask trains a 256 model.
    hole = tf.image.resize(tf.cast(hole, tf.float32), [size, size], method="area") > 0.5
    return 1.0 - tf.cast(hole, tf.float32)


def folder_masks(folder: str, size: int, hole_color: str, seed: int) -> tf.data.Dataset:
    """Endless masks from the images in `folder` (recursive), cached decoded at `size`, with
    random flips and quarter turns so each file yields eight distinct masks. A file that does not
    decode is skipped with a warning naming it (it used to stop training with a traceback)."""
    files = expand_sources([folder], kinds="images")
    skipped = SkipReport()
    masks = tf.data.Dataset.from_tensor_slices(files)
    masks = (_remote_image_bytes if is_remote(files[0]) else _local_image_bytes)(masks, skipped)

    def attempt(data, path):
        """One element (mask, decoded, path), so that an undecodable file is named and skipped
        (a Dataset per file costs little: each is decoded once, then cached)."""
        loaded = tf.data.Dataset.from_tensors(data).map(
            lambda encoded: (_load_mask(encoded, size, hole_color == "white"), True)).ignore_errors()
        failed = tf.data.Dataset.from_tensors((tf.ones([size, size, 1]), False))
        return loaded.concatenate(failed).take(1).map(lambda mask, decoded: (mask, decoded, path))

    masks = masks.interleave(attempt, num_parallel_calls=AUTOTUNE, deterministic=True).filter(
        lambda mask, decoded, path: decoded or skipped.in_graph(path, "undecodable mask image"))
    masks = masks.map(lambda mask, decoded, path: mask).cache()
    masks = masks.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()

    def augment(mask, pair):
        seeds = tf.unstack(tf.random.experimental.stateless_split(pair, 3))
        mask = tf.image.stateless_random_flip_left_right(mask, seeds[0])
        mask = tf.image.stateless_random_flip_up_down(mask, seeds[1])
        return tf.image.rot90(mask, tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32))

    return tf.data.Dataset.zip(masks, tf.data.Dataset.random(seed=seed + 1).batch(2)).map(
        augment, num_parallel_calls=AUTOTUNE)


def training_masks(config: MaskConfig, size: int, seed: int) -> tf.data.Dataset:
    if config.source == "generated":
        return generated_masks(size, config.ratio_range, seed)
    from_folder = folder_masks(config.folder, size, config.hole_color, seed)
    if config.source == "folder":
        return from_folder
    return tf.data.Dataset.sample_from_datasets(
        [generated_masks(size, config.ratio_range, seed), from_folder], [0.5, 0.5], seed=seed)


# ---------------------------------------------------------------------------------------------
# Datasets the trainer consumes


def model_io(image, known):
    """((image with holes zeroed, mask), ground truth): the model's inputs and target. The model
    takes a 3-channel mask (one per colour channel, as NVIDIA's multi-channel partial conv)."""
    mask = tf.repeat(known, 3, axis=-1)
    return (image * mask, mask), image


def training_dataset(files: Sequence[str], *, image_size: int, batch_size: int, masks: MaskConfig,
                     seed: int = 0, cache: bool = False, shuffle_buffer: int = 512,
                     held_out_records: Mapping[str, int] | None = None) -> tf.data.Dataset:
    """Endless batches of ((masked image, mask), image), decoded and masked in parallel, prefetched.

    held_out_records: shard -> how many of its first records are held out for validation; training
    reads the shard from the record after them.

    A corrupt photo in a large archive is skipped, not fatal to a long run, with a warning naming
    it. tf.data skips a failed element without saying which it was, so the photos are numbered
    and each one's source noted in a table before it is decoded: a number missing after the skip
    names the photo. The crops of the other photos stay those the seed gave before.
    """
    skipped = SkipReport()
    photos = encoded_images(files, shuffle=True, seed=seed, cache=cache, shuffle_buffer=shuffle_buffer,
                            skipped=skipped, record_ranges={shard: slice(count, None) for shard, count
                                                            in (held_out_records or {}).items()}
                            ).ignore_errors(log_warning=True)  # a failure no reader names (none known):
    # skipped all the same, with TensorFlow's warning
    sources = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="")

    def crop(number, photo_and_seeds):
        (encoded, source), pair = photo_and_seeds
        with tf.control_dependencies([sources.insert(number, source)]):
            return number, random_crop(encoded, pair, image_size)

    def check_numbers(expected, batch):
        """Reports the photos whose numbers are missing before or in `batch` (checked per batch, not
        per photo: cheaper); returns the batch without its numbers."""
        numbers, inputs, target = batch
        missing = tf.sparse.to_dense(tf.sets.difference(
            tf.range(expected, numbers[-1] + 1)[None], numbers[None]))[0]
        names = sources.lookup(missing)
        reported = tf.cond(tf.size(names) > 0, lambda: skipped.in_graph(
            names, lambda source: _why_undecodable(source, skipped)), lambda: False)
        with tf.control_dependencies([reported]):
            forgotten = sources.remove(tf.range(expected, numbers[-1] + 1))
        with tf.control_dependencies([forgotten]):
            return numbers[-1] + 1, tf.nest.map_structure(tf.identity, (inputs, target))

    def numbered_model_io(numbered_crop, known):
        number, image = numbered_crop
        return number, *model_io(image, known)

    numbered = tf.data.Dataset.zip(photos, tf.data.Dataset.random(seed=seed).batch(2)).enumerate()
    # Skipped without TensorFlow's warning, which names no photo (and came again every epoch).
    crops = numbered.map(crop, num_parallel_calls=AUTOTUNE).ignore_errors()
    pairs = tf.data.Dataset.zip(crops, training_masks(masks, image_size, seed))
    return (pairs.map(numbered_model_io, num_parallel_calls=AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .scan(tf.constant(0, tf.int64), check_numbers)
            .prefetch(AUTOTUNE))


def _why_undecodable(source: str, skipped: SkipReport) -> str:
    """Why training skipped the photo `source` names after reading it (read again to find out)."""
    return "undecodable photo: " + (decode_error(_photo_bytes(source, skipped))
                                    or "it decodes, but no crop could be made")


def _photo_bytes(source: str, skipped: SkipReport) -> bytes:
    """The encoded photo `source` names, read again (only to say why it failed)."""
    shard, _, index = source.rpartition("#")
    if is_image_file(source) or not index.isdigit():
        return _read_remote_file(source)
    for record, name in _remote_records(shard, skipped):
        if name == source:
            return _encoded_photo(record).numpy()
    return b""


@dataclass(frozen=True)
class ValidationSet:
    """Fixed (image, mask) pairs: every validation image with one generated mask per band."""

    images: np.ndarray  # (N, S, S, 3) float32 in [0, 1]
    masks: np.ndarray   # (N, S, S, 1) float32, 1 = known
    bands: list[str]    # band name of each pair, e.g. '20-30'

    def __len__(self) -> int:
        return len(self.images)


def validation_set(files: Sequence[str], *, image_size: int, image_count: int, seed: int = 0,
                   held_out_records: Mapping[str, int] | None = None) -> ValidationSet:
    """Centre crops of the first `image_count` validation photos, each paired with a seeded
    generated mask from every hole-ratio band, so the per-band numbers are exact and comparable
    from one validation to the next (and independent of the training mask folder).

    held_out_records: shard -> how many of its first records are held out for validation (training
    reads the rest): validation reads no record after them, even where some of them do not decode.
    """
    crops = []
    for path in files:  # one file at a time, so an undecodable one is named and skipped
        held_out = (held_out_records or {}).get(path)
        for encoded in _decodable_photos(path, slice(0, held_out)):
            crops.append(center_crop(encoded, image_size).numpy())
            if len(crops) == image_count:
                break
        if len(crops) == image_count:
            break
    if not crops:
        raise ValueError(f"no decodable validation photos in {len(files)} files ({files[0]}, ...)")
    images = np.stack(crops)
    all_images, all_masks, bands = [], [], []
    for index, band in enumerate(HOLE_RATIO_BANDS):
        masks = generated_masks(image_size, band, seed=seed * 1000 + index).take(len(images))
        all_images.append(images)
        all_masks.append(np.stack(list(masks.as_numpy_iterator())))
        bands.extend([band_name(band)] * len(images))
    return ValidationSet(np.concatenate(all_images), np.concatenate(all_masks), bands)
