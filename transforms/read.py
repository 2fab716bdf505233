"""Stage 1: find the input images (a file pattern or TFRecord shards) and read their bytes."""
from __future__ import annotations

import logging
import os
import posixpath
import re
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes, FileSystem
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from models.tfrecord import read_records
from transforms.records import ImageInfo, skip_type_inference

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
    (outputs then keep the paths relative to `dir`). A local pattern is made absolute, so each
    row's `image_uri` names its file wherever the metadata is read, and a rerun from another
    working directory (or `./dir` for `dir`) names the same files alike.

    A folder is an existing local directory or, on an object store, a name without wildcards
    that ends in `/`, or that is no object but has objects under `name/`.
    """
    if "://" not in pattern:
        if not _GLOB_CHARS.search(pattern) and os.path.isdir(pattern):
            pattern = pattern.rstrip("/") + "/**"
        return os.path.abspath(pattern)
    if _GLOB_CHARS.search(pattern):
        return pattern
    everything_under = pattern.rstrip("/") + "/**"
    if pattern.endswith("/") or (not FileSystems.exists(pattern) and
                                 FileSystems.match([everything_under], [1])[0].metadata_list):
        return everything_under
    return pattern


def match_input_files(pattern: str, limit: int | None = None) -> list:
    """`FileMetadata` of every file `pattern` matches (local or any Beam file system); with
    `limit`, of those among the first `limit` files listed (the listing stops there).

    A pattern with `**/` lists its fixed prefix once (Beam lists that whole subtree for it anyway)
    and keeps what `globstar_regex` accepts, rather than matching each variant with and without
    every `**/`, which would list an archive-sized prefix 2^n times.
    """
    if not _GLOBSTAR.search(pattern):
        return FileSystems.match([pattern], [limit])[0].metadata_list
    fixed = pattern[:_GLOB_CHARS.search(pattern).start()]
    accepts = globstar_regex(pattern).match
    return [m for m in FileSystems.match([fixed + "**"], [limit])[0].metadata_list if accepts(m.path)]


def _as_folder_prefix(path: str) -> str:
    """`path` as a prefix that only what lies under it starts with (local paths made absolute)."""
    if "://" not in path:
        path = os.path.abspath(path)
    return path.rstrip("/") + "/"


# What runs write under --output; an input found there is never read again.
MASKS_FOLDER = "masks"  # --write_masks
FRAMES_FOLDER = ".frames"  # the frames of multi-frame inputs, while a run goes on
OUTPUT_FOLDERS = ("images", MASKS_FOLDER, "metadata", "report", FRAMES_FOLDER)


# Files found beside photos that are never images: systems' folder files, macOS's AppleDouble
# `._<name>` companions (their name ends like the image's) and sidecars (editors' XMP, iOS edits,
# Google Takeout's JSON: each goes with its image, `sidecars_by_image`). Read, each would be an
# error row: an archive's folder holds thousands.
NEVER_IMAGES = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".directory"})
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".json"})
_SIDECARS_BY_STEM = frozenset({".xmp", ".aae"})  # `IMG_1.xmp` may be `IMG_1.jpg`'s


def never_an_image(path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return name.lower() in NEVER_IMAGES or name.startswith("._") or is_sidecar(name)


def is_sidecar(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in SIDECAR_EXTENSIONS


def sidecars_by_image(images: list[str], sidecars: list[str], others: list[str] = ()) -> dict[str, tuple[str, ...]]:
    """The sidecars that belong to each image: one named after the image's whole name is its own
    (darktable's and digiKam's `a.jpg.xmp`, Google Takeout's `a.jpg.json` and
    `a.jpg.supplemental-metadata.json`), in its case or, where no image has that case, in any case
    one image alone has; `<stem>.xmp` or `<stem>.aae` (Lightroom, Apple Photos) is that of the one
    file with that stem in its folder, any case. One that several files share a stem with is
    nobody's: it may describe any of them (a RAW+JPEG pair's describes the raw, which is never
    written). `others`, the files beside the images that are not inputs (the raw beside the JPEGs
    `*.jpg` matched), share stems too: the pattern changes no image's sidecars."""
    inputs, by_name, by_any_case, by_stem = set(images), {}, {}, {}
    for image in images:
        folder, name = posixpath.split(image)
        by_name[folder, name] = image
        by_any_case.setdefault((folder, name.lower()), []).append(image)
    for path in [*images, *others]:
        folder, name = posixpath.split(path)
        by_stem.setdefault((folder, posixpath.splitext(name)[0].lower()), []).append(path)
    owned = {}
    for sidecar in sidecars:
        folder, name = posixpath.split(sidecar)
        parts = name.split(".")
        named = next((".".join(parts[:end]) for end in range(len(parts) - 1, 0, -1)
                      if (folder, ".".join(parts[:end]).lower()) in by_any_case), None)
        if named is not None:
            candidates = [by_name[folder, named]] if (folder, named) in by_name else by_any_case[folder, named.lower()]
        elif "." + parts[-1].lower() in _SIDECARS_BY_STEM:
            candidates = by_stem.get((folder, ".".join(parts[:-1]).lower()), [])
        else:
            continue
        if len(candidates) == 1 and candidates[0] in inputs:
            owned.setdefault(candidates[0], []).append(sidecar)
    return {image: tuple(sorted(found)) for image, found in owned.items()}


