"""Builds, validates and runs the job: `run(argv, test_pipeline=None)` returns the PipelineResult."""
from __future__ import annotations

import difflib
import logging
import multiprocessing
import os
import shutil
import sys
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, GoogleCloudOptions,
                                                  PipelineOptions, PortableOptions, SetupOptions,
                                                  StandardOptions, TestOptions, _BeamArgumentParser)
from apache_beam.runners.runner import create_runner

from models.runtime import usable_cpu_count
from models.segmentation.classes import split_min_scores
from models.segmentation.config import PACKAGED_PREFIX
from models.uri import is_remote
from pipeline.graph import GraphConfig, build_graph
from pipeline.logs import configure_command_line_logging
from pipeline.options import DEFAULT_CLASSES, DEFAULT_MIN_SCORE, SHIPPED_INPAINT_WEIGHTS, RemoverOptions
from transforms.metadata import metadata_pattern, staging_folder
from transforms.frame_store import frames_folder
from transforms.read import MASKS_FOLDER, NAMESPACE, folder_as_pattern, match_inputs
from transforms.user_masks import USER_MASKS_IDENTITY
from transforms.write import output_root

logger = logging.getLogger(__name__)


# Runners whose workers share the launcher's file system (so local model paths work), or that run
# nothing (RenderRunner draws the graph). PortableRunner depends on its environment
# (`_runs_on_this_machine`).
_LOCAL_RUNNERS = {runner.lower() for runner in StandardOptions.LOCAL_RUNNERS} | {"renderrunner"}


# Files a distributed job's launcher lists, at first, to know its input matches something.
LISTING_PROBE = 1000


class UsageError(ValueError):
    """Bad options or model files, found before any image is touched."""


