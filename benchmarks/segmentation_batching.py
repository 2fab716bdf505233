"""Images/s of MaskRCNNSegmenter on CPU: one batched `segment` call vs one call per image.

Runs the real mmdet architecture with random weights (no trained weights are needed to time
it). Usage:
    python benchmarks/segmentation_batching.py                # default R50 config, 640x480
    python benchmarks/segmentation_batching.py --tiny         # the tiny test config
    python benchmarks/segmentation_batching.py --mixed-sizes  # one group per padded shape
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.segmentation import DEFAULT_CONFIG, MaskRCNNSegmenter  # noqa: E402
from tests.segmentation_fixtures import (  # noqa: E402
    random_images, write_random_maskrcnn_checkpoint, write_tiny_maskrcnn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='mmdet config name or path (ignored with --tiny)')
    parser.add_argument('--tiny', action='store_true', help='use the tiny test config')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--mixed-sizes', action='store_true',
                        help='vary image sizes within the batch (up to -25%% per side)')
    parser.add_argument('--repeats', type=int, default=2, help='timed rounds; the best is kept')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        if args.tiny:
            config, checkpoint = write_tiny_maskrcnn(tmp_dir)
        else:
            config = args.config
            checkpoint = write_random_maskrcnn_checkpoint(
                os.path.join(tmp_dir, 'random.pth'), config)
        segmenter = MaskRCNNSegmenter(config, checkpoint, device='cpu', cache_dir=tmp_dir,
                                      cpu_threads=args.threads)

    sizes = [(args.height - (i * args.height // 12 if args.mixed_sizes else 0),
              args.width - (i * args.width // 12 if args.mixed_sizes else 0))
             for i in range(args.batch_size)]
    images = random_images(sizes)
    segmenter.segment(images[:1])  # warm-up: lazy allocations, first-call overheads

    per_image_s = batched_s = float('inf')
    for _ in range(args.repeats):
        start = time.perf_counter()
        for image in images:
            segmenter.segment([image])
        per_image_s = min(per_image_s, time.perf_counter() - start)
        start = time.perf_counter()
        segmenter.segment(images)
        batched_s = min(batched_s, time.perf_counter() - start)

    import torch
    print(f'model {segmenter.identity}, {len(images)} images {sizes}, '
          f'torch threads {torch.get_num_threads()}, best of {args.repeats}')
    print(f'per-image: {len(images) / per_image_s:.3f} images/s')
    print(f'batched:   {len(images) / batched_s:.3f} images/s')
    print(f'batched / per-image throughput: {per_image_s / batched_s:.2f}x')


if __name__ == '__main__':
    main()