def _beside_images(pattern: str, images: list, others: list) -> tuple[list[str], list[str]]:
    """The sidecars in the images' folders, and the files there that are neither inputs nor never
    images (`sidecars_by_image`'s `others`): those the pattern matched and, in folders where it
    cannot match sidecars (`photos/*.jpg`), those a listing finds: of each such folder, or on an
    object store, whose listing of a folder is one of its whole subtree, of the pattern's root once."""
    accepts = globstar_regex(pattern).match
    sidecars = {m.path for m in others if is_sidecar(m.path)}
    unlisted = {folder for folder in {posixpath.dirname(m.path) for m in images}
                if not all(accepts(f"{folder}/name{extension}") for extension in SIDECAR_EXTENSIONS)}
    if "://" in pattern and len(unlisted) > 1:
        listings = [_escaped(pattern_root(pattern)) + "**"]
    else:
        listings = [_escaped(folder) + "/*" for folder in sorted(unlisted)]
    inputs, unmatched = {m.path for m in images}, set()
    for listed in FileSystems.match(listings) if listings else ():
        for path in (m.path for m in listed.metadata_list if posixpath.dirname(m.path) in unlisted):
            if is_sidecar(path):
                sidecars.add(path)
            elif path not in inputs and not never_an_image(path):
                unmatched.add(path)
    return sorted(sidecars), sorted(unmatched)


def _escaped(path: str) -> str:
    """`path` as a pattern that matches it, glob characters and all (a folder named `Photos [2019]`)."""
    return _GLOB_CHARS.sub(lambda char: "[\\[]" if char.group() == "[" else f"[{char.group()}]", path)


class LeftOut(NamedTuple):
    """Matched files that are not inputs: what runs wrote under --output, and `never_an_image`."""
    outputs: int = 0
    not_images: int = 0

    def says(self, output_root: str | None) -> str:
        """`3 outputs of a run under out and 2 system files or sidecars (.DS_Store, ._*, .xmp, ...)`"""
        outputs, others = ("s" * (count != 1) for count in self)
        parts = [f"{self.outputs} output{outputs} of a run under {output_root}" if self.outputs else "",
                 f"{self.not_images} system file{others} or sidecar{others} (.DS_Store, ._*, .xmp, ...)"
                 if self.not_images else ""]
        return " and ".join(part for part in parts if part)


def match_inputs(pattern: str, output_root: str | None, limit: int | None = None) -> tuple[list, LeftOut]:
    """`match_input_files` without what runs wrote under `output_root` (its OUTPUT_FOLDERS) and
    files that are never images, and what that left out. Relative local paths mean the caller's
    working directory."""
    images, _, left_out = _matched_apart(pattern, output_root, limit)
    return images, left_out


