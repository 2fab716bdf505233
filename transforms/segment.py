"""RunInference stage: Mask R-CNN instance masks for each image.

Used through Beam's `KeyedModelHandler`, so elements are `(image_id, RGB uint8 image)` and results
`(image_id, PredictionResult(image, Detections, model_id))`. The handler holds only plain
arguments: it is pickled to every worker, which loads the model once per process (or once per
machine with `share_model_across_processes`, so a GPU holds a single copy). `one_at_a_time()`
gives a handler for a second RunInference that uses the same model.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from apache_beam.ml.inference.base import PredictionResult

from models.segmentation import DEFAULT_CHECKPOINT_URI, DEFAULT_CONFIG, Detections
from transforms.batching import SharedModelHandler, batch_elements_kwargs

if TYPE_CHECKING:  # importing it loads torch and mmdet; workers do that in load_model
    from models.segmentation import MaskRCNNSegmenter

METRICS_NAMESPACE = 'bg_obj_remover.segmentation'


class SegmentationModelHandler(SharedModelHandler[np.ndarray, Detections, 'MaskRCNNSegmenter']):
    """Batches RGB uint8 images of any sizes into one Mask R-CNN forward pass.

    Batches hold `max_batch_size` images (a smaller `min_batch_size` lets Beam size them adaptively);
    `max_batch_bytes` caps a batch's total image bytes (large photos make small batches).
    `share_model_across_processes` or `model_copies` make Beam load the model in a per-machine
    server process (that many copies) instead of once per worker process: use it on GPU workers.
    The remaining arguments go to `MaskRCNNSegmenter`.
    """

    def __init__(self, config: str = DEFAULT_CONFIG, checkpoint: str = DEFAULT_CHECKPOINT_URI,
                 device: str = 'cpu', *, min_batch_size: int | None = None, max_batch_size: int = 4,
                 max_batch_bytes: int | None = None, share_model_across_processes: bool = False,
                 model_copies: int | None = None, allow_remote_config: bool = False,
                 cache_dir: str | None = None,
                 candidate_score_threshold: float | None = None,
                 cpu_threads: int | None = None):
        super().__init__(large_model=share_model_across_processes, model_copies=model_copies)
        self._batching = batch_elements_kwargs(max_batch_size, max_batch_bytes, min_batch_size)
        self._segmenter_kwargs = dict(
            config=config, checkpoint=checkpoint, device=device,
            allow_remote_config=allow_remote_config, cache_dir=cache_dir, cpu_threads=cpu_threads)
        if candidate_score_threshold is not None:
            self._segmenter_kwargs['candidate_score_threshold'] = candidate_score_threshold

    def _load(self) -> 'MaskRCNNSegmenter':
        from models.segmentation import MaskRCNNSegmenter

        return MaskRCNNSegmenter(**self._segmenter_kwargs)

    def run_inference(self, batch: Sequence[np.ndarray], model: 'MaskRCNNSegmenter',
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        images = list(batch)
        detections = model.segment(images)
        model_id = model.get_identity()  # `model` may be a cross-process proxy: methods only
        return [PredictionResult(image, found, model_id)
                for image, found in zip(images, detections)]

    def validate_inference_args(self, inference_args: dict[str, Any] | None):
        if inference_args:
            raise ValueError(f'SegmentationModelHandler takes no inference_args, '
                             f'got {sorted(inference_args)}')

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(image.nbytes for image in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE
