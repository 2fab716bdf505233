"""Images/s of each model at batch 1, 2, 4 and 8, and each batch size's speed-up over batch 1,
measured in one run (rounds of the same images, interleaved across batch sizes, best kept).

    python benchmarks/batching.py [--quick]                 # tiny Mask R-CNN + inpainter, 1-2 min
    python benchmarks/batching.py --models r50 --repeats 1  # the default Mask R-CNN (~7 min on CPU)
    python benchmarks/batching.py --device cuda             # GPU machine: PConvUNet 512 px, R50

CPU models: Mask R-CNN `tiny` (ResNet-18, 320 px) and `r50` (mask-rcnn_r50_fpn_1x_coco, which
resizes to 1333x800) on 320x240 photo-like images; `inpaint` is the shipped inpainter's
architecture (256 px, width 0.25, crop strategy) on 320x240 images with a centre hole (one
model window each). `--device cuda` runs Keras on torch: PConvUNet at 512 px, full width, on
512x512 images, and Mask R-CNN R50 on 1333x800 images with GPU utilisation from nvidia-smi.
`inpaint-host` is the same inpainter around an identity network: the CPU work around the model
alone (windows, model inputs, ensemble, pasting, blend), the ceiling on a GPU worker's
inpainting throughput with this many CPUs.

Where mmcv is installed without its compiled ops (the lent GPU machine), `--mmcv_ops
torchvision` runs our Mask R-CNN on torchvision's RoIAlign and NMS kernels
(benchmarks/torchvision_mmcv_ops.py). `tv-r50` is a further stand-in, for machines without mmdet:
torchvision's Mask R-CNN R50-FPN, the same architecture in another implementation, keeping 100
detections per image (score threshold 0, the most mask work mmdet's test config allows); it is
not our segmenter. All weights are random: speed does not depend on them (the random R50 keeps
100 detections per image too; the table shows the count).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import tempfile
import time

from common import (SHIPPED_SIZE, SHIPPED_WIDTH, GpuUtilisation, centre_hole, machine,
                    photo_like, segmenter_files, use_device)

MODELS = ("tiny", "r50", "tv-r50", "inpaint", "inpaint-host")


def _segmentation_runner(kind: str, device: str, workdir: str, threads: int | None):
    """`run(images)`: one Mask R-CNN batch."""
    config, checkpoint = segmenter_files(os.path.join(workdir, "models"), kind)
    from models.segmentation import MaskRCNNSegmenter
    return MaskRCNNSegmenter(config, checkpoint, device=device, cpu_threads=threads).segment


def _torchvision_runner(device: str):
    """`run(images)`: torchvision's Mask R-CNN R50-FPN (resizes to 1333x800, as mmdet's config)
    on one batch, masks thresholded and brought back to the CPU as the pipeline's are."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0,
                                  box_detections_per_img=100).eval().to(device)

    @torch.inference_mode()
    def run(images):
        tensors = [torch.from_numpy(image).to(device).permute(2, 0, 1).float() / 255 for image in images]
        return [(found["masks"][:, 0] > 0.5).cpu() for found in model(tensors)]
    return run


def _identity_network(size: int):
    """An [image, mask] -> image model: the inpainter's work without the U-Net's."""
    import keras
    image, mask = keras.Input((size, size, 3), name="image"), keras.Input((size, size, 3), name="mask")
    return keras.Model([image, mask], keras.layers.Identity()(image), name="identity")


def _inpainting_runners(device: str, batch_sizes: list[int], height: int, width: int, blend: str,
                        host_only: bool):
    """`{batch: run(images)}`: the crop strategy with one centre hole (one model window) per image."""
    from models.pconv import Inpainter, build_pconv_unet
    if host_only:
        model = _identity_network(SHIPPED_SIZE if device == "cpu" else 512)
    elif device == "cpu":
        model = build_pconv_unet(image_size=SHIPPED_SIZE, width_multiplier=SHIPPED_WIDTH)
    else:
        model = build_pconv_unet(image_size=512)
    hole = centre_hole(height, width)

    def runner(batch):
        inpainter = Inpainter(model, strategy="crop", batch_size=batch, blend=blend)
        return lambda images: inpainter.inpaint(images, [hole] * len(images))
    return {batch: runner(batch) for batch in batch_sizes}


def _mmcv_has_compiled_ops() -> bool:
    return importlib.util.find_spec("mmcv") is not None and importlib.util.find_spec("mmcv._ext") is not None


