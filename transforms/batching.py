"""Batches bounded by image count AND pixel bytes, and the model-handler base of both
RunInference stages (one model per process for batches and for images retried alone).

Beam's `BatchElements` bounds only the summed `element_size_fn` by `max_batch_size` (it has no
separate weight cap), so each element weighs its share of a count slot or of the byte budget,
whichever is larger: a batch then never exceeds `max_batch_size` elements nor about
`max_batch_bytes` of pixels, and one huge image goes through alone.
"""
from __future__ import annotations

import copy
import math
from typing import TypeVar

import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler
from apache_beam.utils.shared import Shared

from transforms.records import ImageInfo


def array_bytes(obj) -> int:
    """Bytes of every ndarray inside `obj` (nested tuples/lists, keyed elements, the arrays an
    ImageInfo carries)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, ImageInfo):
        return obj.carried_bytes()
    if isinstance(obj, (tuple, list)):
        return sum(array_bytes(o) for o in obj)
    return 0


class ElementWeight:
    """`element_size_fn` in units of 1/max_batch_size of a batch (picklable, no closures)."""

    def __init__(self, max_batch_size: int, max_batch_bytes: int):
        self._bytes_per_slot = max(1, max_batch_bytes // max_batch_size)
        self._max_batch_size = max_batch_size

    def __call__(self, element) -> int:
        slots = math.ceil(array_bytes(element) / self._bytes_per_slot)
        return min(max(1, slots), self._max_batch_size)


def batch_elements_kwargs(max_batch_size: int, max_batch_bytes: int | None,
                          min_batch_size: int | None = None) -> dict:
    """By default every batch is full (`min_batch_size` = `max_batch_size`), bar a bundle's last.

    With a smaller minimum, Beam's adaptive sizing starts there and regrows from timings that
    include every fused stage downstream, so the models ran far smaller batches than asked for
    (1.3 images instead of 8 for inpainting in benchmarks/pipeline_overhead.py), at a cost in
    throughput (and new batch shapes make Keras retrace its predict function).
    """
    kwargs = {"min_batch_size": min_batch_size or max_batch_size, "max_batch_size": max_batch_size}
    if max_batch_bytes:
        kwargs["element_size_fn"] = ElementWeight(max_batch_size, max_batch_bytes)
    return kwargs


class ImageKeyedModelHandler(KeyedModelHandler):
    """Beam's KeyedModelHandler, counting a batch's bytes (a metric only) by the arrays in it:
    Beam's pickles every key, and an ImageInfo key carries its alpha and 16-bit values (137 MiB
    for a 24 MP 16-bit scan), a copy made per batch for nothing."""

    def get_num_bytes(self, batch) -> int:
        return array_bytes(list(batch))


ExampleT = TypeVar("ExampleT")
PredictionT = TypeVar("PredictionT")
ModelT = TypeVar("ModelT")


class SharedModelHandler(ModelHandler[ExampleT, PredictionT, ModelT]):
    """A ModelHandler batching with `batch_elements_kwargs(...)` whose `one_at_a_time()` copy
    (for a second RunInference that retries a failed batch's images alone) uses the same model.

    Each RunInference keeps its own per-process model cache; the `Shared` handle, pickled with
    the handler so its copies share it, gives the handler and its copy one model per process.
    Subclasses set `self._batching` and implement `_load()`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._model_handle = Shared()

    def one_at_a_time(self):
        """This handler with batches of one image and the same model in each process (pass both
        RunInference transforms one `model_identifier` to share it across processes too)."""
        single = copy.copy(self)
        single._batching = batch_elements_kwargs(1, None)
        return single

    def load_model(self) -> ModelT:
        return self._model_handle.acquire(self._load)

    def _load(self) -> ModelT:
        raise NotImplementedError

    def batch_elements_kwargs(self):
        return self._batching
