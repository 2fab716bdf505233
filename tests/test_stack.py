"""The installed stack works together: both import orders, and mmcv's compiled ops on CPU."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.parametrize("first,second", [("tensorflow", "torch"), ("torch", "tensorflow")])
def test_tensorflow_and_torch_import_together_in_either_order(first, second):
    code = (f"import {first}, {second}, keras, mmcv.ops, mmdet, apache_beam\n"
            "import torch, tensorflow as tf\n"
            "assert keras.backend.backend() == 'tensorflow'\n"
            "print(float(torch.ones(2).sum()) + float(tf.reduce_sum(tf.ones(2))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "4.0"


def test_torch_is_the_pinned_cpu_build():
    import torch
    assert torch.__version__.startswith("2.13.0")
    assert not torch.version.cuda, "a CUDA torch was installed; constraints.txt pins the CPU wheel"


def test_mmcv_nms_suppresses_the_overlapping_box():
    import torch
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)  # IoU(0, 1) = 81 / 119 = 0.68
    assert keep.tolist() == [0, 2]
    np.testing.assert_allclose(dets[:, 4].numpy(), [0.9, 0.7])


def test_mmcv_roi_align_matches_hand_computed_bins():
    import torch
    from mmcv.ops import RoIAlign

    features = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)  # f[y, x] = 4y + x
    rois = torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float32)
    pooled = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=2, aligned=True)(features, rois)
    # aligned: samples at pixel centres {0,1} and {2,3} in each axis, so each bin averages 4 pixels
    np.testing.assert_allclose(pooled[0, 0].numpy(), [[2.5, 4.5], [10.5, 12.5]], atol=1e-5)
