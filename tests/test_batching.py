"""Model batches are bounded by image count and by pixel bytes (a huge image goes alone)."""
from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.testing.util import assert_that

from transforms.batching import ElementWeight, ImageKeyedModelHandler, batch_elements_kwargs
from transforms.records import ImageInfo, SourceEncoding


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


def _scan_info(name: str, pixels: int) -> ImageInfo:
    """An image whose 16-bit values (3 channels, 2 bytes) travel beside its 8-bit RGB."""
    return ImageInfo(image_uri=name, relative_path=name,
                     encoding=SourceEncoding(mode="RGB;16", own_values=np.zeros((pixels, 3), np.uint16)))


def test_the_16_bit_values_an_image_carries_weigh_in_its_batch():
    weight = ElementWeight(max_batch_size=4, max_batch_bytes=4 * 3_000)
    rgb = np.zeros((1_000, 3), np.uint8)
    assert weight((ImageInfo(image_uri="a", relative_path="a"), rgb)) == 1
    assert weight((_scan_info("b", 1_000), rgb)) == 3  # 3,000 + 6,000 bytes


def test_a_batchs_bytes_are_counted_without_pickling_its_keys(monkeypatch):
    class Unkeyed(ModelHandler):
        def load_model(self):
            return None

        def run_inference(self, batch, model, inference_args=None):
            return batch

    def no_pickling(*args, **kwargs):
        raise AssertionError("keys pickled to count bytes")

    monkeypatch.setattr(pickle, "dumps", no_pickling)
    batch = [(_scan_info(name, 1_000), np.zeros((1_000, 3), np.uint8)) for name in "ab"]
    assert ImageKeyedModelHandler(Unkeyed()).get_num_bytes(batch) == 2 * (6_000 + 3_000)