def _matched_apart(pattern: str, output_root: str | None, limit: int | None = None) -> tuple[list, list, LeftOut]:
    """`match_inputs`'s images, and the files matched beside them that are never images."""
    matched = match_input_files(pattern, limit)
    written = tuple(_as_folder_prefix(FileSystems.join(output_root, folder))
                    for folder in OUTPUT_FOLDERS) if output_root else ()
    inputs = [m for m in matched if not (written and _as_folder_prefix(m.path).startswith(written))]
    images = [m for m in inputs if not never_an_image(m.path)]
    others = [m for m in inputs if never_an_image(m.path)]
    return images, others, LeftOut(len(matched) - len(inputs), len(others))


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


def file_info(listed, root: str) -> tuple[ImageInfo, None]:
    """`(FileMetadata, its sidecars)` -> `(ImageInfo, None)`: the image is named before its bytes
    are read, so `--skip_existing` can drop it without reading."""
    metadata, sidecars = listed
    path = metadata.path
    try:
        return ImageInfo(image_uri=path, relative_path=safe_relative_path(path, root), sidecars=sidecars), None
    except ValueError as e:
        return ImageInfo(image_uri=path, relative_path="").failed("read", e), None


def read_bytes(uri: str) -> bytes:
    """The whole file at `uri` (local or any Beam file system), never decompressed by its name."""
    with FileSystems.open(uri, compression_type="uncompressed") as f:
        return f.read()


@skip_type_inference
class _ReadFileBytes(beam.DoFn):
    def __init__(self):
        self._read = beam.metrics.Metrics.counter(NAMESPACE, "images_read")

    def process(self, element):
        info, _ = element
        self._read.inc()
        if info.status is not None:
            yield info, b""
            return
        info = info.replace(read_at=time.time())
        try:
            data = read_bytes(info.image_uri)
        except Exception as e:  # noqa: BLE001 - an unreadable file is an error row, not a failed job
            yield info.failed("read", e), b""
            return
        yield info, data


@skip_type_inference
class _MatchFiles(beam.DoFn):
    """Pattern -> `FileMetadata` of the files it matches, bar what this or an earlier run wrote
    under `output_root` (its OUTPUT_FOLDERS), even when --output lies inside the input tree. With
    `sidecars`, `(FileMetadata, its sidecars)` of each image."""

    def __init__(self, output_root: str | None, sidecars: bool = False):
        # Resolved here, in the launcher, whose working directory a relative --output means.
        self._output_root = os.path.abspath(output_root) if output_root and "://" not in output_root \
            else output_root
        self._sidecars = sidecars

    def process(self, pattern):
        inputs, others, left_out = _matched_apart(pattern, self._output_root)
        if left_out.outputs:
            logger.info("%d files matching %s are outputs of a run under %s and are not read",
                        left_out.outputs, pattern, self._output_root)
        if left_out.not_images:
            logger.info("%d files matching %s are system files or sidecars, never images, and are not "
                        "read as images (.DS_Store, Thumbs.db, ._*, .xmp, .aae, .json)", left_out.not_images,
                        pattern)
        if not inputs:
            raise FileNotFoundError(f"no file matches {pattern}" + (
                f" but {left_out.says(self._output_root)}" if any(left_out) else ""))
        if not self._sidecars:
            yield from inputs
            return
        owned = sidecars_by_image([m.path for m in inputs], *_beside_images(pattern, inputs, others))
        if owned:
            logger.info("%d sidecars (.xmp, .aae, .json) go with their images", sum(map(len, owned.values())))
        for metadata in inputs:
            yield metadata, owned.get(metadata.path, ())


class MatchAndSpread(beam.PTransform):
    """Pattern -> `FileMetadata` (an empty match fails the job), reshuffled so the files, not
    their pixels, are what spreads over workers. Files under `output_root` are left out."""

    def __init__(self, pattern: str, output_root: str | None = None, sidecars: bool = False):
        super().__init__()
        self._pattern = pattern
        self._output_root = output_root
        self._sidecars = sidecars

    def expand(self, pbegin):
        return (pbegin
                | "Pattern" >> beam.Create([self._pattern])
                | "MatchFiles" >> beam.ParDo(_MatchFiles(self._output_root, self._sidecars))
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
                | "Match" >> MatchAndSpread(self._pattern, self._output_root, sidecars=True)
                | "Name" >> beam.Map(file_info, pattern_root(self._pattern)))


