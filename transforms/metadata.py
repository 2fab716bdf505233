"""Stage 7: one Parquet row per input image, failures included, through Beam's Parquet sink
(which writes to temporary files and renames on success, so no partial file is ever visible)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from transforms.records import ERROR, ImageInfo

INSTANCE_TYPE = pa.struct([
    ("label", pa.string()),
    ("label_id", pa.int32()),
    ("score", pa.float32()),
    ("bbox", pa.list_(pa.float32())),
    ("mask", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),
    ("area", pa.int64()),
    ("removed", pa.bool_()),
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


def metadata_prefix(output_root: str) -> str:
    return FileSystems.join(output_root.rstrip("/"), "metadata", "part")


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
        "removed_fraction": float(info.removed_fraction),
        "segmenter": segmenter,
        "inpainter": inpainter,
        "notes": list(info.notes),
    }


class WriteMetadata(beam.PTransform):
    """`ImageInfo`s -> `<output>/metadata/part-SSSSS-of-NNNNN.parquet`."""

    def __init__(self, output_root: str, segmenter: str, inpainter: str):
        super().__init__()
        self._prefix = metadata_prefix(output_root)
        self._segmenter = segmenter
        self._inpainter = inpainter

    def expand(self, infos):
        return (infos
                | "ToRow" >> beam.Map(to_row, self._segmenter, self._inpainter)
                | "WriteParquet" >> beam.io.WriteToParquet(self._prefix, SCHEMA,
                                                           file_name_suffix=".parquet"))
