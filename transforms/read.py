"""Stage 1: find the input images (a file pattern or TFRecord shards) and read their bytes."""
from __future__ import annotations

import logging
import os
import posixpath
import re

import apache_beam as beam
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms.records import ImageInfo

logger = logging.getLogger(__name__)
NAMESPACE = "bg_obj_remover"
_GLOB_CHARS = re.compile(r"[*?\[]")
# `**/` as a whole path segment: the recursive wildcard, which also matches no folder at all.
_GLOBSTAR = re.compile(r"(?:^|(?<=/))\*\*/")


def globstar_regex(pattern: str) -> re.Pattern:
    """Beam's glob syntax as a regex, except that each `**/` also matches no folder, as bash's
    globstar and Python's `glob(recursive=True)` do: `photos/**/*.jpg` takes `photos/a.jpg` too
    (Beam alone needs at least one folder level there)."""
    pieces = [FileSystem.translate_pattern(piece)[len("(?ms)"):-len(r"\Z")]
              for piece in _GLOBSTAR.split(pattern)]
    return re.compile("(?ms)" + "(?:.*/)?".join(pieces) + r"\Z")


def folder_as_pattern(pattern: str) -> str:
    """An input naming a folder means every file under it: `dir` and `dir/` become `dir/**`
    (outputs then keep the paths relative to `dir`).

    A folder is an existing local directory or, on an object store, a name without wildcards
    that ends in `/`, or that is no object but has objects under `name/`.
    """
    if _GLOB_CHARS.search(pattern):
        return pattern
    everything_under = pattern.rstrip("/") + "/**"
    if "://" not in pattern:
        return everything_under if os.path.isdir(pattern) else pattern
    if pattern.endswith("/") or (not FileSystems.exists(pattern) and
                                 FileSystems.match([everything_under], [1])[0].metadata_list):
        return everything_under
    return pattern


def match_input_files(pattern: str) -> list:
    """`FileMetadata` of every file `pattern` matches (local or any Beam file system).

    A pattern with `**/` lists its fixed prefix once (Beam lists that whole subtree for it anyway)
    and keeps what `globstar_regex` accepts, rather than matching each variant with and without
    every `**/`, which would list an archive-sized prefix 2^n times.
    """
    if not _GLOBSTAR.search(pattern):
        return FileSystems.match([pattern])[0].metadata_list
    fixed = pattern[:_GLOB_CHARS.search(pattern).start()]
    accepts = globstar_regex(pattern).match
    return [m for m in FileSystems.match([fixed + "**"])[0].metadata_list if accepts(m.path)]


def pattern_root(pattern: str) -> str:
    """The fixed prefix of a file pattern up to its last '/' before the first glob character.

    Output paths are the matched paths relative to this root, so `photos/**/*.jpg` keeps the
    sub-folder structure under `<output>/images/`.
    """
    glob_at = _GLOB_CHARS.search(pattern)
    fixed = pattern if glob_at is None else pattern[:glob_at.start()]
    if glob_at is None:  # a single file: its folder is the root
        return fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    return fixed[:fixed.rfind("/") + 1]


def safe_relative_path(path: str, root: str) -> str:
    """`path` relative to `root` as a POSIX path that cannot leave the output folder.

    `..`, `.` and empty components are dropped, and a path not under `root` keeps only its
    components, so no input name can make a write land outside `--output`.
    """
    relative = path[len(root):] if root and path.startswith(root) else path
    relative = relative.replace("\\", "/")
    if "://" in relative:
        relative = relative.split("://", 1)[1]
    parts = [p for p in relative.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"cannot derive an output name from {path!r}")
    return posixpath.join(*parts)


def file_info(metadata, root: str) -> tuple[ImageInfo, None]:
    """`FileMetadata` -> `(ImageInfo, None)`: the image is named before its bytes are read, so
    `--skip_existing` can drop it without reading."""
    path = metadata.path
    try:
        return ImageInfo(image_uri=path, relative_path=safe_relative_path(path, root)), None
    except ValueError as e:
        return ImageInfo(image_uri=path, relative_path="").failed("read", e), None


class _ReadFileBytes(beam.DoFn):
    def __init__(self):
        self._read = beam.metrics.Metrics.counter(NAMESPACE, "images_read")

    def process(self, element):
        info, _ = element
        self._read.inc()
        if info.status is not None:
            yield info, b""
            return
        try:
            with FileSystems.open(info.image_uri, compression_type="uncompressed") as f:
                yield info, f.read()
        except Exception as e:  # noqa: BLE001 - an unreadable file is an error row, not a failed job
            yield info.failed("read", e), b""


def _as_folder_prefix(path: str) -> str:
    """`path` as a prefix that only what lies under it starts with (local paths made absolute)."""
    if "://" not in path:
        path = os.path.abspath(path)
    return path.rstrip("/") + "/"