def _dash_values_joined(flags: list[str]) -> list[str]:
    """`--classes -person` as `--classes=-person`: argparse takes a value starting with a single
    '-' for an option, and fails with 'expected one argument'; joined, the value gets its own
    check and message."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    RemoverOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    takes_a_value = {flag for action in parser._actions if action.nargs is None for flag in action.option_strings}
    joined, i = [], 0
    while i < len(flags):
        flag, value = flags[i], flags[i + 1] if i + 1 < len(flags) else None
        if flag in takes_a_value and value is not None and value.startswith("-") and not value.startswith("--"):
            joined.append(f"{flag}={value}")
            i += 2
        else:
            joined.append(flag)
            i += 1
    return joined


def _reject_unknown_arguments(flags: list[str]) -> None:
    """Beam keeps only the flags some PipelineOptions class declares and drops the rest with a
    warning, so a misspelt flag or a shell-expanded glob would run the whole job on defaults.
    The parser is built as Beam's own (PipelineOptions.get_all_options): every options class, no
    abbreviations."""
    _import_runner_options(flags)
    parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)  # pylint: disable=protected-access
    _, unknown = parser.parse_known_args(flags)
    if not unknown:
        return
    known = [flag for action in parser._actions for flag in action.option_strings]
    flags_found, stray = [], []
    i = 0
    while i < len(unknown):
        arg = unknown[i]
        if not arg.startswith("-") or arg == "--":
            stray.append(arg)
            i += 1
            continue
        name = arg.split("=", 1)[0]
        with_value = "=" not in arg and i + 1 < len(unknown) and not unknown[i + 1].startswith("-")
        shown = f"{arg} {unknown[i + 1]}" if with_value else arg
        close = (difflib.get_close_matches("--" + name.lstrip("-").replace("-", "_"), known, n=1)
                 or difflib.get_close_matches(name, known, n=1))
        flags_found.append(f"{shown} (did you mean {close[0]}?)" if close else shown)
        i += 2 if with_value else 1
    problems = []
    if flags_found:
        problems.append(f"unknown option{'s' if len(flags_found) > 1 else ''} {', '.join(flags_found)}")
    if stray:
        problems.append(f"unexpected argument{'s' if len(stray) > 1 else ''} {' '.join(stray)}: "
                        "a file pattern the shell expanded? "
                        "quote the pattern, e.g. --input 'photos/**/*.jpg'")
    raise UsageError("; ".join(problems))


def _import_runner_options(flags: list[str]) -> None:
    """Some runners declare their options in the runner's own module (DaskRunner's
    --dask_client_address), which Beam imports only when it builds the runner: import it now."""
    runner = PipelineOptions(flags).view_as(StandardOptions).runner
    if isinstance(runner, str):
        try:
            create_runner(runner)
        except Exception:  # noqa: BLE001 - an unknown or uninstallable runner: Beam reports it later
            logger.debug("cannot import runner %s", runner, exc_info=True)


def _runner_name(options: RemoverOptions) -> str:
    """The runner's class name in lower case, however it was spelt (`DirectRunner`, `direct`,
    `apache_beam.runners.direct.direct_runner.DirectRunner`): Beam takes a known runner's name
    without its `Runner` too."""
    name = (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1].lower()
    known = {runner.lower() for runner in StandardOptions.KNOWN_RUNNER_NAMES}
    return name + "runner" if name not in known and name + "runner" in known else name


def _runs_on_this_machine(options: RemoverOptions) -> bool:
    """Whether the job's code runs where the launcher does, with its files and GPU. A portable
    runner's does only in this process (`--environment_type LOOPBACK`) or in processes its embedded
    job server starts (`--job_endpoint embed --environment_type PROCESS`); in its default
    environment, Docker containers, or behind a remote `--job_endpoint`, it does not."""
    name = _runner_name(options)
    if name != "portablerunner":
        return name in _LOCAL_RUNNERS
    portable = options.view_as(PortableOptions)
    environment = (portable.environment_type or "DOCKER").upper()
    return environment == "LOOPBACK" or (environment == "PROCESS" and portable.job_endpoint == "embed")


def _dry_run(options: RemoverOptions) -> bool:
    """Only Dataflow honours --dry_run and skips the work; every other runner ignores it and runs
    the job, which then needs every check and step of a real run."""
    return bool(options.view_as(TestOptions).dry_run) and "dataflow" in _runner_name(options)


def _require_matching_input(options: RemoverOptions, count: bool = True) -> int:
    """An input pattern that matches nothing would otherwise fail the job mid-way, after launch.
    Matched as the job matches it (a folder means every file under it; `**/` also matches no
    folder; earlier runs' outputs are not inputs). Returns how many files it matched; with
    `count=False` at least how many, from the first LISTING_PROBE files listed, so that the
    launcher of a job over millions of objects does not list them all before the job does."""
    flag, pattern = ("--input", options.input) if options.input else (
        "--input_tfrecords", options.input_tfrecords)
    output = output_root(options.output)
    try:
        files = folder_as_pattern(pattern)
        matched, left_out = match_inputs(files, output, None if count else LISTING_PROBE)
        if not matched and not count:  # the probe saw only earlier outputs or other files
            matched, left_out = match_inputs(files, output)
    except Exception as e:  # noqa: BLE001 - unreachable storage, no file system for the scheme, ...
        raise UsageError(f"cannot list {flag} {pattern}: {e}") from None
    if not matched:
        raise UsageError(f"no file matches {flag} {pattern}" + (
            f" but {left_out.says('--output ' + options.output)}" if any(left_out) else ""))
    return len(matched)


def _one_process_sees_every_image(options: RemoverOptions) -> bool:
    """The DirectRunner runs the job in this process unless told to use several."""
    return (_runner_name(options) == "directrunner"
            and options.view_as(DirectOptions).direct_running_mode != "multi_processing")


def _keras_sees_a_gpu() -> bool:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return True  # other backends place their ops themselves


def _require_usable_device(options: RemoverOptions) -> None:
    """`--device cuda` needs a GPU where the models run: on this machine for a local runner. The
    launcher of a distributed job has none (its workers do), so only local runs are checked."""
    if options.device != "cuda" or not _runs_on_this_machine(options):
        return
    blind = []
    if options.segmenter == "mmdet":
        import torch
        if not torch.cuda.is_available():
            blind.append("torch (Mask R-CNN)")
    if not _keras_sees_a_gpu():
        blind.append(f"{os.environ.get('KERAS_BACKEND', 'tensorflow')} (the inpainter)")
    if blind:
        verb = "see" if len(blind) > 1 else "sees"
        raise UsageError(f"--device cuda: {' and '.join(blind)} {verb} no CUDA GPU on this machine, "
                         f"where {options.view_as(StandardOptions).runner or 'DirectRunner'} runs the "
                         "models; pass --device cpu")


def _require_gpus_on_dataflow_workers(options: RemoverOptions) -> None:
    """Dataflow workers have a usable GPU only where `worker_accelerator=type:...;count:N;
    install-nvidia-driver` asks for it (a service option, or an experiment as it once was; or the
    resource hint `accelerator=...`): without one, a `--device cuda` job's workers cannot run the
    models, found only after their start-up is paid for."""
    if options.device != "cuda" or "dataflow" not in _runner_name(options):
        return
    experiments = options.view_as(DebugOptions).experiments or []
    accelerators = [item for item in (options.view_as(GoogleCloudOptions).dataflow_service_options or [])
                    + experiments if item.startswith("worker_accelerator=")]
    accelerators += [hint for hint in options.view_as(StandardOptions).resource_hints or []
                     if hint.startswith("accelerator=")]
    if not accelerators:
        raise UsageError("--device cuda: Dataflow workers get no GPU without --dataflow_service_options "
                         '"worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" (a GPU type '
                         "that --machine_type takes); or pass --device cpu")
    if not any("install-nvidia-driver" in item for item in accelerators):
        raise UsageError(f"--device cuda: {accelerators[0]} does not ask for install-nvidia-driver: "
                         "without the driver the workers' GPUs cannot be used; add ;install-nvidia-driver")
    if options.model_copies is None and "no_use_multiple_sdk_containers" not in experiments:
        logger.warning("--device cuda without --model_copies 1 or --experiments "
                       "no_use_multiple_sdk_containers: each of a worker's SDK processes (one per vCPU) "
                       "loads its own copy of both models onto its GPU")


def _require_remote_paths(options: RemoverOptions) -> None:
    """Workers of a distributed runner can neither read nor write the launcher's disk: inputs,
    masks, outputs and model files must be URIs (`gs://`, ...), not local paths or `file://`."""
    if _runs_on_this_machine(options):
        return
    runner = options.view_as(StandardOptions).runner
    paths = {"--input": options.input, "--input_tfrecords": options.input_tfrecords,
             "--output": options.output}
    if options.inpaint_weights != SHIPPED_INPAINT_WEIGHTS:  # the shipped one is installed with the package
        paths["--inpaint_weights"] = options.inpaint_weights
    if options.segmenter == "masks":
        paths["--masks"] = options.masks
    else:
        paths["--seg_checkpoint"] = options.seg_checkpoint
        packaged = options.seg_config.startswith(PACKAGED_PREFIX)  # installed on every worker
        if not packaged and ("/" in options.seg_config or options.seg_config.endswith(".py")):
            paths["--seg_config"] = options.seg_config
    local = [f"{flag} {path}" for flag, path in paths.items() if path and not is_remote(path)]
    if local:
        raise UsageError(f"{runner} workers cannot read or write files on this machine: upload "
                         f"{', '.join(local)} (e.g. gsutil cp FILE gs://BUCKET/models/) and pass "
                         "gs:// URIs")


def resolve_config(options: RemoverOptions) -> GraphConfig:
    """Checks every option and model file, so mistakes fail in seconds, not mid-archive."""
    if bool(options.input) == bool(options.input_tfrecords):
        raise UsageError("give exactly one of --input (file pattern) or --input_tfrecords")
    if not options.output:
        raise UsageError("--output is required")
    if wildcards := sorted(set(options.output) & set("*?[]")):
        # Beam's Parquet sink finds its shards by pattern: it would fail after every image is written.
        raise UsageError(f"--output {options.output}: a folder whose path holds {' '.join(wildcards)} "
                         "cannot take the metadata (Beam's file sink reads those as a pattern); "
                         "choose another")
    if options.dilate < 0:
        raise UsageError("--dilate must be >= 0")
    try:
        min_score, class_min_scores = split_min_scores(options.min_score)
    except ValueError as e:
        raise UsageError(f"--min_score: {e}") from None
    if options.keep_largest < 0:
        raise UsageError(f"--keep_largest {options.keep_largest}: must be >= 0 (0 keeps none)")
    if options.keep_larger_than is not None and not 0.0 < options.keep_larger_than < 1.0:
        raise UsageError(f"--keep_larger_than {options.keep_larger_than:g}: a share of the image "
                         "above 0 and below 1 (0 would keep every instance chosen, removing nothing; "
                         "leave it out to keep none)")
    if options.seg_batch_size < 1 or options.inpaint_batch_size < 1:
        raise UsageError("batch sizes must be >= 1")
    positive = {"--max_batch_megabytes": options.max_batch_megabytes,
                "--max_image_pixels": options.max_image_pixels,
                "--model_copies": options.model_copies, "--seg_cpu_threads": options.seg_cpu_threads}
    wrong = [f"{flag} {value}" for flag, value in positive.items() if value is not None and value < 1]
    if wrong:
        raise UsageError(f"{', '.join(wrong)}: must be >= 1")
    _require_remote_paths(options)

    if options.segmenter == "masks":
        if not options.masks:
            raise UsageError("--segmenter masks needs --masks (the folder of mask PNGs)")
        if options.keep_largest or options.keep_larger_than is not None or class_min_scores:
            raise UsageError("--keep_largest, --keep_larger_than and a class's own --min_score choose "
                             "among the instances a detector finds: --segmenter masks removes what "
                             "each mask marks")
        if "://" not in options.masks and not os.path.isdir(options.masks):
            raise UsageError(f"--masks folder not found: {options.masks}")
        unused = [f"{flag} {value}" for flag, value, default in (
            ("--classes", options.classes, DEFAULT_CLASSES), ("--min_score", options.min_score, DEFAULT_MIN_SCORE))
            if value != default]
        if unused:
            logger.warning("%s: not used with --segmenter masks, which removes what each mask marks",
                           ", ".join(unused))
    expected_images = None
    if not _dry_run(options):  # a dry run touches no storage
        count = bool(options.input) and _one_process_sees_every_image(options)
        matched = _require_matching_input(options, count)
        expected_images = matched if count else None
    _require_usable_device(options)
    _require_gpus_on_dataflow_workers(options)

    if options.segmenter == "masks":
        segmenter_identity, class_ids, scores_by_id = USER_MASKS_IDENTITY, None, {}
    else:
        segmenter_identity, class_ids, scores_by_id = _validate_segmenter(options, class_min_scores)
    inpainter_identity = _validate_inpainter(options.inpaint_weights, options.device,
                                             options.inpaint_strategy, options.inpaint_self_ensemble,
                                             options.inpaint_blend)
    return GraphConfig(
        output=output_root(options.output), input=options.input, input_tfrecords=options.input_tfrecords,
        tfrecord_image_key=options.tfrecord_image_key, tfrecord_id_key=options.tfrecord_id_key,
        skip_existing=options.skip_existing, write_masks=options.write_masks,
        max_image_pixels=options.max_image_pixels,
        class_ids=class_ids, min_score=min_score, class_min_scores=tuple(sorted(scores_by_id.items())),
        dilate=options.dilate,
        keep_largest=options.keep_largest, keep_larger_than=options.keep_larger_than,
        segmenter=options.segmenter, masks=options.masks, seg_config=options.seg_config,
        seg_checkpoint=options.seg_checkpoint, allow_remote_config=options.allow_remote_config,
        inpaint_weights="" if options.inpaint_weights == SHIPPED_INPAINT_WEIGHTS else options.inpaint_weights,
        inpaint_strategy=options.inpaint_strategy,
        inpaint_self_ensemble=options.inpaint_self_ensemble, inpaint_blend=options.inpaint_blend,
        device=options.device, seg_batch_size=options.seg_batch_size,
        inpaint_batch_size=options.inpaint_batch_size,
        max_batch_bytes=options.max_batch_megabytes << 20, model_copies=options.model_copies,
        seg_cpu_threads=options.seg_cpu_threads or _threads_per_worker_process(options),
        segmenter_identity=segmenter_identity, inpainter_identity=inpainter_identity,
        metadata_run=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"),
        previous_metadata=_previous_metadata(options), expected_images=expected_images)


def _previous_metadata(options: RemoverOptions) -> tuple[str, ...]:
    """The metadata shards in --output now, whose rows --skip_existing keeps for skipped images."""
    if not options.skip_existing or _dry_run(options):
        return ()
    [match] = FileSystems.match([metadata_pattern(output_root(options.output))])
    return tuple(sorted(m.path for m in match.metadata_list))


def _threads_per_worker_process(options) -> int | None:
    """Several local worker processes each taking every CPU for torch oversubscribe the machine
    (each op then waits for its threads): share the CPUs out instead. `--direct_num_workers 0`
    is Beam's one process per CPU (`multiprocessing.cpu_count()`)."""
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return None
    return max(1, usable_cpu_count() // (direct.direct_num_workers or multiprocessing.cpu_count()))


def _validate_segmenter(options, class_min_scores: list[tuple[str, float]]
                        ) -> tuple[str, frozenset[int] | None, dict[int, float]]:
    """Loads the segmenter once here (on CPU) so a bad config or checkpoint fails in seconds, and
    checks --classes and --min_score's classes against the classes it was trained on; returns its
    identity, the class ids --classes selects (None: all) and the score each of --min_score's
    classes needs, by id."""
    from models.segmentation import MaskRCNNSegmenter
    try:
        segmenter = MaskRCNNSegmenter(options.seg_config, options.seg_checkpoint, device="cpu",
                                      allow_remote_config=options.allow_remote_config)
    except Exception as e:  # noqa: BLE001 - every cause is reported the same way, before any work
        raise UsageError(f"segmentation model: {e}") from None
    try:
        class_ids = segmenter.classes.parse(options.classes)
    except ValueError as e:
        raise UsageError(f"--classes: {e}") from None
    try:
        scores_by_id = segmenter.classes.parse_min_scores(class_min_scores)
    except ValueError as e:
        raise UsageError(f"--min_score: {e}") from None
    if class_ids is not None:
        # A supercategory's score holds those of its classes --classes removes, if any
        # (`--classes all,-car --min_score 0.5,vehicle=0.7`).
        unchosen = [name for name, _ in class_min_scores
                    if class_ids.isdisjoint(segmenter.classes.parse_min_scores([(name, 0.0)]))]
        if unchosen:
            raise UsageError(f"--min_score gives {', '.join(unchosen)} a score, but --classes "
                             f"{options.classes} does not remove them")
        scores_by_id = {class_id: score for class_id, score in scores_by_id.items() if class_id in class_ids}
    return segmenter.identity, class_ids, scores_by_id


def _validate_inpainter(uri: str, device: str, strategy: str, self_ensemble: int, blend: str) -> str:
    """Loads the inpainting weights once here, so a bad file fails before any image is read; built
    with the settings the Inpaint stage uses, so the metadata names exactly what ran."""
    from models.runtime import configure_tensorflow
    configure_tensorflow(device)  # before TensorFlow's first use, also in this process
    from models.pconv import Inpainter
    if uri == SHIPPED_INPAINT_WEIGHTS and not os.path.isfile(uri):
        raise UsageError(f"the shipped inpainting checkpoint is missing at {uri}; "
                         "pass --inpaint_weights PATH_OR_URI")
    try:
        return Inpainter.load(uri, strategy=strategy, self_ensemble=self_ensemble, blend=blend,
                              device=device).identity
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"inpainting weights: {e}") from None


def _clear_previous_run(output: str) -> None:
    """Removes what a killed run left half-done (temporary images, stored frames, Beam's temporary
    Parquet files). The previous run's metadata stays until this run's is written (WriteMetadata)."""
    # A match lists files, not folders.
    patterns = [FileSystems.join(staging_folder(output), "**"), FileSystems.join(frames_folder(output), "*")]
    for folder in ("images", MASKS_FOLDER):
        patterns += [FileSystems.join(output, folder, "**", ".*.partial"),
                     FileSystems.join(output, folder, ".*.partial")]
    stale = {m.path for r in FileSystems.match(patterns) for m in r.metadata_list}
    if stale:
        logger.info("removing %d files of a previous run", len(stale))
        FileSystems.delete(sorted(stale))
    _remove_local_folders([staging_folder(output), frames_folder(output)])


def _remove_local_folders(folders: list[str]) -> None:
    """Object stores have no folders; local disks keep them, emptied."""
    for folder in folders:
        if "://" not in folder:
            shutil.rmtree(folder, ignore_errors=True)


def summarize(result) -> dict[str, int]:
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for counter in counters:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (
            counter.committed if counter.committed is not None else counter.attempted)
    return totals


def _print_summary(totals: dict[str, int], config: GraphConfig) -> None:
    keeps = config.keep_largest or config.keep_larger_than is not None
    names = ("images_read", "images_cleaned", "images_unchanged", "images_skipped", "errors",
             "instances_removed") + (("instances_kept",) if keeps else ()) + (
        ("masks_written",) if config.write_masks else ())
    lines = ["", "bg-obj-remover finished"] + [f"  {n:<18} {totals.get(n, 0):>8}" for n in names]
    lines.append(f"  images   -> {FileSystems.join(config.output, 'images')}/")
    if config.write_masks:
        lines.append(f"  masks    -> {FileSystems.join(config.output, MASKS_FOLDER)}/")
    lines.append(f"  metadata -> {metadata_pattern(config.output)}")
    print("\n".join(lines), file=sys.stderr)


def run(argv=None, test_pipeline=None):
    flags = _dash_values_joined(sys.argv[1:] if argv is None else [str(flag) for flag in argv])
    options = RemoverOptions(flags)
    try:
        _reject_unknown_arguments(flags)
        config = resolve_config(options)
    except UsageError as e:
        raise SystemExit(f"bg-obj-remover: error: {e}") from None
    options.view_as(SetupOptions).save_main_session = False
    if not _dry_run(options):
        _clear_previous_run(config.output)
    pipeline = test_pipeline or beam.Pipeline(options=options)
    build_graph(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    if not _dry_run(options):
        _remove_local_folders([frames_folder(config.output), staging_folder(config.output)])  # all written
    try:
        _print_summary(summarize(result), config)
    except Exception as e:  # noqa: BLE001 - some runners report no metrics; the run still succeeded
        logger.info("no metrics summary: %s", e)
    if options.report and not _dry_run(options):
        from pipeline.report import write_report
        report = write_report(config.output, tfrecord_image_key=config.tfrecord_image_key,
                              max_pixels=config.max_image_pixels)
        print(f"  report   -> {report}", file=sys.stderr)
    return result


def main(argv=None):
    """The command line: `run` with the job's own messages shown (`pipeline/logs.py`)."""
    configure_command_line_logging()
    run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
