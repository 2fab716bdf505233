"""Mask R-CNN instance segmentation on mmdetection 3.x, in true batches.

`mmdet.apis.inference_detector` runs images one at a time; here every image goes through the test
pipeline, then the images that pad to the same shape go through the data preprocessor and one
`test_step` together. Padding a smaller image up to a larger neighbour's shape would change the
features near its bottom and right edges, and so its detections, depending on which images Beam
happened to batch with it: grouped by padded shape, each image gets what it gets alone.

Instance masks come back cropped to their boxes (see `_paste_into_box_crops`): mmdet's own mask
head output is an (N, H, W) tensor, 1.2 GB for 100 instances in a 12-megapixel photo.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
from collections import defaultdict

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.model.utils import revert_sync_batchnorm

from models.runtime import usable_cpu_count
from models.segmentation.checkpoint import load_checkpoint_weights
from models.segmentation.classes import COCO_DETECTOR_CLASSES, DetectorClasses
from models.segmentation.config import (DEFAULT_CHECKPOINT_URI, DEFAULT_CONFIG, load_config,
                                         resolve_config)
from models.segmentation.detections import Detections, crop_to_content
from models.uri import ModelFileError, fetch

logger = logging.getLogger(__name__)

# Images more elongated than the test Resize can keep are padded first (see `_pad_to_aspect`):
# the finest FPN level has stride 4, so 8 resized pixels give it two rows across the short side,
# while a side that scales below half a pixel rounds to 0 and cv2's resize refuses the image.
MIN_RESIZED_SIDE = 8

# mmdet's own default: candidates below it never reach `Detections.select`, so a `min_score`
# under it needs a lower value here.
DEFAULT_CANDIDATE_SCORE_THRESHOLD = 0.05

_CHECKPOINT_HINT = (
    'The default weights come from the mmdetection model zoo (download.openmmlab.com); on machines '
    'that cannot reach it, copy the .pth file to local disk or gs:// and pass that path or URI as '
    'the checkpoint.')


class MaskRCNNSegmenter:
    """An mmdet Mask R-CNN with its weights loaded, ready to segment RGB uint8 images.

    Construction resolves the config, fetches and safely unpickles the checkpoint and builds the
    model, so a wrong path, a corrupt file or a pickle with code fails before any image is read.
    """

    def __init__(self, config: str = DEFAULT_CONFIG, checkpoint: str = DEFAULT_CHECKPOINT_URI,
                 device: str = 'cpu', allow_remote_config: bool = False,
                 cache_dir: str | None = None, *,
                 candidate_score_threshold: float = DEFAULT_CANDIDATE_SCORE_THRESHOLD,
                 cpu_threads: int | None = None):
        self.device = _torch_device(device)
        if self.device.type == 'cpu':
            # torch defaults to the host's physical cores; inside a container or a Beam worker
            # pinned to fewer CPUs that oversubscribes them, so follow the CPUs we may run on.
            torch.set_num_threads(cpu_threads or usable_cpu_count())
        source = resolve_config(config, allow_remote_config, cache_dir)
        cfg = load_config(source)
        weights = fetch(checkpoint, cache_dir, hint=_CHECKPOINT_HINT)
        state_dict, meta = load_checkpoint_weights(weights.path)

        self._model = _build_detector(cfg, candidate_score_threshold)
        _paste_masks_into_box_crops(self._model)
        self.classes = _detector_classes(meta, cfg, _num_classes(self._model), weights.uri,
                                         source.name)
        _load_weights(self._model, state_dict, weights.uri, source.name)
        self._model.to(self.device).eval()
        self._pipeline = _inference_pipeline(cfg)
        self._max_aspect = _max_aspect_ratio(cfg)
        self.candidate_score_threshold = candidate_score_threshold
        self.identity = f'{source.name}@{weights.short_id}'
        logger.info('Mask R-CNN %s on %s (config %s, checkpoint %s sha256=%s)', self.identity,
                    self.device, source.path, weights.uri, weights.sha256)

    def get_identity(self) -> str:
        """`identity` as a method: Beam's cross-process model proxy forwards only method calls."""
        return self.identity

    def segment(self, images: list[np.ndarray]) -> list[Detections]:
        """Segments RGB uint8 (H, W, 3) images of any sizes, one result per image; images that
        pad to the same shape run as one batch."""
        for index, image in enumerate(images):
            _check_image(index, image)
        groups = defaultdict(lambda: {'inputs': [], 'data_samples': [], 'indices': []})
        for index, image in enumerate(images):
            padded = _pad_to_aspect(image, self._max_aspect)
            # mmdet's ndarray path expects BGR, as cv2.imread returns.
            packed = self._pipeline({'img': np.ascontiguousarray(padded[..., ::-1])})
            group = groups[self._padded_shape(packed['inputs'])]
            group['inputs'].append(packed['inputs'])
            group['data_samples'].append(packed['data_samples'])
            group['indices'].append(index)
        results: list[Detections | None] = [None] * len(images)
        for group in groups.values():
            indices = group.pop('indices')
            with torch.inference_mode():
                samples = self._model.test_step(group)
            for index, sample in zip(indices, samples):
                results[index] = _crop_to_image(_to_detections(sample, self.classes),
                                                *images[index].shape[:2])
        return results

    def _padded_shape(self, inputs: torch.Tensor) -> tuple[int, int]:
        """The (height, width) the data preprocessor pads this resized image to when alone."""
        divisor = getattr(self._model.data_preprocessor, 'pad_size_divisor', 1) or 1
        return tuple(math.ceil(side / divisor) * divisor for side in inputs.shape[-2:])


