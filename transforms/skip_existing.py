"""`--skip_existing`: images whose output is already written are not read or processed again."""
from __future__ import annotations

import apache_beam as beam

from transforms.read import NAMESPACE
from transforms.records import SKIPPED
from transforms.write import existing_output


class SkipExisting(beam.DoFn):
    """`(ImageInfo, payload)` passes on when its output is missing, else a 'skipped' info."""

    SKIPPED = "skipped"

    def __init__(self, output_root: str):
        self._output_root = output_root
        self._skipped = beam.metrics.Metrics.counter(NAMESPACE, "images_skipped")

    def process(self, element):
        info, _ = element
        if info.status is None and info.relative_path:
            path = existing_output(self._output_root, info.relative_path)
            if path:
                self._skipped.inc()
                yield beam.pvalue.TaggedOutput(self.SKIPPED, info.replace(status=SKIPPED, output_uri=path))
                return
        yield element
