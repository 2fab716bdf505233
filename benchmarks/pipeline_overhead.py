"""What Beam costs: the whole pipeline on DirectRunner versus a bare Python loop that calls the
same two models on the same images with the same batch sizes, measured in one run. Both sides
do the same work and write the same image bytes and metadata rows (instances as COCO RLE; the
bare loop writes its rows as one Parquet file at the end).

    python benchmarks/pipeline_overhead.py --quick          # tiny models, 12 images, < 1 min
    python benchmarks/pipeline_overhead.py --images 48 --inpainter shipped

Both sides load their models once; the pipeline also loads each once more in the launcher (to
fail fast on a bad file), which is a fixed cost, not Beam's. The end-to-end ratio counts every
load; the last line, `pipeline/bare throughput ratio: R` (target: at least 0.9), leaves model
loading out of both sides, so it is Beam's own cost (graph construction and stage set-up once
a run, and a few milliseconds per image) plus whatever the two sides' model calls differ by; the
`Beam's own cost` line gives it in seconds, without the model calls' run-to-run noise.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import (INPAINTERS, SEGMENTERS, centre_hole, inpainter_weights, machine,
                    segmenter_files, write_images)


class BareLoop:
    """The pipeline's work as a plain loop: decode, segment `seg_batch` images at a time, select
    and dilate, inpaint `inpaint_batch` images at a time, write, and one Parquet metadata file of
    the pipeline's rows (COCO RLE of every instance). Times its model calls."""

    def __init__(self, segmenter, inpainter, output: str, seg_batch: int, inpaint_batch: int,
                 dilate: int, min_score: float):
        self.segmenter, self.inpainter, self.output = segmenter, inpainter, output
        self.seg_batch, self.inpaint_batch = seg_batch, inpaint_batch
        self.dilate, self.min_score = dilate, min_score
        self.model_seconds = 0.0
        self._waiting = []  # (info, rgb, hole, format, alpha) until an inpainting batch is full
        self._rows = []

    def run(self, paths: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from transforms.decode import decode_image
        from transforms.metadata import SCHEMA
        from transforms.records import ImageInfo
        from transforms.select import dilate, instance_rows

        for start in range(0, len(paths), self.seg_batch):
            chunk = paths[start:start + self.seg_batch]
            decoded = []
            for path in chunk:
                with open(path, "rb") as f:
                    decoded.append(decode_image(f.read()))
            started = time.perf_counter()
            detections = self.segmenter.segment([image.rgb for image in decoded])
            self.model_seconds += time.perf_counter() - started
            for path, image, found in zip(chunk, decoded, detections):
                rgb, alpha, image_format, encoding = image.rgb, image.alpha, image.image_format, image.encoding
                keep = found.select(None, self.min_score) & found.nonempty()
                hole = dilate(found.union(keep), self.dilate)
                info = ImageInfo(path, os.path.basename(path), width=rgb.shape[1], height=rgb.shape[0],
                                 instances=instance_rows(found, keep), removed_fraction=float(hole.mean()))
                if not hole.any():
                    self._write(info.replace(status="unchanged"), rgb, image_format, alpha, encoding)
                    continue
                self._waiting.append((info, rgb, hole, image_format, alpha, encoding))
                if len(self._waiting) == self.inpaint_batch:
                    self._inpaint_waiting()
        self._inpaint_waiting()
        pq.write_table(pa.Table.from_pylist(self._rows, schema=SCHEMA),
                       os.path.join(self.output, "metadata.parquet"))

    def _inpaint_waiting(self) -> None:
        if not self._waiting:
            return
        started = time.perf_counter()
        cleaned = self.inpainter.inpaint([w[1] for w in self._waiting], [w[2] for w in self._waiting])
        self.model_seconds += time.perf_counter() - started
        for (info, _, _, image_format, alpha, encoding), rgb in zip(self._waiting, cleaned):
            self._write(info.replace(status="cleaned"), rgb, image_format, alpha, encoding)
        self._waiting = []

    def _write(self, info, rgb, image_format: str, alpha, encoding) -> None:
        from transforms.metadata import to_row
        from transforms.write import encode_image, write_atomically
        path = os.path.join(self.output, info.relative_path)
        write_atomically(path, encode_image(rgb, image_format, alpha, encoding)[0])  # as the pipeline writes
        self._rows.append(to_row(info.replace(output_uri=path), "segmenter", "inpainter"))


def warm_up_process(path, config, checkpoint, weights) -> None:
    """Pays the per-process first-use costs (imports, thread pools, kernel selection) with
    throwaway models, so neither timed side gets them for free from the other. Model instances'
    own costs (Keras tracing its predict function) stay in both sides' timings."""
    from models.pconv import Inpainter
    from models.runtime import configure_tensorflow
    from models.segmentation import MaskRCNNSegmenter
    from transforms.decode import decode_image

    configure_tensorflow("cpu")
    with open(path, "rb") as f:
        rgb = decode_image(f.read()).rgb
    MaskRCNNSegmenter(config, checkpoint).segment([rgb])
    Inpainter.load(weights).inpaint([rgb], [centre_hole(*rgb.shape[:2])])
    import pipeline.run  # noqa: F401


def run_bare(paths, output, config, checkpoint, weights, args) -> dict:
    from models.pconv import Inpainter
    from models.segmentation import MaskRCNNSegmenter

    started = time.perf_counter()
    segmenter = MaskRCNNSegmenter(config, checkpoint)
    inpainter = Inpainter.load(weights, batch_size=args.inpaint_batch_size)
    loaded = time.perf_counter()
    loop = BareLoop(segmenter, inpainter, output, args.seg_batch_size, args.inpaint_batch_size,
                    args.dilate, args.min_score)
    loop.run(paths)
    finished = time.perf_counter()
    return {"total": finished - started, "loading": loaded - started, "model": loop.model_seconds}


def _distribution(result, namespace: str, name: str) -> tuple[float, int]:
    """(sum, count) of a distribution over every step that reports it: each model has several
    RunInference steps (batches, images retried alone, the segmenter's retried branch), and the
    model is loaded by whichever of them sets up first."""
    from apache_beam.metrics.metric import MetricsFilter
    found = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))
    values = [d.committed or d.attempted for d in found["distributions"]]
    return sum(v.sum for v in values), sum(v.count for v in values)


