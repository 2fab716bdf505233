"""Stage 5: fill each hole with the PConvUNet, batched through RunInference."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np

from models import SHIPPED_INPAINT_WEIGHTS
from transforms.batching import SharedModelHandler, array_bytes, batch_elements_kwargs

Example = tuple[np.ndarray, np.ndarray]  # (rgb uint8 (H,W,3), hole bool (H,W))


class InpaintModelHandler(SharedModelHandler[Example, np.ndarray, Any]):
    """Loads `models.pconv.Inpainter` once per process; one copy per worker when `model_copies`
    (then `model` is a cross-process proxy, so only its methods are used here). `one_at_a_time()`
    gives a handler for a second RunInference that uses the same model. `weights_uri` "": the
    shipped checkpoint, where this process's own installed package has it (a worker's, not the
    launcher's disk)."""

    def __init__(self, weights_uri: str, strategy: str = "crop", device: str = "cpu",
                 max_batch_size: int = 8, max_batch_bytes: int = 256 << 20,
                 model_copies: Optional[int] = None, self_ensemble: int = 2, blend: str = "poisson"):
        super().__init__(model_copies=model_copies)
        # Full batches (the default): the Inpainter pads short ones to a fixed shape for identical
        # reruns, so padding is computed only at a bundle's end.
        self._batching = batch_elements_kwargs(max_batch_size, max_batch_bytes)
        self._weights_uri = weights_uri
        self._strategy = strategy
        self._device = device
        self._batch_size = max_batch_size
        self._self_ensemble = self_ensemble
        self._blend = blend

    def _load(self):
        from models.runtime import configure_tensorflow
        configure_tensorflow(self._device)
        from models.pconv import Inpainter
        return Inpainter.load(self._weights_uri or SHIPPED_INPAINT_WEIGHTS, strategy=self._strategy,
                              batch_size=self._batch_size, self_ensemble=self._self_ensemble,
                              blend=self._blend, device=self._device)

    def run_inference(self, batch: Sequence[Example], model, inference_args=None) -> Iterable[np.ndarray]:
        """The cleaned images themselves, in the batch's order: keyed, they are what the writer
        takes, `(ImageInfo, cleaned rgb)`, with no stage between."""
        return model.inpaint([image for image, _ in batch], [hole for _, hole in batch])

    def get_num_bytes(self, batch: Sequence[Example]) -> int:
        return array_bytes(list(batch))

    def get_metrics_namespace(self) -> str:
        return "bg_obj_remover.inpaint"
