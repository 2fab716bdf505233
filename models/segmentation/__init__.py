"""Instance segmentation: which pixels belong to which object (COCO's classes or a model's own).

`MaskRCNNSegmenter` is imported on first use: the CLI reads the defaults from here without paying
for importing torch and mmdet.
"""
from models.segmentation.classes import COCO_DETECTOR_CLASSES, DetectorClasses
from models.segmentation.coco import (CATEGORY_ID_BY_NAME, COCO_CATEGORY_IDS, COCO_CLASSES,
                                      NAME_BY_CATEGORY_ID)
from models.segmentation.config import DEFAULT_CHECKPOINT_URI, DEFAULT_CONFIG
from models.segmentation.detections import Detections

__all__ = ['CATEGORY_ID_BY_NAME', 'COCO_CATEGORY_IDS', 'COCO_CLASSES', 'COCO_DETECTOR_CLASSES',
           'DEFAULT_CHECKPOINT_URI', 'DEFAULT_CONFIG', 'DetectorClasses', 'Detections',
           'MaskRCNNSegmenter', 'NAME_BY_CATEGORY_ID']


def __getattr__(name):
    if name == 'MaskRCNNSegmenter':
        from models.segmentation.maskrcnn import MaskRCNNSegmenter
        return MaskRCNNSegmenter
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
