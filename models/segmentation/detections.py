"""What the segmenter returns for one image, in plain numpy so it pickles cheaply between stages."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Instances found in one image, in the image's original pixel grid.

    `label_ids` are the ids `DetectorClasses` reports (COCO category ids 1..90 for a COCO model),
    not mmdet's contiguous indices, so the output metadata matches COCO annotation files.
    """
    masks: np.ndarray      # (N, H, W) bool
    boxes: np.ndarray      # (N, 4) float32, x1 y1 x2 y2 in pixels
    scores: np.ndarray     # (N,) float32
    label_ids: np.ndarray  # (N,) int32 class ids (COCO category ids for COCO)
    labels: list[str]

    def __post_init__(self):
        count = len(self.scores)
        if not (self.masks.shape[0] == self.boxes.shape[0] == len(self.label_ids)
                == len(self.labels) == count):
            raise ValueError(
                f'Detections fields disagree on the instance count: masks {self.masks.shape}, '
                f'boxes {self.boxes.shape}, scores {self.scores.shape}, '
                f'label_ids {self.label_ids.shape}, labels {len(self.labels)}')

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, class_ids: frozenset[int] | None, min_score: float) -> np.ndarray:
        """Which instances to keep: score >= `min_score` and class in `class_ids` (None = any)."""
        keep = self.scores >= min_score
        if class_ids is not None:
            keep &= np.isin(self.label_ids, np.fromiter(class_ids, dtype=np.int32))
        return keep
