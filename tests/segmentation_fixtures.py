"""Random-initialised Mask R-CNN checkpoints, written the way mmengine writes them.

No trained weights can be downloaded here, so tests and benchmarks build the real mmdet
architecture with random weights. A purely random classifier spreads its probability over 81
classes (about 0.012 each) and nothing would pass mmdet's 0.05 score threshold, leaving every
comparison empty; the classifier weights are therefore drawn with a larger scale so that random
boxes get distinct, confident scores.
"""
from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np
import torch

from models.segmentation import COCO_CLASSES, DEFAULT_CONFIG
from models.segmentation.config import packaged_configs, resolve_config

# Scale of the random classifier weights; large enough that many random boxes score above 0.05.
CLASSIFIER_WEIGHT_SCALE = 8.0

TINY_CONFIG_NAME = 'tiny_maskrcnn'
TINY_TEST_SCALE = (320, 320)
TINY_CONFIG_TEMPLATE = '''\
# Mask R-CNN as in mask-rcnn_r50_fpn_1x_coco, shrunk for tests: ResNet-18, 64-channel FPN and
# heads, small test resize and fewer proposals, so one small image takes a fraction of a second.
_base_ = {base!r}
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128, num_classes={num_classes}),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64,
                       num_classes={num_classes})),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=30)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={scale!r}, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''


def build_random_maskrcnn(config: str = DEFAULT_CONFIG, seed: int = 0) -> torch.nn.Module:
    """The detector of `config` with seeded random weights and a confident classifier."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    model_cfg = copy.deepcopy(Config.fromfile(resolve_config(config).path).model)
    model_cfg.backbone.init_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs one INFO record per parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    bbox_heads = model.roi_head.bbox_head
    with torch.no_grad():  # every stage of a cascade
        for bbox_head in (bbox_heads if isinstance(bbox_heads, torch.nn.ModuleList)
                          else [bbox_heads]):
            classifier = bbox_head.fc_cls
            classifier.weight.normal_(0.0, CLASSIFIER_WEIGHT_SCALE / classifier.in_features ** 0.5)
    return model.eval()


def write_random_maskrcnn_checkpoint(path: str, config: str = DEFAULT_CONFIG, seed: int = 0,
                                     classes: tuple[str, ...] | None = COCO_CLASSES) -> str:
    """Saves a random-initialised `config` detector as an mmengine runner checkpoint.

    Like `Runner.save_checkpoint`: `meta` (with `dataset_meta` naming `classes`, none if None),
    `state_dict` and the message hub, whose `HistoryBuffer`s of numpy values are what
    weights-only loading must allow.
    """
    import mmengine
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    model = build_random_maskrcnn(config, seed)
    message_hub = MessageHub.get_instance(f'random-checkpoint-{seed}-{time.time_ns()}')
    message_hub.update_scalar('train/loss', np.float64(1.25))
    message_hub.update_scalar('train/lr', 0.02)
    message_hub.update_info('iter', 0)
    checkpoint = {
        'meta': {
            'epoch': 0, 'iter': 0, 'seed': seed, 'experiment_name': 'random-init',
            'time': time.strftime('%Y%m%d_%H%M%S'), 'mmengine_version': mmengine.__version__,
            **({'dataset_meta': {'classes': classes}} if classes is not None else {}),
        },
        'state_dict': weights_to_cpu(get_state_dict(model)),
        'message_hub': message_hub.state_dict(),
    }
    save_checkpoint(checkpoint, path)
    return path


def write_tiny_maskrcnn(tmp_dir: str, seed: int = 0,
                        classes: tuple[str, ...] = COCO_CLASSES) -> tuple[str, str]:
    """Writes the tiny test config predicting `classes` and a random checkpoint for it, trained
    on `classes` as its meta says; returns their paths."""
    config_path = os.path.join(tmp_dir, f'{TINY_CONFIG_NAME}.py')
    with open(config_path, 'w') as f:
        f.write(TINY_CONFIG_TEMPLATE.format(base=packaged_configs()[DEFAULT_CONFIG],
                                            scale=TINY_TEST_SCALE, num_classes=len(classes)))
    checkpoint_path = write_random_maskrcnn_checkpoint(
        os.path.join(tmp_dir, f'{TINY_CONFIG_NAME}.pth'), config_path, seed, classes)
    return config_path, checkpoint_path


def random_images(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    """RGB uint8 images with smooth blobs, so features differ across the image and channels."""
    rng = np.random.default_rng(seed)
    images = []
    for height, width in sizes:
        coarse = rng.integers(0, 256, size=(height // 16 + 2, width // 16 + 2, 3))
        rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
        cols = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
        blocks = coarse[rows][:, cols]
        noise = rng.integers(-20, 21, size=(height, width, 3))
        images.append(np.clip(blocks + noise, 0, 255).astype(np.uint8))
    return images