class _MatchFiles(beam.DoFn):
    """Pattern -> `FileMetadata` of the files it matches outside `output_root`: a run never reads
    what this or an earlier run wrote (its images, its report), even when --output lies inside
    the input tree."""

    def __init__(self, output_root: str | None):
        self._output_root = output_root

    def process(self, pattern):
        matched = match_input_files(pattern)
        inputs = matched
        if self._output_root:
            output = _as_folder_prefix(self._output_root)
            inputs = [m for m in matched if not _as_folder_prefix(m.path).startswith(output)]
            if len(inputs) < len(matched):
                logger.info("%d files matching %s are under the output folder %s and are not read",
                            len(matched) - len(inputs), pattern, self._output_root)
        if not inputs:
            raise FileNotFoundError(f"no file matches {pattern}" + (
                f" outside the output folder {self._output_root}" if matched else ""))
        yield from inputs


class MatchAndSpread(beam.PTransform):
    """Pattern -> `FileMetadata` (an empty match fails the job), reshuffled so the files, not
    their pixels, are what spreads over workers. Files under `output_root` are left out."""

    def __init__(self, pattern: str, output_root: str | None = None):
        super().__init__()
        self._pattern = pattern
        self._output_root = output_root

    def expand(self, pbegin):
        return (pbegin
                | "Pattern" >> beam.Create([self._pattern])
                | "MatchFiles" >> beam.ParDo(_MatchFiles(self._output_root))
                | "Spread" >> beam.Reshuffle())


class ListImageFiles(beam.PTransform):
    """File pattern or folder (local or gs://, `**` allowed) -> `(ImageInfo, None)`, spread over
    workers; nothing under `output_root` is an input."""

    def __init__(self, pattern: str, output_root: str | None = None):
        super().__init__()
        self._pattern = folder_as_pattern(pattern)
        self._output_root = output_root

    def expand(self, pbegin):
        return (pbegin
                | "Match" >> MatchAndSpread(self._pattern, self._output_root)
                | "Name" >> beam.Map(file_info, pattern_root(self._pattern)))


class ReadImageBytes(beam.PTransform):
    """`(ImageInfo, None)` -> `(ImageInfo, bytes)`; unreadable files become error infos."""

    def expand(self, named):
        return named | "ReadBytes" >> beam.ParDo(_ReadFileBytes())


class _ReadTFRecordShard(beam.DoFn):
    def __init__(self, image_key: str, id_key: str):
        self._image_key = image_key
        self._id_key = id_key
        self._read = beam.metrics.Metrics.counter(NAMESPACE, "images_read")

    def process(self, metadata):
        import tensorflow as tf

        shard = posixpath.basename(metadata.path)
        offset = -1
        try:
            for offset, record in enumerate(tf.data.TFRecordDataset(metadata.path).as_numpy_iterator()):
                self._read.inc()
                yield self._parse(tf, record, metadata.path, shard, offset)
        except Exception as e:  # noqa: BLE001 - a corrupt shard tail is reported, not fatal
            uri = f"{metadata.path}#{offset + 1}"
            yield ImageInfo(image_uri=uri, relative_path="").failed(
                "read", f"TFRecord shard unreadable after record {offset}: {e}"), b""

    def _parse(self, tf, record: bytes, path: str, shard: str, offset: int):
        fallback_id = f"{shard}-{offset:06d}"
        try:
            features = tf.train.Example.FromString(record).features.feature
        except Exception as e:  # noqa: BLE001
            info = ImageInfo(image_uri=f"{path}#{offset}", relative_path=f"{fallback_id}.png")
            return info.failed("read", f"not a tf.train.Example: {e}"), b""
        stem = fallback_id
        if self._id_key in features and features[self._id_key].bytes_list.value:
            image_id = features[self._id_key].bytes_list.value[0].decode("utf-8", "replace")
            if image_id.strip("./"):
                stem = posixpath.splitext(safe_relative_path(image_id, ""))[0]
        info = ImageInfo(image_uri=f"{path}#{offset}", relative_path=f"{stem}.png", image_format="PNG")
        values = features[self._image_key].bytes_list.value if self._image_key in features else []
        if not values:
            return info.failed("read", f"record has no {self._image_key!r} bytes feature"), b""
        return info, values[0]


class ReadTFRecordImages(beam.PTransform):
    """TFRecord shards of `tf.train.Example` -> `(ImageInfo, bytes)`; outputs are `<id>.png`."""

    def __init__(self, pattern: str, image_key: str = "image/encoded", id_key: str = "image/filename",
                 output_root: str | None = None):
        super().__init__()
        self._pattern = folder_as_pattern(pattern)
        self._image_key = image_key
        self._id_key = id_key
        self._output_root = output_root

    def expand(self, pbegin):
        return (pbegin
                | "MatchShards" >> MatchAndSpread(self._pattern, self._output_root)
                | "ReadRecords" >> beam.ParDo(_ReadTFRecordShard(self._image_key, self._id_key)))
