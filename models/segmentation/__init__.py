"""Instance segmentation: which pixels belong to which COCO object.

`MaskRCNNSegmenter` is imported on first use: the CLI parses `--classes` and reads the defaults
from here without paying for importing torch and mmdet.
"""
from models.segmentation.coco import (CATEGORY_ID_BY_NAME, COCO_CATEGORY_IDS, COCO_CLASSES,
                                      NAME_BY_CATEGORY_ID, parse_classes)
from models.segmentation.config import DEFAULT_CHECKPOINT_URI, DEFAULT_CONFIG
from models.segmentation.detections import Detections

__all__ = ['CATEGORY_ID_BY_NAME', 'COCO_CATEGORY_IDS', 'COCO_CLASSES', 'DEFAULT_CHECKPOINT_URI',
           'DEFAULT_CONFIG', 'Detections', 'MaskRCNNSegmenter', 'NAME_BY_CATEGORY_ID',
           'parse_classes']


def __getattr__(name):
    if name == 'MaskRCNNSegmenter':
        from models.segmentation.maskrcnn import MaskRCNNSegmenter
        return MaskRCNNSegmenter
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
