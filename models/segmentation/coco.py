"""COCO class names and their category ids.

mmdet numbers the 80 classes 0..79; COCO annotation files (and our output metadata) use the
category ids 1..90, which skip ids retired before release. Keeping both in one table means the
output can be joined against any COCO tool without a second mapping.
"""
from __future__ import annotations

from itertools import accumulate

COCO_CLASSES: tuple[str, ...] = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')

# COCO category id of each entry of COCO_CLASSES (mmdet's contiguous index -> category id).
COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)

CATEGORY_ID_BY_NAME: dict[str, int] = dict(zip(COCO_CLASSES, COCO_CATEGORY_IDS))
NAME_BY_CATEGORY_ID: dict[int, str] = dict(zip(COCO_CATEGORY_IDS, COCO_CLASSES))

# COCO's supercategories (its annotation files' `supercategory`), each over a run of COCO_CLASSES:
# `--classes vehicle` removes the eight of them.
_SUPERCATEGORY_RUNS = (('person', 1), ('vehicle', 8), ('outdoor', 5), ('animal', 10), ('accessory', 5),
                       ('sports', 10), ('kitchen', 7), ('food', 10), ('furniture', 6), ('electronic', 6),
                       ('appliance', 5), ('indoor', 7))
COCO_SUPERCATEGORIES: dict[str, tuple[str, ...]] = {
    name: COCO_CLASSES[end - count:end]
    for (name, count), end in zip(_SUPERCATEGORY_RUNS, accumulate(count for _, count in _SUPERCATEGORY_RUNS))}
