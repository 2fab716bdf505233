"""mmcv's compiled ops (`mmcv._ext`) from torchvision's kernels, for timing our Mask R-CNN where
mmcv is installed without its ops (`MMCV_WITH_OPS=0`), as on the lent GPU machine, which cannot
build mmcv 2.1.0's CUDA ops within a session.

Mask R-CNN's inference calls two of mmcv's ops, and torchvision has the same algorithms: RoIAlign
(average pooling, `aligned` half-pixel offsets, adaptive sampling when `sampling_ratio` is 0) and
greedy NMS (offset 0; mmcv's legacy +1 box offset is not supported). Everything else in the model
is mmdet's own code. Any other op mmcv binds at import raises when called. Benchmarks only.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types

import torch
import torchvision

MODULE = "mmcv._ext"


def roi_align_forward(input: torch.Tensor, rois: torch.Tensor, output: torch.Tensor,
                      argmax_y: torch.Tensor, argmax_x: torch.Tensor, *, aligned_height: int,
                      aligned_width: int, spatial_scale: float, sampling_ratio: int, pool_mode: int,
                      aligned: bool) -> None:
    """mmcv's `roi_align_forward`: fills `output` (K, C, h, w) from `rois` (K, 5: index, x1, y1, x2, y2)."""
    if pool_mode != 1:
        raise NotImplementedError("torchvision's RoIAlign averages; mmcv's max pooling is not available")
    output.copy_(torchvision.ops.roi_align(input, rois, (aligned_height, aligned_width), spatial_scale,
                                           sampling_ratio, aligned))


def nms(boxes: torch.Tensor, scores: torch.Tensor, *, iou_threshold: float, offset: int) -> torch.Tensor:
    """mmcv's `nms`: indices of the kept boxes, highest score first."""
    if offset != 0:
        raise NotImplementedError("torchvision's NMS has no +1 box offset (mmcv's legacy `offset=1`)")
    return torchvision.ops.nms(boxes, scores, float(iou_threshold))


def _unavailable(name: str):
    if name.startswith("_"):  # module attributes (__file__, __path__ ...) are not ops
        raise AttributeError(name)

    def op(*args, **kwargs):
        raise NotImplementedError(f"mmcv op {name!r} has no torchvision stand-in (see {__name__})")
    return op


def install() -> None:
    """Puts the stand-in in place of `mmcv._ext`; must run before `mmcv.ops` is first imported."""
    if "mmcv.ops" in sys.modules and sys.modules.get(MODULE) is not _module:
        raise RuntimeError("mmcv.ops is already imported with its own ops; install() must come first")
    sys.modules[MODULE] = _module


_module = types.ModuleType(MODULE, __doc__)
_module.roi_align_forward = roi_align_forward
_module.nms = nms
# No loader: mmengine's `mmcv_full_available()` rightly reports no compiled mmcv (so it skips SyncBN).
_module.__spec__ = importlib.machinery.ModuleSpec(MODULE, None)
_module.__getattr__ = _unavailable  # module-level __getattr__ (PEP 562): mmcv checks each op exists
