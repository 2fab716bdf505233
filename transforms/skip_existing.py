"""`--skip_existing`: images whose output is already written are not read or processed again, and
keep the metadata row the previous run gave them."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.read import NAMESPACE
from transforms.records import CLEANED, SKIPPED, UNCHANGED
from transforms.write import existing_output, sidecar_output_path
from transforms.write_masks import written_mask_path


class SkipExisting(beam.DoFn):
    """`(ImageInfo, payload)` passes on when its output is missing, else a 'skipped' info.

    An image is done only once its sidecars are written too, and with `masks_too` (`--write_masks`)
    its mask: a sidecar added since, a run killed between them and the image, or a sidecar or mask
    that could not be written, is finished like a missing image. So is a TFRecord record whose
    output name other records' ids give too (`ReadTFRecordImages`): the file may be another's.
    """

    SKIPPED = "skipped"

    def __init__(self, output_root: str, masks_too: bool = False):
        self._output_root = output_root
        self._masks_too = masks_too
        self._skipped = beam.metrics.Metrics.counter(NAMESPACE, "images_skipped")

    def process(self, element):
        info, _ = element
        if info.status is None and info.relative_path and not info.shared_name:
            path = existing_output(self._output_root, info.relative_path)
            with_it = [sidecar_output_path(self._output_root, info.relative_path, sidecar) for sidecar in info.sidecars]
            if self._masks_too:
                with_it.append(written_mask_path(self._output_root, info.relative_path))
            if path and all(FileSystems.exists(written) for written in with_it):
                self._skipped.inc()
                yield beam.pvalue.TaggedOutput(self.SKIPPED, info.replace(status=SKIPPED, output_uri=path))
                return
        yield element


KEPT_NOTE = "kept from the previous run (--skip_existing)"


def _by_uri(row: dict) -> tuple[str, dict]:
    return row["image_uri"], row


def _previous_or_skipped(uri: str, joined: dict):
    """This run's `skipped` row of `uri`, replaced by the previous run's row when there is one."""
    previous = next(iter(joined["previous"]), None)  # a failed replacement may have left two
    for row in joined["skipped"]:
        if previous is None:
            yield row
        else:
            notes = list(previous["notes"] or [])
            # The file is where this run found it, even if the output folder has moved since.
            yield {**previous, "output_uri": row["output_uri"],
                   "notes": notes if KEPT_NOTE in notes else notes + [KEPT_NOTE]}


class KeepPreviousRows(beam.PTransform):
    """Metadata rows -> the same rows, where a `skipped` image that the previous run cleaned or
    left unchanged gets that run's row back (status, size, instances, models), with a note.

    `previous_files` are the metadata shards found when the job was built. They stay in place
    until this run's metadata is written (`transforms.metadata.WriteMetadata` gives its shards
    names of their own and deletes the old ones last), so they are whole while read here. The
    rows are joined on `image_uri` with a CoGroupByKey, so no side has to fit in memory; images
    no longer in the input drop out, as each input has exactly one row.
    """

    def __init__(self, previous_files: list[str]):
        super().__init__()
        self._previous_files = list(previous_files)

    def expand(self, rows):
        skipped, others = rows | "SplitSkipped" >> beam.Partition(
            lambda row, _: 0 if row["status"] == SKIPPED else 1, 2)
        previous = (rows.pipeline
                    | "PreviousFiles" >> beam.Create(self._previous_files)
                    | "ReadPrevious" >> beam.io.ReadAllFromParquet()
                    | "Finished" >> beam.Filter(lambda row: row["status"] in (CLEANED, UNCHANGED))
                    | "PreviousByUri" >> beam.Map(_by_uri))
        kept = ({"skipped": skipped | "SkippedByUri" >> beam.Map(_by_uri), "previous": previous}
                | "Join" >> beam.CoGroupByKey()
                | "PreviousOrSkipped" >> beam.FlatMapTuple(_previous_or_skipped))
        return (others, kept) | "AllRows" >> beam.Flatten()
