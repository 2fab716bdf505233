"""The pipeline graph: read -> decode -> segment -> select + dilate -> inpaint -> write -> Parquet.

Whole images never cross a shuffle: the only Reshuffle is on file names, right after matching, and
the per-image stages fuse behind it. Every input ends as exactly one `ImageInfo` -> one row.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from transforms.decode import DecodeImage
from transforms.inpaint import InpaintModelHandler
from transforms.metadata import WriteMetadata
from transforms.read import NAMESPACE, ListImageFiles, ReadImageBytes, ReadTFRecordImages
from transforms.records import CLEANED
from transforms.select import SelectAndDilate
from transforms.skip_existing import SkipExisting
from transforms.user_masks import ReadUserMasks
from transforms.write import WriteImage

# mmdet's own candidate cut; a lower --min_score lowers it so our filter is the one that decides.
DEFAULT_CANDIDATE_SCORE = 0.05


@dataclass(frozen=True)
class GraphConfig:
    """Everything the graph needs, resolved and validated by the launcher (picklable, no globals)."""
    output: str
    input: str | None = None
    input_tfrecords: str | None = None
    tfrecord_image_key: str = "image/encoded"
    tfrecord_id_key: str = "image/filename"
    skip_existing: bool = False
    max_image_pixels: int = 100_000_000
    class_ids: frozenset[int] | None = None
    min_score: float = 0.5
    dilate: int = 9
    segmenter: str = "mmdet"
    masks: str | None = None
    seg_config: str = ""
    seg_checkpoint: str = ""
    allow_remote_config: bool = False
    inpaint_weights: str = ""
    inpaint_strategy: str = "crop"
    inpaint_self_ensemble: int = 2
    inpaint_blend: str = "poisson"
    device: str = "cpu"
    seg_batch_size: int = 4
    inpaint_batch_size: int = 8
    max_batch_bytes: int = 512 << 20
    model_copies: int | None = None
    seg_cpu_threads: int | None = None
    segmenter_identity: str = ""
    inpainter_identity: str = ""


def _batch_failures(stage: str):
    """RunInference dead letters `(batch of (info, example), exception)` -> one error info each."""
    errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    def expand(failure):
        batch, exception = failure
        for info, _ in (batch if isinstance(batch, list) else [batch]):
            errors.inc()
            yield info.failed(stage, exception)
    return expand


def _segment(images, config: GraphConfig):
    """`(ImageInfo, rgb)` -> `(ImageInfo, PredictionResult(rgb, Detections))` plus error infos."""
    if config.segmenter == "masks":
        read = images | "ReadUserMasks" >> beam.ParDo(ReadUserMasks(config.masks)).with_outputs(
            ReadUserMasks.ERROR, main="ok")
        return read.ok, read[ReadUserMasks.ERROR]
    from transforms.segment import SegmentationModelHandler
    handler = KeyedModelHandler(SegmentationModelHandler(
        config=config.seg_config, checkpoint=config.seg_checkpoint, device=config.device,
        allow_remote_config=config.allow_remote_config, max_batch_size=config.seg_batch_size,
        max_batch_bytes=config.max_batch_bytes, model_copies=config.model_copies,
        cpu_threads=config.seg_cpu_threads, candidate_score_threshold=min(config.min_score, DEFAULT_CANDIDATE_SCORE)))
    segmented, failed = images | "Segment" >> RunInference(handler).with_exception_handling()
    errors = failed.failed_inferences | "SegmentFailures" >> beam.FlatMap(_batch_failures("segment"))
    return segmented, errors


def build_graph(pipeline: beam.Pipeline, config: GraphConfig):
    """Adds the whole job to `pipeline`; returns the PCollection of final `ImageInfo`s."""
    errors, finished = [], []
    if config.input:
        named = pipeline | "ListImages" >> ListImageFiles(config.input, config.output)
    else:
        named = pipeline | "ReadTFRecords" >> ReadTFRecordImages(
            config.input_tfrecords, config.tfrecord_image_key, config.tfrecord_id_key, config.output)
    if config.skip_existing:
        todo = named | "SkipExisting" >> beam.ParDo(SkipExisting(config.output)).with_outputs(
            SkipExisting.SKIPPED, main="todo")
        named = todo.todo
        finished.append(todo[SkipExisting.SKIPPED])
    raw = named | "ReadBytes" >> ReadImageBytes() if config.input else named

    decoded = raw | "Decode" >> beam.ParDo(DecodeImage(config.max_image_pixels)).with_outputs(
        DecodeImage.ERROR, main="ok")
    errors.append(decoded[DecodeImage.ERROR])

    segmented, segment_errors = _segment(decoded.ok, config)
    errors.append(segment_errors)

    selected = segmented | "SelectAndDilate" >> beam.ParDo(SelectAndDilate(
        config.class_ids, config.min_score, config.dilate)).with_outputs(
            SelectAndDilate.UNCHANGED, main="holes")

    inpaint_handler = KeyedModelHandler(InpaintModelHandler(
        config.inpaint_weights, strategy=config.inpaint_strategy, device=config.device,
        max_batch_size=config.inpaint_batch_size, max_batch_bytes=config.max_batch_bytes,
        model_copies=config.model_copies, self_ensemble=config.inpaint_self_ensemble,
        blend=config.inpaint_blend))
    inpainted, inpaint_failed = (selected.holes
                                 | "Inpaint" >> RunInference(inpaint_handler).with_exception_handling())
    errors.append(inpaint_failed.failed_inferences
                  | "InpaintFailures" >> beam.FlatMap(_batch_failures("inpaint")))
    cleaned = inpainted | "Cleaned" >> beam.MapTuple(
        lambda info, result: (info.replace(status=CLEANED), result.inference))

    # One writer per branch rather than a Flatten of the pixels: the DirectRunner materialises
    # every multi-input Flatten, which held every image of the run in memory until the last.
    # Unchanged file inputs are copied as they are; TFRecord records are written as `<id>.png`.
    written = [branch | f"WriteImages{name}" >> beam.ParDo(WriteImage(config.output,
                                                                      copy_unchanged=bool(config.input)))
               for name, branch in (("Cleaned", cleaned),
                                    ("Unchanged", selected[SelectAndDilate.UNCHANGED]))]

    infos = (written + finished + errors) | "AllImages" >> beam.Flatten()
    infos | "WriteMetadata" >> WriteMetadata(config.output, config.segmenter_identity,
                                             config.inpainter_identity)
    return infos