def time_model(name: str, args) -> list[dict]:
    gpu = args.device == "cuda"
    inpainting = name.startswith("inpaint")
    if inpainting:
        height, width = (512, 512) if gpu else args.size
        runs = _inpainting_runners(args.device, args.batch_sizes, height, width, args.inpaint_blend,
                                   host_only=name == "inpaint-host")
    else:
        height, width = (800, 1333) if gpu else args.size
        if name == "tv-r50":
            segment = _torchvision_runner(args.device)
        else:
            segment = _segmentation_runner(name, args.device, args.workdir, args.threads)
        runs = {batch: segment for batch in args.batch_sizes}
    # The same images for every batch size; more per round on a GPU, so nvidia-smi sees each.
    round_images = max(args.batch_sizes) * (8 if gpu else 1)
    images = [photo_like(height, width, seed) for seed in range(round_images)]
    # Warm-up: Keras traces its predict function once per batch shape; eager torch on CPU compiles
    # nothing per shape, so one call pays its first-use costs (on a GPU, warming each is cheap).
    for batch in args.batch_sizes if inpainting or gpu else args.batch_sizes[:1]:
        outputs = runs[batch](images[:batch])
    # Mask R-CNN's mask head works per detection: say how many there were.
    detections = "" if inpainting else f"{sum(map(len, outputs)) / len(outputs):.0f} detections/image"

    best = {batch: float("inf") for batch in args.batch_sizes}
    utilisation = {batch: GpuUtilisation() for batch in args.batch_sizes}
    for _ in range(args.repeats):
        for batch in args.batch_sizes:  # interleaved, so a change in background load hits all sizes
            started = time.perf_counter()
            with utilisation[batch] if gpu else contextlib.nullcontext():
                for first in range(0, round_images, batch):
                    runs[batch](images[first:first + batch])
            best[batch] = min(best[batch], time.perf_counter() - started)
    first = args.batch_sizes[0]
    return [{"model": name, "size": f"{width}x{height}", "batch": batch,
             "images_per_s": round_images / best[batch], "speedup": best[first] / best[batch],
             "notes": "  ".join(filter(None, [detections, utilisation[batch].summary() if gpu else ""]))}
            for batch in args.batch_sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed round (~1 min)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None,
                        help="default: tiny and inpaint on CPU (r50 takes ~7 min there); "
                        "r50 and inpaint with --device cuda; tv-r50 is torchvision's Mask R-CNN, "
                        "a stand-in where mmcv is missing")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                        help="CPU image size (cuda: 512x512 for inpainting, 1333x800 for Mask R-CNN)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds, best kept (default 2; --quick 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--inpaint_blend", choices=("poisson", "none"), default="poisson",
                        help="the inpainter's seam blend (CPU work after the model; the pipeline's default "
                        "is poisson)")
    parser.add_argument("--mmcv_ops", choices=("compiled", "torchvision"), default="compiled",
                        help="mmcv's ops for r50/tiny: its compiled ones, or torchvision's RoIAlign and NMS "
                        "where mmcv is installed without ops (mmcv-lite)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for Mask R-CNN (default: every usable CPU, as the pipeline)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 2)
    models = args.models or (["tiny", "inpaint"] if args.device == "cpu" else ["r50", "inpaint"])
    if args.device == "cuda" and "tiny" in models:
        parser.error("--device cuda times the full-size models: r50, tv-r50, inpaint and inpaint-host")
    use_device(args.device)
    if args.mmcv_ops == "torchvision":
        import torchvision_mmcv_ops
        torchvision_mmcv_ops.install()

    import keras
    print(f"machine: {machine()}; Keras backend {keras.backend.backend()}, device {args.device}, "
          f"torch threads {args.threads or 'all'}, inpaint blend {args.inpaint_blend}, mmcv ops {args.mmcv_ops}, "
          f"best of {args.repeats}")
    rows = []
    for name in models:
        needs = {"inpaint": None, "inpaint-host": None, "tv-r50": "torchvision"}.get(name, "mmdet")
        if needs and importlib.util.find_spec(needs) is None:
            print(f"{name}: skipped, it needs {needs}, not installed here"
                  + (" (tv-r50 times torchvision's Mask R-CNN instead)" if needs == "mmdet" else ""))
            continue
        if needs == "mmdet" and args.mmcv_ops == "compiled" and not _mmcv_has_compiled_ops():
            print(f"{name}: skipped, mmcv has no compiled ops here; --mmcv_ops torchvision runs it on "
                  "torchvision's RoIAlign and NMS")
            continue
        rows += time_model(name, args)
    print(f"machine after: {machine()}")
    print(f"{'model':<12} {'image':>9} {'batch':>5} {'images/s':>9} {f'vs batch {args.batch_sizes[0]}':>10}")
    for row in rows:
        print(f"{row['model']:<12} {row['size']:>9} {row['batch']:>5} {row['images_per_s']:>9.3g} "
              f"{row['speedup']:>9.2f}x  {row['notes']}")


if __name__ == "__main__":
    main()
