"""What the segmenter returns for one image, in plain numpy so it pickles cheaply between stages."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Instances found in one image, in the image's original pixel grid.

    Each mask is held as a crop: `masks[i]` is a bool array whose top-left pixel is
    `mask_offsets[i]` (row, column) in the `image_shape` image, and every pixel outside it is
    False. A 12-megapixel photo with 100 instances then holds about the area of their boxes,
    not 100 full-size masks (1.2 GB). `full_mask` and `union` give image-sized arrays.

    `label_ids` are the ids `DetectorClasses` reports (COCO category ids 1..90 for a COCO model),
    not mmdet's contiguous indices, so the output metadata matches COCO annotation files.
    """
    image_shape: tuple[int, int]  # (height, width)
    masks: list[np.ndarray]       # N (h, w) bool crops
    mask_offsets: np.ndarray      # (N, 2) int64 row, column of each crop's top-left pixel
    boxes: np.ndarray             # (N, 4) float32, x1 y1 x2 y2 in pixels
    scores: np.ndarray            # (N,) float32
    label_ids: np.ndarray         # (N,) int32 class ids (COCO category ids for COCO)
    labels: list[str]

    def __post_init__(self):
        count = len(self.scores)
        if not (len(self.masks) == len(self.mask_offsets) == self.boxes.shape[0]
                == len(self.label_ids) == len(self.labels) == count):
            raise ValueError(
                f'Detections fields disagree on the instance count: masks {len(self.masks)}, '
                f'mask_offsets {len(self.mask_offsets)}, boxes {self.boxes.shape}, '
                f'scores {self.scores.shape}, label_ids {self.label_ids.shape}, '
                f'labels {len(self.labels)}')
        for index, (crop, offset) in enumerate(zip(self.masks, self.mask_offsets)):
            if (crop.dtype != bool or crop.ndim != 2 or min(offset) < 0
                    or offset[0] + crop.shape[0] > self.image_shape[0]
                    or offset[1] + crop.shape[1] > self.image_shape[1]):
                raise ValueError(
                    f'mask {index} ({crop.dtype} {crop.shape} at {tuple(offset)}) is not a bool '
                    f'crop inside the {self.image_shape} image')

    @classmethod
    def from_crops(cls, crops: list[tuple[tuple[int, int], np.ndarray]], **fields) -> Detections:
        """Detections from ((row, column offset), bool crop) pairs, one per instance."""
        return cls(masks=[crop for _, crop in crops],
                   mask_offsets=np.array([offset for offset, _ in crops], np.int64).reshape(-1, 2),
                   **fields)

    @classmethod
    def from_full_masks(cls, masks: np.ndarray, **fields) -> Detections:
        """Detections from an (N, H, W) bool array of image-sized masks, each cropped to the
        pixels it sets."""
        return cls.from_crops([crop_to_content(mask) for mask in masks],
                              image_shape=masks.shape[1:], **fields)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, class_ids: frozenset[int] | None, min_score: float,
               class_min_scores: Mapping[int, float] | None = None) -> np.ndarray:
        """Which instances to keep: class in `class_ids` (None = any) and score >= `min_score`, or
        >= the class's own in `class_min_scores`."""
        needed = np.full(len(self), min_score, np.float32)
        for class_id, score in (class_min_scores or {}).items():
            needed[self.label_ids == class_id] = score
        keep = self.scores >= needed
        if class_ids is not None:
            keep &= np.isin(self.label_ids, np.fromiter(class_ids, dtype=np.int32))
        return keep

    def subjects(self, chosen: np.ndarray, largest: int = 0, larger_than: float | None = None) -> np.ndarray:
        """Which of the `chosen` instances are the photo's subjects, to keep: the `largest` ones by
        mask area, and any whose mask covers more than the share `larger_than` of the image."""
        keep = np.zeros(len(self), bool)
        if not largest and larger_than is None:
            return keep  # the default: no image pays for its masks' areas here
        areas = self.areas()
        if larger_than is not None:
            keep |= chosen & (areas > larger_than * self.image_shape[0] * self.image_shape[1])
        if largest:
            candidates = np.flatnonzero(chosen)
            keep[candidates[np.argsort(-areas[candidates], kind="stable")[:largest]]] = True
        return keep

    def nonempty(self) -> np.ndarray:
        """Which instances set at least one pixel."""
        return np.fromiter((crop.any() for crop in self.masks), bool, len(self))

    def reaching_outside(self, region: np.ndarray) -> np.ndarray:
        """Which instances set a pixel outside the image-sized bool `region`."""
        return np.fromiter(
            ((crop & ~region[top:top + crop.shape[0], left:left + crop.shape[1]]).any()
             for crop, (top, left) in zip(self.masks, self.mask_offsets)), bool, len(self))

    def areas(self) -> np.ndarray:
        """Pixels each instance sets."""
        return np.fromiter((crop.sum() for crop in self.masks), np.int64, len(self))

    def full_mask(self, index: int) -> np.ndarray:
        """Instance `index`'s mask as an image-sized bool array."""
        full = np.zeros(self.image_shape, bool)
        self._paste(full, index)
        return full

    def union(self, which: np.ndarray) -> np.ndarray:
        """Image-sized bool array of the pixels any instance chosen by bool `which` sets."""
        full = np.zeros(self.image_shape, bool)
        for index in np.flatnonzero(which):
            self._paste(full, index)
        return full

    def _paste(self, full: np.ndarray, index: int) -> None:
        crop = self.masks[index]
        top, left = self.mask_offsets[index]
        full[top:top + crop.shape[0], left:left + crop.shape[1]] |= crop


def crop_to_content(mask: np.ndarray) -> tuple[tuple[int, int], np.ndarray]:
    """((row, column) offset, crop) of bool `mask` cut to the bounding box of its True pixels;
    an empty mask gives a 0x0 crop at (0, 0)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0, 0), np.zeros((0, 0), bool)
    return ((int(rows[0]), int(cols[0])),
            np.ascontiguousarray(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]))