def run_pipeline(paths, output, config, checkpoint, weights, args) -> dict:
    """The real `pipeline.run.run`, with its launcher-side model check timed separately."""
    from pipeline import run as pipeline_run

    validate, validation = pipeline_run.resolve_config, {}

    def timed_validation(options):
        started = time.perf_counter()
        try:
            return validate(options)
        finally:
            validation["seconds"] = time.perf_counter() - started

    pipeline_run.resolve_config = timed_validation
    try:
        started = time.perf_counter()
        result = pipeline_run.run([
            "--runner", "DirectRunner", "--input", os.path.join(os.path.dirname(paths[0]), "*.png"),
            "--output", output, "--classes", "all", "--min_score", str(args.min_score),
            "--dilate", str(args.dilate), "--seg_config", config, "--seg_checkpoint", checkpoint,
            "--inpaint_weights", weights, "--seg_batch_size", str(args.seg_batch_size),
            "--inpaint_batch_size", str(args.inpaint_batch_size)])
        total = time.perf_counter() - started
    finally:
        pipeline_run.resolve_config = validate

    return {"total": total, "validation": validation["seconds"], **model_figures(result)}


def model_figures(result) -> dict:
    """The workers' model loading and model-call seconds, and the batches, from the job's
    RunInference metrics."""
    figures = {"loading": 0.0, "model": 0.0}
    for stage in ("segmentation", "inpaint"):
        namespace = f"bg_obj_remover.{stage}"
        figures["loading"] += _distribution(result, namespace, "load_model_latency_milli_secs")[0] / 1e3
        figures["model"] += _distribution(result, namespace, "inference_batch_latency_micro_secs")[0] / 1e6
        images, batches = _distribution(result, namespace, "inference_request_batch_size")
        figures[f"{stage} batches"] = f"{batches} of mean size {images / batches:.1f}" if batches else "none"
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models and 12 images (< 1 min)")
    parser.add_argument("--images", type=int, default=None, help="image count (default 12 / 48)")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--segmenter", choices=SEGMENTERS, default="tiny",
                        help="random Mask R-CNN: tiny (ResNet-18, 320 px) or r50 (the default config)")
    parser.add_argument("--inpainter", choices=INPAINTERS, default=None,
                        help="tiny (64 px) or shipped (256 px, width 0.25); default tiny / shipped")
    parser.add_argument("--seg_batch_size", type=int, default=4)
    parser.add_argument("--inpaint_batch_size", type=int, default=8)
    parser.add_argument("--min_score", type=float, default=0.05)
    parser.add_argument("--dilate", type=int, default=9)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    count = args.images or (12 if args.quick else 48)
    inpainter = args.inpainter or ("tiny" if args.quick else "shipped")

    models_dir = os.path.join(args.workdir, "models")
    paths = write_images(os.path.join(args.workdir, f"images-{count}-{args.size[0]}x{args.size[1]}"),
                         count, *args.size)
    config, checkpoint = segmenter_files(models_dir, args.segmenter)
    weights = inpainter_weights(models_dir, inpainter)
    warm_up_process(paths[0], config, checkpoint, weights)

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as outputs:
        bare = run_bare(paths, tempfile.mkdtemp(dir=outputs), config, checkpoint, weights, args)
        beam = run_pipeline(paths, tempfile.mkdtemp(dir=outputs), config, checkpoint, weights, args)
    bare_steady = bare["total"] - bare["loading"]
    beam_steady = beam["total"] - beam["validation"] - beam["loading"]

    print(f"images: {count} of {args.size[1]}x{args.size[0]}, segmenter {args.segmenter} "
          f"(batch {args.seg_batch_size}), inpainter {inpainter} {os.path.basename(weights)} "
          f"(batch {args.inpaint_batch_size})")
    print(f"bare loop: {bare['total']:.1f} s = model loading {bare['loading']:.1f} s + {bare_steady:.1f} s "
          f"processing, of which model calls {bare['model']:.1f} s")
    print(f"pipeline:  {beam['total']:.1f} s = launcher model check {beam['validation']:.1f} s + worker "
          f"model loading {beam['loading']:.1f} s + {beam_steady:.1f} s processing, of which model "
          f"calls {beam['model']:.1f} s")
    print(f"pipeline batches: segmentation {beam['segmentation batches']}, "
          f"inpainting {beam['inpaint batches']}")
    print(f"machine after: {machine()}")
    # The model calls are the same calls on both sides, yet on a shared machine their time
    # varies from run to run (2-4x under load: torch's threads wait for a CPU), swinging the
    # ratio far more than Beam does; what Beam adds is the time outside them.
    beam_cost = (beam_steady - beam["model"]) - (bare_steady - bare["model"])
    print(f"Beam's own cost (time outside model calls, pipeline minus bare loop): {beam_cost:.1f} s; "
          f"with the bare loop's model-call time on both sides the ratio would be "
          f"{bare_steady / (bare_steady + beam_cost):.2f}")
    print(f"end-to-end (model loading included) pipeline/bare throughput ratio: "
          f"{bare['total'] / beam['total']:.2f}")
    print(f"pipeline/bare throughput ratio: {bare_steady / beam_steady:.2f}")


if __name__ == "__main__":
    main()
