"""The pipeline graph: read -> decode -> segment -> select + dilate -> inpaint -> write -> Parquet.

Whole images never cross a shuffle: the only Reshuffle is on file names, right after matching, and
the per-image stages fuse behind it. A multi-frame input goes through the models frame by frame;
its frames' small infos meet in a GroupByKey, their pixels in files (`transforms/frames.py`).
Every input ends as exactly one `ImageInfo` -> one row.
When a model fails on a batch, its images run again one at a time, so that only the image the
model cannot take becomes an error row.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from transforms.batching import ImageKeyedModelHandler
from transforms.decode import DecodeImage
from transforms.frames import FRAME, AssembleFrames, FramesApart
from transforms.inpaint import InpaintModelHandler
from transforms.metadata import WriteMetadata, to_row
from transforms.progress import ReportProgress
from transforms.read import NAMESPACE, ListImageFiles, ReadImageBytes, ReadTFRecordImages
from transforms.records import ERROR, count_error, skip_type_inference
from transforms.select import SelectAndDilate
from transforms.skip_existing import KeepPreviousRows, SkipExisting
from transforms.user_masks import ReadUserMasks
from transforms.write import WriteImage
from transforms.write_masks import WriteRemovedMask

logger = logging.getLogger(__name__)

# An error row says what went wrong in a line or two; the traceback goes to the worker's log.
MAX_ERROR_CHARS = 400

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
    class_min_scores: tuple[tuple[int, float], ...] = ()  # (class id, the score it needs instead)
    keep_largest: int = 0
    keep_larger_than: float | None = None
    dilate: int = 9
    segmenter: str = "mmdet"
    masks: str | None = None
    seg_config: str = ""
    seg_checkpoint: str = ""
    allow_remote_config: bool = False
    inpaint_weights: str = ""  # "": the shipped checkpoint, where each worker's package has it
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
    metadata_run: str = ""  # names this run's metadata shards apart from earlier runs'
    previous_metadata: tuple[str, ...] = ()  # earlier runs' shards, read by --skip_existing
    expected_images: int | None = None  # images the run reads, when one process sees them all
    progress_seconds: float = 30.0  # how often a process logs its progress
    write_masks: bool = False  # each image's removed region as a PNG under <output>/masks/


def error_text(exception) -> str:
    """`Type: message` on one line, at most MAX_ERROR_CHARS, from a dead letter's exception:
    Beam's `(type, repr(value), formatted traceback)`, whose last lines are `module.Type: message`."""
    kind, value_repr, traceback_lines = exception
    qualified = (kind.__qualname__ if kind.__module__ in ("builtins", "__main__")
                 else f"{kind.__module__}.{kind.__qualname__}")
    message = value_repr
    for index in range(len(traceback_lines) - 1, -1, -1):
        line = traceback_lines[index]
        if line.startswith(f"{qualified}: ") or line.rstrip("\n") == qualified:
            message = "".join(traceback_lines[index:])[len(qualified) + 1:]
            break
    message = " ".join(message.split())
    text = f"{kind.__name__}: {message}" if message else kind.__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def _batch_elements(batch) -> list:
    """A dead letter's batch as a list (RunInference hands a lone element over unwrapped)."""
    return batch if isinstance(batch, list) else [batch]


def _retry_failed_batches(stage: str):
    """RunInference dead letters `(batch of (info, example), exception)`: the elements of a batch
    of several images, to run again one at a time; a lone image's failure -> its error info."""
    @skip_type_inference
    def expand(failure):
        batch, exception = failure
        batch = _batch_elements(batch)
        if len(batch) == 1:
            yield beam.pvalue.TaggedOutput(ERROR, failure)
            return
        logger.warning("%s failed on a batch of %d images (%s); running them one at a time",
                       stage, len(batch), error_text(exception))
        yield from batch
    return expand


def _error_infos(stage: str):
    """Dead letters -> one error info per image; the traceback goes to the log."""
    errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    @skip_type_inference
    def expand(failure):
        batch, exception = failure
        for info, _ in _batch_elements(batch):
            count_error(errors, info)
            logger.warning("%s failed on %s:\n%s", stage, info.image_uri, "".join(exception[2]))
            yield info.failed(stage, error_text(exception))
    return expand