class ReadImageBytes(beam.PTransform):
    """`(ImageInfo, None)` -> `(ImageInfo, bytes)`; unreadable files become error infos."""

    def expand(self, named):
        return named | "ReadBytes" >> beam.ParDo(_ReadFileBytes())


class RecordParser:
    """One TFRecord record -> `(ImageInfo, image bytes, id)`, shared by the pass that checks the
    output names and the pass that reads the images, so that both name every record alike.

    A record without an id is named `<shard>-<offset>`, its shard's path under `shards_root` (the
    shard pattern's fixed prefix, as files keep theirs), else the shard's name: `train/data.tfrecord`
    and `val/data.tfrecord` name their records apart.
    """

    def __init__(self, image_key: str, id_key: str, shards_root: str = ""):
        self._image_key = image_key
        self._id_key = id_key
        self._shards_root = shards_root

    def records(self, path: str):
        """`(offset, ImageInfo, image bytes, id)` of each record of the shard at `path`, decompressed
        by its extension as TensorFlow and Beam write them (`.gz`: `TFRecordWriter(path, "GZIP")`,
        `WriteToTFRecord`); a corrupt tail raises after the records before it."""
        import tensorflow as tf  # tf.train.Example only: reading starts no TensorFlow runtime

        shard = safe_relative_path(path, self._shards_root) if self._shards_root else posixpath.basename(path)
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
            for offset, record in enumerate(read_records(stream)):
                yield (offset, *self._parse(tf, record, path, shard, offset))

    def _parse(self, tf, record: bytes, path: str, shard: str, offset: int):
        image_id = f"{shard}-{offset:06d}"
        try:
            features = tf.train.Example.FromString(record).features.feature
        except Exception as e:  # noqa: BLE001
            info = ImageInfo(image_uri=f"{path}#{offset}", relative_path=f"{image_id}.png")
            return info.failed("read", f"not a tf.train.Example: {e}"), b"", image_id
        stem = image_id
        named = _id_text(features[self._id_key]) if self._id_key in features else ""
        if named.strip("./"):
            image_id = named
            stem = _without_image_extension(safe_relative_path(named, ""))
        info = ImageInfo(image_uri=f"{path}#{offset}", relative_path=f"{stem}.png", image_format="PNG")
        values = features[self._image_key].bytes_list.value if self._image_key in features else []
        if not values:
            # Its bytes features, so that a misspelt --tfrecord_image_key shows the right one.
            holding_bytes = sorted(key for key, feature in features.items() if feature.bytes_list.value)
            return info.failed("read", f"record has no {self._image_key!r} bytes feature (its bytes features: "
                               f"{', '.join(map(repr, holding_bytes)) or 'none'})"), b"", image_id
        return info, values[0], image_id


# What an id's last dot may start that is its image's format (`cat.jpg`, `scan.TIFF`, `IMG_1.heic`):
# PIL's formats, and pillow-heif's whether or not this process has registered them yet.
_IMAGE_EXTENSIONS = frozenset(Image.registered_extensions()) | {".heic", ".heics", ".heif", ".heifs", ".hif"}


def _without_image_extension(name: str) -> str:
    """`cat.jpg` -> `cat`; any other dot stays (`frame.0001`, `2019.06.01`): dropped, it made ids
    that differ only after it claim one output name."""
    stem, extension = posixpath.splitext(name)
    return stem if extension.lower() in _IMAGE_EXTENSIONS else name


def _id_text(feature) -> str:
    """An id feature's first value as text: bytes as UTF-8, an integer id (COCO's and many
    datasets' `image/id`) in decimal, so `--tfrecord_id_key` may name either."""
    if feature.bytes_list.value:
        return feature.bytes_list.value[0].decode("utf-8", "replace")
    if feature.int64_list.value:
        return str(feature.int64_list.value[0])
    return ""


