"""COCO class names, their category ids and the `--classes` parser.

mmdet numbers the 80 classes 0..79; COCO annotation files (and our output metadata) use the
category ids 1..90, which skip ids retired before release. Keeping both in one table means the
output can be joined against any COCO tool without a second mapping.
"""
from __future__ import annotations

import difflib

import numpy as np

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

# Vectorised form of the mapping, indexed by mmdet label.
CATEGORY_ID_BY_MMDET_LABEL = np.asarray(COCO_CATEGORY_IDS, dtype=np.int32)


def normalise_class_name(name: str) -> str:
    """Lower case, single spaces; `_` counts as a space so shell users can write `traffic_light`."""
    return ' '.join(name.replace('_', ' ').lower().split())


def parse_classes(spec: str) -> frozenset[int] | None:
    """Parses `--classes`: comma-separated COCO names or category ids, or `all` (returns None).

    Fails on the first bad entry with the close matches, so a typo stops the job before any
    image is read rather than silently removing nothing.
    """
    entries = [entry.strip() for entry in spec.split(',')]
    if any(not entry for entry in entries):
        raise ValueError(f'--classes {spec!r} has an empty entry; give COCO names or ids, '
                         f'comma-separated, or "all"')
    if [entry.lower() for entry in entries] == ['all']:
        return None
    category_ids = set()
    for entry in entries:
        if entry.lower() == 'all':
            raise ValueError(f'--classes {spec!r}: "all" cannot be combined with other classes')
        category_ids.add(_category_id(entry))
    return frozenset(category_ids)


def _category_id(entry: str) -> int:
    if entry.isdigit():
        category_id = int(entry)
        if category_id not in NAME_BY_CATEGORY_ID:
            unused = sorted(set(range(1, 91)) - set(COCO_CATEGORY_IDS))
            raise ValueError(
                f'unknown COCO category id {category_id}: ids run from 1 to 90 and '
                f'{", ".join(map(str, unused))} are not used')
        return category_id
    name = normalise_class_name(entry)
    if name in CATEGORY_ID_BY_NAME:
        return CATEGORY_ID_BY_NAME[name]
    close = difflib.get_close_matches(name, COCO_CLASSES, n=3, cutoff=0.6)
    if close:
        raise ValueError(f'unknown COCO class {entry!r}; did you mean '
                         f'{" or ".join(repr(c) for c in close)}?')
    raise ValueError(f'unknown COCO class {entry!r}; the COCO classes are: '
                     f'{", ".join(COCO_CLASSES)}')
