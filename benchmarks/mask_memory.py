"""Bytes of instance masks held per image: box-sized crops (ours) vs mmdet's full-size masks, for
a 12-megapixel image with 100 instances (mmdet's default max_per_img).

    python benchmarks/mask_memory.py [--size 3000 4000] [--instances 100]

Segments one image with the tiny random-initialised Mask R-CNN and counts what its `Detections`
hold from the mask head until the image is written: the crops, against the (N, H, W) bool array
mmdet pastes into (and the pipeline held, copied off the GPU and pickled between stages before).
Random boxes cover more of the image than a real photo's instances usually do, so the ratio
here is a lower bound. Not timed. Last line: `mask bytes held full/crops: R`.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from common import machine

from models.segmentation import MaskRCNNSegmenter
from tests.segmentation_fixtures import random_images, write_tiny_maskrcnn

MANY_INSTANCES_CONFIG = "_base_ = {base!r}\nmodel = dict(test_cfg=dict(rcnn=dict(max_per_img={count})))\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    parser.add_argument("--instances", type=int, default=100, help="the config's max_per_img")
    args = parser.parse_args()
    height, width = args.size

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        base, checkpoint = write_tiny_maskrcnn(tmp_dir)
        config = os.path.join(tmp_dir, "many_instances.py")
        with open(config, "w") as f:
            f.write(MANY_INSTANCES_CONFIG.format(base=base, count=args.instances))
        segmenter = MaskRCNNSegmenter(config, checkpoint)
    [found] = segmenter.segment(random_images([(height, width)], seed=0))
    full = len(found) * height * width
    crops = sum(crop.nbytes for crop in found.masks) + found.mask_offsets.nbytes
    print(f"{len(found)} instances in {width}x{height} (image pixels {height * width * 3 / 2**20:,.1f} MiB)")
    print(f"full-size masks: {full / 2**20:,.1f} MiB; crops: {crops / 2**20:,.1f} MiB "
          f"(largest crop {max(crop.size for crop in found.masks) / (height * width):.0%} of the image)")
    print(f"mask bytes held full/crops: {full / crops:.1f}")


if __name__ == "__main__":
    main()