class _ListOutputNames(beam.DoFn):
    """Shard -> `(output name, (shard path, offset, id))` of each record that will be written."""

    def __init__(self, parser: RecordParser):
        self._parser = parser

    def process(self, metadata):
        try:
            for offset, info, _, image_id in self._parser.records(metadata.path):
                if info.status is None:
                    yield info.relative_path, (metadata.path, offset, image_id)
        except Exception:  # noqa: BLE001 - the reading pass reports a corrupt tail as an error row
            return


def _shared_name_claims(name_and_claims):
    """`(output name, claims)` of a name several records claim -> `(record uri, error)` for every
    claim but the first by shard path and offset, and `(its uri, None)` for that one, which keeps
    the name: the same records lose on every run and runner."""
    name, claims = name_and_claims
    (first_path, first_offset, first_id), *others = sorted(claims)
    if others:
        yield f"{first_path}#{first_offset}", None
    for path, offset, image_id in others:
        yield f"{path}#{offset}", (
            f"id {image_id!r} gives the output name {name}, which {first_path}#{first_offset} "
            f"(id {first_id!r}) already has: ids must be unique, even without their extension")


class _ReadTFRecordShard(beam.DoFn):
    def __init__(self, parser: RecordParser):
        self._parser = parser
        self._read = beam.metrics.Metrics.counter(NAMESPACE, "images_read")

    def process(self, metadata, shared_names: dict[str, str | None]):
        offset = -1
        try:
            for offset, info, image, _ in self._parser.records(metadata.path):
                self._read.inc()
                info = info.replace(read_at=time.time())
                if info.status is None and info.image_uri in shared_names:
                    name_taken = shared_names[info.image_uri]
                    info = info.failed("read", name_taken) if name_taken else info.replace(shared_name=True)
                yield info, image if info.status is None else b""
        except Exception as e:  # noqa: BLE001 - a corrupt shard tail is reported, not fatal
            self._read.inc()  # its error row is one of the run's: `images_read` counts every row
            uri = f"{metadata.path}#{offset + 1}"
            where = "from its first record" if offset < 0 else f"after record {offset}"
            yield ImageInfo(image_uri=uri, relative_path="").failed(
                "read", f"TFRecord shard unreadable {where}: {e}"), b""


class ReadTFRecordImages(beam.PTransform):
    """TFRecord shards of `tf.train.Example` -> `(ImageInfo, bytes)`; outputs are `<id stem>.png`
    (`cat.jpg` -> `cat.png`, no id: `<shard>-<offset>.png`, the shard's path under the pattern's
    fixed prefix).

    Two records whose ids give one output name (`cat.jpg` and `cat.png`, or an id repeated in
    another shard) must not overwrite each other's image. A first pass reads every shard for its
    names only and groups `(name, (shard, offset, id))` by name; no pixels cross that shuffle.
    Where a name has several records, the first by shard path and offset keeps it and each other
    becomes an error row naming that one: a choice that needs the global view, so the result does
    not depend on which shard a worker read first. The reading pass gets those (few) records as a
    side input, the winners too: a shard added since an earlier run may hold the new winner, which
    `--skip_existing` must not take for done where the file holds the old one's image. The price
    is reading the shards twice, small next to segmenting their images.
    """

    def __init__(self, pattern: str, image_key: str = "image/encoded", id_key: str = "image/filename",
                 output_root: str | None = None):
        super().__init__()
        self._pattern = folder_as_pattern(pattern)
        self._parser = RecordParser(image_key, id_key, pattern_root(self._pattern))
        self._output_root = output_root

    def expand(self, pbegin):
        shards = pbegin | "MatchShards" >> MatchAndSpread(self._pattern, self._output_root)
        shared_names = (shards
                        | "ListOutputNames" >> beam.ParDo(_ListOutputNames(self._parser))
                        | "GroupByOutputName" >> beam.GroupByKey()
                        | "SharedNameClaims" >> beam.FlatMap(_shared_name_claims))
        return shards | "ReadRecords" >> beam.ParDo(_ReadTFRecordShard(self._parser),
                                                    shared_names=beam.pvalue.AsDict(shared_names))
