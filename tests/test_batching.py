"""Model batches are bounded by image count and by pixel bytes (a huge image goes alone)."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from transforms.batching import batch_elements_kwargs


def test_batches_respect_both_count_and_byte_bounds():
    max_count, max_bytes = 4, 4 * 30_000
    sizes = [10_000] * 9 + [200_000, 50_000, 50_000, 10_000]  # bytes per element
    elements = [(f"img{i}", np.zeros(n, np.uint8)) for i, n in enumerate(sizes)]

    def check(batches):
        seen = sorted(key for batch in batches for key, _ in batch)
        assert seen == sorted(key for key, _ in elements)
        for batch in batches:
            total = sum(array.nbytes for _, array in batch)
            assert len(batch) <= max_count
            assert len(batch) == 1 or total <= max_bytes, [a.nbytes for _, a in batch]

    with TestPipeline() as pipeline:
        batches = (pipeline | beam.Create(elements, reshuffle=False)
                   | beam.BatchElements(**batch_elements_kwargs(max_count, max_bytes)))
        assert_that(batches, check)