@dataclass(frozen=True)
class _Model:
    """A model handler (with `one_at_a_time()`), the stage name for error rows, and the
    RunInference `model_identifier` that lets all of its transforms share one loaded model."""
    handler: object
    stage: str
    tag: str


def _run_model(label: str, examples, model: _Model):
    """`(ImageInfo, example)` -> ([results in batches, results of images retried alone],
    [error infos of both]).

    The images of a failed batch go through a second RunInference one at a time, on the same
    model, so one image the model cannot take fails alone. Branches stay apart until they are
    small infos: a Flatten of pixels would make the DirectRunner hold them all in memory.
    """
    batched, failed = examples | label >> RunInference(
        ImageKeyedModelHandler(model.handler), model_identifier=model.tag).with_exception_handling()
    retry = (failed.failed_inferences
             | f"{label}Unbatch" >> beam.FlatMap(_retry_failed_batches(model.stage)).with_outputs(
                 ERROR, main="alone"))
    alone, failed_alone = retry.alone | f"{label}OneByOne" >> RunInference(
        ImageKeyedModelHandler(model.handler.one_at_a_time()),
        model_identifier=model.tag).with_exception_handling()
    errors = [retry[ERROR] | f"{label}Errors" >> beam.FlatMap(_error_infos(model.stage)),
              failed_alone.failed_inferences
              | f"{label}OneByOneErrors" >> beam.FlatMap(_error_infos(model.stage))]
    return [batched, alone], errors


def _segment(images, config: GraphConfig):
    """`(ImageInfo, rgb)` -> branches of `(ImageInfo, PredictionResult(rgb, Detections))`, and
    branches of error infos."""
    if config.segmenter == "masks":
        read = images | "ReadUserMasks" >> beam.ParDo(ReadUserMasks(config.masks)).with_outputs(
            ReadUserMasks.ERROR, main="ok")
        return [read.ok], [read[ReadUserMasks.ERROR]]
    from transforms.segment import SegmentationModelHandler
    handler = SegmentationModelHandler(
        config=config.seg_config, checkpoint=config.seg_checkpoint, device=config.device,
        allow_remote_config=config.allow_remote_config, max_batch_size=config.seg_batch_size,
        max_batch_bytes=config.max_batch_bytes, model_copies=config.model_copies,
        cpu_threads=config.seg_cpu_threads, candidate_score_threshold=min(
            config.min_score, *(score for _, score in config.class_min_scores), DEFAULT_CANDIDATE_SCORE))
    return _run_model("Segment", images, _Model(handler, "segment", f"segment-{uuid.uuid4().hex}"))


def _frames_apart(label: str, infos, frames: list):
    """`infos` less the frames of multi-frame images, which are added to `frames`."""
    apart = infos | f"FramesApart{label}" >> beam.ParDo(FramesApart()).with_outputs(FRAME, main="image")
    frames.append(apart[FRAME])
    return apart.image


