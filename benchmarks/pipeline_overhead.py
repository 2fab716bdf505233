"""What Beam costs: the whole pipeline on DirectRunner versus a bare Python loop that calls the
same two models on the same images with the same batch sizes, measured in one run.

Prints `pipeline/bare throughput ratio: R` as its last line (target: at least 0.9).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import inpainter_weights, segmenter_files, write_images


def bare_loop(paths, output, config, checkpoint, weights, seg_batch, inpaint_batch, dilate, min_score):
    """The same work as the pipeline, as a plain loop: decode, segment, select, inpaint, write."""
    from models.pconv import Inpainter
    from models.segmentation import MaskRCNNSegmenter
    from transforms.decode import decode_image
    from transforms.select import dilate as grow
    from transforms.write import encode_image, write_atomically

    segmenter = MaskRCNNSegmenter(config, checkpoint)
    inpainter = Inpainter.load(weights, batch_size=inpaint_batch)
    for start in range(0, len(paths), seg_batch):
        chunk = paths[start:start + seg_batch]
        decoded = []
        for path in chunk:
            with open(path, "rb") as f:
                decoded.append(decode_image(f.read()))
        detections = segmenter.segment([d[0] for d in decoded])
        images, holes, names = [], [], []
        for path, (rgb, alpha, fmt, _), found in zip(chunk, decoded, detections):
            keep = found.select(None, min_score)
            hole = grow(found.masks[keep].any(axis=0), dilate) if keep.any() else None
            if hole is None or not hole.any():
                write_atomically(os.path.join(output, os.path.basename(path)), encode_image(rgb, fmt, alpha))
                continue
            images.append(rgb)
            holes.append(hole)
            names.append((path, fmt, alpha))
        for i in range(0, len(images), inpaint_batch):
            cleaned = inpainter.inpaint(images[i:i + inpaint_batch], holes[i:i + inpaint_batch])
            for (path, fmt, alpha), rgb in zip(names[i:i + inpaint_batch], cleaned):
                write_atomically(os.path.join(output, os.path.basename(path)), encode_image(rgb, fmt, alpha))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and 16 images (< 1 min)")
    parser.add_argument("--images", type=int, default=None, help="image count (default 16 / 48)")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--seg_batch_size", type=int, default=4)
    parser.add_argument("--inpaint_batch_size", type=int, default=8)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    count = args.images or (16 if args.quick else 48)
    min_score, dilate = 0.05, 9

    models_dir = os.path.join(args.workdir, "models")
    paths = write_images(os.path.join(args.workdir, f"images-{count}-{args.size[0]}x{args.size[1]}"),
                         count, *args.size)
    config, checkpoint = segmenter_files(models_dir, args.quick)
    weights = inpainter_weights(models_dir, args.quick)

    bare_out = tempfile.mkdtemp(prefix="bare-", dir=args.workdir)
    started = time.perf_counter()
    bare_loop(paths, bare_out, config, checkpoint, weights, args.seg_batch_size,
              args.inpaint_batch_size, dilate, min_score)
    bare_seconds = time.perf_counter() - started

    from pipeline.run import run
    pipeline_out = tempfile.mkdtemp(prefix="pipeline-", dir=args.workdir)
    started = time.perf_counter()
    run(["--runner", "DirectRunner", "--input", os.path.join(os.path.dirname(paths[0]), "*.png"),
         "--output", pipeline_out, "--classes", "all", "--min_score", str(min_score),
         "--dilate", str(dilate), "--seg_config", config, "--seg_checkpoint", checkpoint,
         "--inpaint_weights", weights, "--seg_batch_size", str(args.seg_batch_size),
         "--inpaint_batch_size", str(args.inpaint_batch_size)])
    pipeline_seconds = time.perf_counter() - started

    print(f"images: {count} of {args.size[1]}x{args.size[0]}, segmenter {os.path.basename(str(config))}, "
          f"inpainter {os.path.basename(weights)}")
    print(f"bare loop: {bare_seconds:.1f} s ({count / bare_seconds:.2f} images/s)")
    print(f"pipeline:  {pipeline_seconds:.1f} s ({count / pipeline_seconds:.2f} images/s)")
    print(f"pipeline/bare throughput ratio: {bare_seconds / pipeline_seconds:.2f}")


if __name__ == "__main__":
    main()
