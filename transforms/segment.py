"""RunInference stage: Mask R-CNN instance masks for each image.

Used through Beam's `KeyedModelHandler`, so elements are `(image_id, RGB uint8 image)` and results
`(image_id, PredictionResult(image, Detections, model_id))`. The handler holds only plain
arguments: it is pickled to every worker, which loads the model once per process (or once per
machine with `share_model_across_processes`, so a GPU holds a single copy).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from models.segmentation import DEFAULT_CHECKPOINT_URI, DEFAULT_CONFIG, Detections

METRICS_NAMESPACE = 'bg_obj_remover.segmentation'


def image_nbytes(image: np.ndarray) -> int:
    """Batch weight of one image, so `max_batch_bytes` bounds a batch's pixel memory."""
    return image.nbytes


class SegmentationModelHandler(ModelHandler[np.ndarray, Detections, Any]):
    """Batches RGB uint8 images of any sizes into one Mask R-CNN forward pass."""

    def __init__(self, config: str = DEFAULT_CONFIG, checkpoint: str = DEFAULT_CHECKPOINT_URI,
                 device: str = 'cpu', *, min_batch_size: int = 1, max_batch_size: int = 4,
                 max_batch_bytes: int | None = None, share_model_across_processes: bool = False,
                 model_copies: int | None = None, allow_remote_config: bool = False,
                 cache_dir: str | None = None,
                 candidate_score_threshold: float | None = None,
                 cpu_threads: int | None = None):
        super().__init__(
            min_batch_size=min_batch_size, max_batch_size=max_batch_size,
            max_batch_weight=max_batch_bytes,
            element_size_fn=image_nbytes if max_batch_bytes is not None else None,
            large_model=share_model_across_processes, model_copies=model_copies)
        self._segmenter_kwargs = dict(
            config=config, checkpoint=checkpoint, device=device,
            allow_remote_config=allow_remote_config, cache_dir=cache_dir, cpu_threads=cpu_threads)
        if candidate_score_threshold is not None:
            self._segmenter_kwargs['candidate_score_threshold'] = candidate_score_threshold

    def load_model(self):
        from models.segmentation import MaskRCNNSegmenter

        return MaskRCNNSegmenter(**self._segmenter_kwargs)

    def run_inference(self, batch: Sequence[np.ndarray], model,
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