def build_graph(pipeline: beam.Pipeline, config: GraphConfig):
    """Adds the whole job to `pipeline`; returns the PCollection of final `ImageInfo`s."""
    errors, finished = [], []
    if config.input:
        named = pipeline | "ListImages" >> ListImageFiles(config.input, config.output)
    else:
        named = pipeline | "ReadTFRecords" >> ReadTFRecordImages(
            config.input_tfrecords, config.tfrecord_image_key, config.tfrecord_id_key, config.output)
    if config.skip_existing:
        todo = named | "SkipExisting" >> beam.ParDo(SkipExisting(
            config.output, masks_too=config.write_masks)).with_outputs(SkipExisting.SKIPPED, main="todo")
        named = todo.todo
        finished.append(todo[SkipExisting.SKIPPED])
    raw = named | "ReadBytes" >> ReadImageBytes() if config.input else named

    decoded = raw | "Decode" >> beam.ParDo(DecodeImage(config.max_image_pixels)).with_outputs(
        DecodeImage.ERROR, main="ok")
    errors.append(decoded[DecodeImage.ERROR])

    segmented_branches, segment_errors = _segment(decoded.ok, config)
    errors += segment_errors

    inpainter = _Model(InpaintModelHandler(
        config.inpaint_weights, strategy=config.inpaint_strategy, device=config.device,
        max_batch_size=config.inpaint_batch_size, max_batch_bytes=config.max_batch_bytes,
        model_copies=config.model_copies, self_ensemble=config.inpaint_self_ensemble,
        blend=config.inpaint_blend), "inpaint", f"inpaint-{uuid.uuid4().hex}")
    # Images the segmenter retried alone continue on their own branch ("Retried").
    to_write, chosen_errors = [], []  # chosen_errors: error infos that carry chosen instances
    for suffix, segmented in zip(("", "Retried"), segmented_branches):
        selected = segmented | f"SelectAndDilate{suffix}" >> beam.ParDo(SelectAndDilate(
            config.class_ids, config.min_score, config.dilate, config.keep_largest,
            config.keep_larger_than, dict(config.class_min_scores))).with_outputs(
                SelectAndDilate.UNCHANGED, SelectAndDilate.ERROR, main="holes")
        to_write.append((f"Unchanged{suffix}", selected[SelectAndDilate.UNCHANGED]))
        chosen_errors.append(selected[SelectAndDilate.ERROR])
        inpainted_branches, inpaint_errors = _run_model(f"Inpaint{suffix}", selected.holes, inpainter)
        chosen_errors += inpaint_errors
        # `(ImageInfo, cleaned rgb)`, the info's status not yet set: the writer makes it `cleaned`.
        to_write += [(f"Cleaned{suffix}{inpaint_suffix}", inpainted)
                     for inpaint_suffix, inpainted in zip(("", "OneByOne"), inpainted_branches)]

    # One writer per branch rather than a Flatten of the pixels: the DirectRunner materialises
    # every multi-input Flatten, which held every image of the run in memory until the last.
    # Unchanged file inputs are copied as they are; TFRecord records are written as `<id>.png`.
    copy_unchanged = bool(config.input)
    write = WriteImage(config.output, copy_unchanged)
    written, frames = [], []
    for name, branch in to_write:
        images = branch | f"WriteImages{name}" >> beam.ParDo(write).with_outputs(
            WriteImage.FRAME, main="image")
        written.append(images.image)
        frames.append(images[WriteImage.FRAME])
    # The frames of multi-frame inputs, stored by the writer or failed before it, meet by image.
    errors = [_frames_apart(f"Errors{index}", branch, frames) for index, branch in enumerate(errors)]
    chosen_errors = [_frames_apart(f"ChosenErrors{index}", branch, frames)
                     for index, branch in enumerate(chosen_errors)]
    written.append(frames | "AllFrames" >> beam.Flatten()
                   | "AssembleFrames" >> AssembleFrames(config.output, copy_unchanged))
    if config.write_masks:
        write_mask = WriteRemovedMask(config.output)
        written = [branch | f"WriteMasks{index}" >> beam.ParDo(write_mask)
                   for index, branch in enumerate(written)]
        chosen_errors = [branch | f"WriteMasksOfErrors{index}" >> beam.ParDo(write_mask)
                         for index, branch in enumerate(chosen_errors)]
    errors += chosen_errors

    # Counted on each branch: the DirectRunner runs a Flatten's consumers only once all its
    # inputs are done, too late to say how far the run is.
    progress = ReportProgress(config.metadata_run, config.expected_images, config.progress_seconds)
    ended = [branch | f"Progress{index}" >> beam.ParDo(progress)
             for index, branch in enumerate(written + finished + errors)]
    infos = ended | "AllImages" >> beam.Flatten()
    rows = infos | "ToRows" >> beam.Map(to_row, config.segmenter_identity, config.inpainter_identity)
    if config.skip_existing and config.previous_metadata:
        rows = rows | "KeepPreviousRows" >> KeepPreviousRows(config.previous_metadata)
    rows | "WriteMetadata" >> WriteMetadata(config.output, config.metadata_run)
    return infos