def _torch_device(device: str) -> torch.device:
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f'invalid device {device!r}: use "cpu", "cuda" or "cuda:N"') from error
    if parsed.type not in ('cpu', 'cuda'):
        raise ValueError(f'unsupported device {device!r}: use "cpu", "cuda" or "cuda:N"')
    if parsed.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but torch sees no CUDA GPU')
    return parsed


def _detector_classes(meta: dict, cfg: Config, num_classes: int, uri: str,
                      config_name: str) -> DetectorClasses:
    """The classes the checkpoint was trained on: named in its meta (mmengine's `dataset_meta`,
    mmdet 2's `CLASSES`), else in the config's dataset `metainfo`, else COCO's when it predicts
    80. Raises ModelFileError when they cannot be known or their count is not the model's."""
    names = (meta.get('dataset_meta') or {}).get('classes') or meta.get('CLASSES')
    named_by = f'checkpoint {uri!r}'
    if names is None:
        names = _config_class_names(cfg)
        named_by = f'config {config_name!r} (its dataset metainfo)'
    if names is None:
        if num_classes == len(COCO_DETECTOR_CLASSES.names):
            return COCO_DETECTOR_CLASSES
        raise ModelFileError(
            f'config {config_name!r} predicts {num_classes} classes, but neither checkpoint '
            f'{uri!r} nor the config names them: add metainfo=dict(classes=(...)) to the '
            f'config\'s test_dataloader.dataset, in the order the model was trained on')
    if len(names) != num_classes:
        preview = ', '.join(map(repr, list(names)[:5])) + (', ...' if len(names) > 5 else '')
        raise ModelFileError(
            f'{named_by} names {len(names)} classes ({preview}) but config {config_name!r} '
            f'predicts {num_classes}: use the config the checkpoint was trained with, or set '
            f'num_classes={len(names)} in its roi_head.bbox_head and roi_head.mask_head')
    try:
        return DetectorClasses.from_names(names)
    except ValueError as error:
        raise ModelFileError(f'{named_by}: {error}') from None


def _config_class_names(cfg: Config):
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        metainfo = ((cfg.get(loader) or {}).get('dataset') or {}).get('metainfo') or {}
        if metainfo.get('classes'):
            return metainfo['classes']
    return None


def _num_classes(model: torch.nn.Module) -> int:
    bbox_head = model.roi_head.bbox_head
    return (bbox_head[-1] if isinstance(bbox_head, torch.nn.ModuleList) else bbox_head).num_classes


