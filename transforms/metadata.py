"""Stage 7: one Parquet row per input image, failures included, through Beam's Parquet sink
(which writes to temporary files and renames on success), in a hidden staging folder: readers of
the metadata folder never see a partial or a killed run's file."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from transforms.records import ERROR, SKIPPED, ImageInfo, uri_bytes

INSTANCE_TYPE = pa.struct([
    ("label", pa.string()),
    ("label_id", pa.int32()),
    ("score", pa.float32()),
    ("bbox", pa.list_(pa.float32())),
    ("mask", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),
    ("area", pa.int64()),
    ("removed", pa.bool_()),
    ("kept", pa.bool_()),  # chosen by class and score, kept as the photo's subject (--keep_*)
    ("frame", pa.int32()),  # 0-based, in a multi-frame image (animation, pages); else 0
])

SCHEMA = pa.schema([
    ("image_uri", pa.string()),
    ("output_uri", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("instances", pa.list_(INSTANCE_TYPE)),
    ("removed_fraction", pa.float32()),
    ("segmenter", pa.string()),
    ("inpainter", pa.string()),
    ("notes", pa.list_(pa.string())),
])


# Beam's sink keeps its temporary files in a folder beside the shards it writes, for the whole
# run, and a killed run leaves them there: under metadata/ itself, pyarrow, pandas and Spark,
# which read every file of a folder they are given but hidden ones, would read them as shards
# (a half-written one fails the read, a whole one repeats its rows).
STAGING_FOLDER = ".writing"


def metadata_folder(output_root: str) -> str:
    return FileSystems.join(output_root.rstrip("/"), "metadata")


def staging_folder(output_root: str) -> str:
    """Where a run's shards are written before they are moved into the metadata folder."""
    return FileSystems.join(metadata_folder(output_root), STAGING_FOLDER)


def metadata_pattern(output_root: str) -> str:
    """Every run's shards, `<output>/metadata/part-*.parquet`."""
    return FileSystems.join(metadata_folder(output_root), "part-*.parquet")


def utf8_text(text: str | None) -> str | None:
    """`text` (a path, or a message naming one) as Parquet holds it: a byte of a name that is not
    UTF-8 as `\\xNN` (`records.uri_bytes`)."""
    return None if text is None else uri_bytes(text).decode("utf-8", "backslashreplace")


def to_row(info: ImageInfo, segmenter: str, inpainter: str) -> dict:
    failed = info.status == ERROR
    return {
        "image_uri": utf8_text(info.image_uri),
        "output_uri": None if failed else utf8_text(info.output_uri),
        "status": info.status,
        "error": utf8_text(info.error) if failed else None,
        "width": info.width or None,
        "height": info.height or None,
        "instances": list(info.instances),
        # A skipped image was not looked at this run: unknown, not "nothing removed".
        "removed_fraction": None if info.status == SKIPPED else float(info.removed_fraction),
        "segmenter": segmenter,
        "inpainter": inpainter,
        "notes": [utf8_text(note) for note in info.notes],
    }


def publish_shards(written: list[str], output_root: str) -> None:
    """Moves this run's `written` shards from the staging folder into the metadata folder, then
    deletes every other shard there. A retried call moves only what is still to move."""
    if not written:  # nothing to replace them with
        return
    names = {FileSystems.split(path)[1]: path for path in written}
    to_move = [name for name, path in names.items() if FileSystems.exists(path)]
    if to_move:
        FileSystems.rename([names[name] for name in to_move],
                           [FileSystems.join(metadata_folder(output_root), name) for name in to_move])
    keep = set(names)
    [match] = FileSystems.match([metadata_pattern(output_root)])
    others = [m.path for m in match.metadata_list if FileSystems.split(m.path)[1] not in keep]
    if others:
        FileSystems.delete(others)


class WriteMetadata(beam.PTransform):
    """Metadata rows -> `<output>/metadata/part-<run>-SSSSS-of-NNNNN.parquet`, replacing the shards
    of earlier runs. They are written in the staging folder and moved into the metadata folder
    once all are written.

    A run's shards carry its own `run` name, so they never take the name of an earlier run's
    shard: those stay whole and readable while this run goes on (`--skip_existing` reads them,
    see `transforms.skip_existing.KeepPreviousRows`) and are deleted only once every shard of this
    run is written. A run that fails before then leaves the previous metadata as it was.
    """

    def __init__(self, output_root: str, run: str):
        super().__init__()
        self._output_root = output_root
        self._run = run

    def expand(self, rows):
        written = rows | "WriteParquet" >> beam.io.WriteToParquet(
            FileSystems.join(staging_folder(self._output_root), f"part-{self._run}"), SCHEMA,
            file_name_suffix=".parquet")
        return (written
                | "AllWritten" >> beam.combiners.ToList()
                | "PublishShards" >> beam.Map(publish_shards, self._output_root))
