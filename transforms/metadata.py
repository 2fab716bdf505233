"""Stage 7: one Parquet row per input image, failures included, through Beam's Parquet sink
(which writes to temporary files and renames on success, so no partial file is ever visible)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from transforms.records import ERROR, SKIPPED, ImageInfo

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


def metadata_prefix(output_root: str, run: str = "") -> str:
    """`<output>/metadata/part`, or `.../part-<run>` for the shards of one run."""
    prefix = FileSystems.join(output_root.rstrip("/"), "metadata", "part")
    return f"{prefix}-{run}" if run else prefix


def metadata_pattern(output_root: str) -> str:
    """Every run's shards."""
    return metadata_prefix(output_root) + "-*.parquet"


def to_row(info: ImageInfo, segmenter: str, inpainter: str) -> dict:
    failed = info.status == ERROR
    return {
        "image_uri": info.image_uri,
        "output_uri": None if failed else info.output_uri,
        "status": info.status,
        "error": info.error if failed else None,
        "width": info.width or None,
        "height": info.height or None,
        "instances": list(info.instances),
        # A skipped image was not looked at this run: unknown, not "nothing removed".
        "removed_fraction": None if info.status == SKIPPED else float(info.removed_fraction),
        "segmenter": segmenter,
        "inpainter": inpainter,
        "notes": list(info.notes),
    }


def remove_other_shards(written: list[str], output_root: str) -> None:
    """Deletes every metadata shard of `output_root` but this run's `written` ones."""
    if not written:  # nothing to replace them with
        return
    keep = {FileSystems.split(path)[1] for path in written}
    [match] = FileSystems.match([metadata_pattern(output_root)])
    others = [m.path for m in match.metadata_list if FileSystems.split(m.path)[1] not in keep]
    if others:
        FileSystems.delete(others)


class WriteMetadata(beam.PTransform):
    """Metadata rows -> `<output>/metadata/part-<run>-SSSSS-of-NNNNN.parquet`, replacing the shards
    of earlier runs.

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
            metadata_prefix(self._output_root, self._run), SCHEMA, file_name_suffix=".parquet")
        return (written
                | "AllWritten" >> beam.combiners.ToList()
                | "RemoveOtherShards" >> beam.Map(remove_other_shards, self._output_root))