def _build_detector(cfg: Config, candidate_score_threshold: float) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    rcnn_test_cfg = cfg.model.get('test_cfg', {}).get('rcnn')
    if rcnn_test_cfg is None or 'mask_head' not in cfg.model.get('roi_head', {}):
        raise ModelFileError(
            f'config builds a {cfg.model.type} without a Mask R-CNN style mask head '
            f'(model.roi_head.mask_head and model.test_cfg.rcnn)')
    if not isinstance(rcnn_test_cfg.get('mask_thr_binary'), (int, float)):
        raise ModelFileError(
            'config sets no test_cfg.rcnn.mask_thr_binary, the mask probability a pixel needs to '
            'be in its mask: add mask_thr_binary=0.5')
    if rcnn_test_cfg.mask_thr_binary < 0:
        raise ModelFileError(
            f'config sets test_cfg.rcnn.mask_thr_binary={rcnn_test_cfg.mask_thr_binary}: a '
            f'negative threshold gives mask probabilities for display, not masks; use 0.5')
    # mmdet keeps candidates scoring above score_thr (its float32 scores against it), `select`
    # those at min_score too: the float32 just below keeps a candidate at the threshold.
    rcnn_test_cfg.score_thr = float(np.nextafter(np.float32(candidate_score_threshold),
                                                 np.float32(-1)))
    model_cfg = copy.deepcopy(cfg.model)
    # Pretrained-backbone init would download ImageNet weights the checkpoint replaces anyway.
    model_cfg.backbone.init_cfg = None
    try:
        model = MODELS.build(model_cfg)
    except Exception as error:  # noqa: BLE001 - an unknown type, a wrong argument, ...
        raise ModelFileError(f'cannot build the config\'s model {cfg.model.type!r}: '
                             f'{type(error).__name__}: {error}') from None
    return revert_sync_batchnorm(model)


def _load_weights(model: torch.nn.Module, state_dict, uri: str, config_name: str) -> None:
    """Loads `state_dict` only if it fits the model exactly: a weight left out keeps its random
    init, and one with no place (say a ResNet-101 checkpoint under a ResNet-50 config) means the
    weights loaded belong to another network; either way the detections would be garbage."""
    expected = model.state_dict()
    # BatchNorm's step counter plays no part in inference and older checkpoints lack it.
    counts = lambda name: not name.endswith('num_batches_tracked')  # noqa: E731
    missing = [name for name in expected if name not in state_dict and counts(name)]
    unexpected = [name for name in state_dict if name not in expected and counts(name)]
    reshaped = [f'{name} is {tuple(tensor.shape)}, not {tuple(expected[name].shape)}'
                for name, tensor in state_dict.items()
                if name in expected and tensor.shape != expected[name].shape]
    problems = [f'{len(names)} {what}, e.g. {", ".join(names[:3])}' for what, names in (
        ('weights missing', missing), ('weights the config has no place for', unexpected),
        ('weights of another shape', reshaped)) if names]
    if problems:
        raise ModelFileError(f'checkpoint {uri!r} does not fit config {config_name!r}: '
                             f'{"; ".join(problems)}. Pass the config it was trained with.')
    model.load_state_dict(state_dict, strict=False)


def _inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline reading an in-memory image, without ground-truth loading."""
    from mmdet.utils import get_test_pipeline_cfg

    try:
        test_pipeline = copy.deepcopy(get_test_pipeline_cfg(cfg))
    except Exception as error:  # noqa: BLE001 - mmdet fails in its own way on each missing part
        raise ModelFileError(
            f'config {cfg.filename!r} gives no test pipeline (its test_dataloader.dataset.pipeline, '
            f'which says how images are resized before the model sees them): '
            f'{type(error).__name__}: {error}') from None
    steps = []
    for step in test_pipeline:
        kind = step['type'].split('.')[-1]
        if kind == 'LoadAnnotations':
            continue
        if kind == 'LoadImageFromFile':
            step = {'type': 'mmdet.LoadImageFromNDArray'}
        steps.append(step)
    return Compose(steps)


def _max_aspect_ratio(cfg: Config) -> float | None:
    """Longest over shortest side for which the test pipeline's keep-ratio Resize leaves at least
    `MIN_RESIZED_SIDE` pixels on the short side; None when it resizes to a fixed shape.

    mmcv's keep-ratio scale factor is min(max(scale) / long side, min(scale) / short side), so the
    short side becomes at most short * max(scale) / long.
    """
    from mmdet.utils import get_test_pipeline_cfg

    for step in get_test_pipeline_cfg(cfg):
        if step['type'].split('.')[-1] == 'Resize' and step.get('keep_ratio') and step.get('scale'):
            scale = step['scale']
            return (max(scale) if isinstance(scale, (tuple, list)) else scale) / MIN_RESIZED_SIDE
    return None


def _pad_to_aspect(image: np.ndarray, max_aspect: float | None) -> np.ndarray:
    """`image` with zero rows or columns appended to its short side when it is more elongated
    than `max_aspect` (a 2x10000 strip would shrink to 0 pixels), else `image` itself."""
    height, width = image.shape[:2]
    if max_aspect is None or max(height, width) <= max_aspect * min(height, width):
        return image
    short_side = math.ceil(max(height, width) / max_aspect)
    shape = (short_side, width) if height < width else (height, short_side)
    padded = np.zeros(shape + (3,), np.uint8)
    padded[:height, :width] = image
    return padded


def _crop_to_image(detections: Detections, height: int, width: int) -> Detections:
    """Detections of a padded image back on the original `height` x `width` grid: masks cropped,
    boxes clipped, and instances lying wholly in the padding dropped."""
    if detections.image_shape == (height, width):
        return detections
    boxes = detections.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    # Padding is added below and to the right only, so offsets stay; a crop with nothing left
    # in the image is moved to its edge.
    offsets = np.minimum(detections.mask_offsets[inside], (height, width))
    crops = [crop for crop, keep in zip(detections.masks, inside) if keep]
    return Detections(
        image_shape=(height, width),
        masks=[crop[:height - top, :width - left] for crop, (top, left) in zip(crops, offsets)],
        mask_offsets=offsets, boxes=boxes[inside], scores=detections.scores[inside],
        label_ids=detections.label_ids[inside],
        labels=[label for label, keep in zip(detections.labels, inside) if keep])


def _check_image(index: int, image) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        description = (f'{image.dtype} array of shape {image.shape}'
                       if isinstance(image, np.ndarray) else type(image).__name__)
        raise ValueError(f'image {index} must be an RGB uint8 array of shape (H, W, 3), '
                         f'got {description}')


def _paste_masks_into_box_crops(model: torch.nn.Module) -> None:
    """Makes each mask head of `model` that pastes masks with mmdet's `FCNMaskHead` code (every
    mask head mmdet 3.3 ships, cascades and PointRend included) paste them into box-sized crops.
    A head with its own pasting keeps it: `_to_detections` crops its full-size masks."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import FCNMaskHead

    heads = model.roi_head.mask_head
    for head in (heads if isinstance(heads, torch.nn.ModuleList) else [heads]):
        if type(head)._predict_by_feat_single is FCNMaskHead._predict_by_feat_single:
            head._predict_by_feat_single = functools.partial(_paste_into_box_crops, head)


def _paste_into_box_crops(mask_head, mask_preds: torch.Tensor, bboxes: torch.Tensor,
                          labels: torch.Tensor, img_meta: dict, rcnn_test_cfg,
                          rescale: bool = False, activate_map: bool = False
                          ) -> list[tuple[tuple[int, int], np.ndarray]]:
    """`FCNMaskHead._predict_by_feat_single` without its (N, H, W) tensor: the same arithmetic,
    as mmdet runs it on CPU (one instance at a time, each pasted by mmdet's `_do_paste_mask`
    into its box plus a pixel each side, clipped to the image: no other pixel can be set), but
    each instance comes back alone as ((row, column offset), bool crop) on the CPU."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    if not rescale:  # `test_step` always rescales to the original image
        raise NotImplementedError('masks are pasted only at the original image size')
    img_h, img_w = img_meta['ori_shape'][:2]
    bboxes /= bboxes.new_tensor(img_meta['scale_factor']).repeat((1, 2))  # in place, as mmdet's
    probabilities = bboxes.new_tensor(mask_preds) if activate_map else mask_preds.sigmoid()
    if not mask_head.class_agnostic:
        probabilities = probabilities[range(len(probabilities)), labels][:, None]
    crops = []
    for probability, box in zip(probabilities, bboxes):
        pasted, (rows, cols) = _do_paste_mask(probability[None], box[None], img_h, img_w,
                                              skip_empty=True)
        crops.append(((int(rows.start), int(cols.start)),
                      (pasted[0] >= rcnn_test_cfg.mask_thr_binary).cpu().numpy()))
    return crops


def _to_detections(sample, classes: DetectorClasses) -> Detections:
    """`sample`'s instances with masks cropped by `_paste_into_box_crops`, or, from mmdet's
    full-size masks (no instances, or a head with its own pasting), each cropped to what it sets
    as it comes to the CPU."""
    instances = sample.pred_instances
    labels = instances.labels.cpu().numpy()
    crops = instances.masks
    if isinstance(crops, torch.Tensor):
        crops = [crop_to_content(mask.cpu().numpy()) for mask in crops]
    return Detections.from_crops(
        crops, image_shape=tuple(sample.ori_shape[:2]),
        boxes=instances.bboxes.cpu().numpy().astype(np.float32, copy=False),
        scores=instances.scores.cpu().numpy().astype(np.float32, copy=False),
        label_ids=classes.ids_of_labels(labels),
        labels=[classes.names[label] for label in labels])
