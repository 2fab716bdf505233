"""The same pipeline on other runners: Dataflow translation (dry run) and the portable runner."""
from __future__ import annotations

import fsspec
import pytest

from tests.pipeline_helpers import output_files, read_rows, run_pipeline


def _to_memory_fs(local_path: str, name: str) -> str:
    uri = f"memory://models/{name}"
    with open(local_path, "rb") as src, fsspec.open(uri, "wb") as dst:
        dst.write(src.read())
    return uri


def test_graph_translates_for_dataflow_with_gpu_options(tiny_inpaint_weights, default_segmenter_checkpoint):
    result = run_pipeline([
        "--runner", "DataflowRunner", "--dry_run", "True", "--project", "example-project",
        "--region", "us-central1", "--temp_location", "gs://example-bucket/tmp",
        "--setup_file", "./setup.py", "--machine_type", "g2-standard-8",
        "--sdk_container_image", "us-docker.pkg.dev/example-project/images/bg-obj-remover:0.1.0",
        "--dataflow_service_options", "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
        "--experiments", "no_use_multiple_sdk_containers",
        "--input", "gs://example-bucket/photos/**", "--output", "gs://example-bucket/cleaned",
        "--seg_config", "mask-rcnn_r50_fpn_1x_coco",
        "--seg_checkpoint", _to_memory_fs(default_segmenter_checkpoint, "segmenter.pth"),
        "--inpaint_weights", _to_memory_fs(tiny_inpaint_weights, "pconv.keras"),
        "--device", "cuda", "--model_copies", "1", "--write_masks",
        "--report"])  # a dry run writes no report
    proto = result.job.proto
    assert proto.type.name == "JOB_TYPE_BATCH"
    transforms = {t.unique_name for t in result.job.proto_pipeline.components.transforms.values()}
    for stage in ("ListImages", "Decode", "Segment", "SelectAndDilate", "Inpaint", "WriteImages",
                  "WriteMasks", "WriteMetadata"):
        assert any(name.startswith(stage) or f"/{stage}" in name for name in transforms), stage
    environment = next(iter(result.job.proto_pipeline.components.environments.values()))
    assert b"bg-obj-remover:0.1.0" in environment.payload


@pytest.mark.parametrize("flag,local", [
    ("--inpaint_weights", "{weights}"), ("--inpaint_weights", "file://{weights}"),
    ("--input", "{folder}/*.jpg"), ("--output", "{folder}/out"), ("--masks", "{folder}")])
def test_local_paths_are_refused_for_dataflow(tiny_inpaint_weights, tmp_path, flag, local):
    """Workers cannot read or write the launcher's disk: images and masks would all be error rows,
    outputs would be lost on the workers' disks."""
    paths = {"--input": "gs://b/in/*", "--output": "gs://b/out", "--masks": "gs://b/masks",
             "--inpaint_weights": "gs://b/models/pconv.keras"}
    paths[flag] = local.format(weights=tiny_inpaint_weights, folder=tmp_path)
    with pytest.raises(SystemExit, match=f"cannot read or write files on this machine: .*{flag}"):
        run_pipeline(["--runner", "DataflowRunner", "--dry_run", "True", "--project", "p",
                      "--region", "us-central1", "--temp_location", "gs://b/tmp", "--segmenter", "masks",
                      *[word for flag_and_path in paths.items() for word in flag_and_path]])


def test_portable_runner_gives_the_same_outputs_as_direct(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    common = ["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
              "--inpaint_weights", tiny_inpaint_weights]
    run_pipeline(common + ["--output", tmp_path / "direct"])
    from pipeline.run import run
    run(["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "LOOPBACK",
         "--output", str(tmp_path / "portable")] + [str(a) for a in common])
    assert output_files(tmp_path / "portable") == output_files(tmp_path / "direct")

    def comparable(rows):
        return {uri: {k: v for k, v in row.items() if k != "output_uri"} for uri, row in rows.items()}
    assert comparable(read_rows(tmp_path / "portable")) == comparable(read_rows(tmp_path / "direct"))


def test_options_of_a_runner_beam_imports_late_are_accepted():
    """RenderRunner declares --render_output in its own module; a misspelling still stops."""
    from pipeline.run import UsageError, _reject_unknown_arguments

    runner = ["--runner", "apache_beam.runners.render.RenderRunner"]
    _reject_unknown_arguments(runner + ["--render_output", "graph.dot"])
    with pytest.raises(UsageError, match="did you mean --render_output"):
        _reject_unknown_arguments(runner + ["--render_outptu", "graph.dot"])



def test_local_runners_by_any_name_ignore_dry_run_so_the_launcher_runs_for_real(
        masks_corpus, tmp_path, tiny_inpaint_weights):
    """DirectRunner runs the job despite --dry_run: --skip_existing must still keep earlier rows."""
    from pipeline.run import run

    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    common = ["--input", f"{images}/**", "--segmenter", "masks", "--masks", str(masks),
              "--output", str(output), "--inpaint_weights", tiny_inpaint_weights]
    run(["--runner", "apache_beam.runners.direct.direct_runner.DirectRunner"] + common)
    first = read_rows(output)
    run(["--runner", "apache_beam.runners.direct.direct_runner.DirectRunner", "--dry_run", "True",
         "--skip_existing"] + common)
    rows = read_rows(output)
    assert len(rows) == len(specs)
    assert all(row["width"] == first[uri]["width"] and row["notes"][-1].startswith("kept from")
               for uri, row in rows.items())


def test_a_runner_that_runs_nothing_takes_local_model_files(tiny_inpaint_weights):
    from pipeline.options import RemoverOptions
    from pipeline.run import _require_remote_paths

    _require_remote_paths(RemoverOptions([
        "--runner", "apache_beam.runners.render.RenderRunner", "--segmenter", "masks",
        "--inpaint_weights", tiny_inpaint_weights]))


def _recording_limits(monkeypatch) -> list:
    """The `limits` of each listing the launcher asks Beam for (the listing itself is real)."""
    from apache_beam.io.filesystems import FileSystems

    limits, real_match = [], FileSystems.match
    def match(patterns, limits_=None):
        limits.append(limits_)
        return real_match(patterns, limits_)
    monkeypatch.setattr(FileSystems, "match", staticmethod(match))
    return limits


def test_a_distributed_jobs_launcher_lists_only_until_it_finds_an_input(tmp_path, monkeypatch):
    """Over an archive of millions of objects, the job lists them itself: the launcher only
    needs one input, and lists the rest only when the first files listed are no input."""
    import pipeline.run
    from pipeline.options import RemoverOptions

    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(20):
        (photos / f"{index:02d}.png").write_bytes(b"")
    (photos / "only.jpg").write_bytes(b"")
    monkeypatch.setattr(pipeline.run, "LISTING_PROBE", 1)
    limits = _recording_limits(monkeypatch)
    portable = ["--runner", "PortableRunner", "--output", str(tmp_path / "out")]

    assert pipeline.run._require_matching_input(
        RemoverOptions(portable + ["--input", f"{photos}/**"]), count=False) == 1
    assert limits == [[1]]
    # the one listed file may not be the jpg: the rest is then listed too
    assert pipeline.run._require_matching_input(
        RemoverOptions(portable + ["--input", f"{photos}/**/*.jpg"]), count=False) == 1
    assert pipeline.run._require_matching_input(
        RemoverOptions(portable + ["--input", f"{photos}/**"])) == 21
    assert limits[-1] == [None]
    with pytest.raises(pipeline.run.UsageError, match="no file matches --input"):
        pipeline.run._require_matching_input(
            RemoverOptions(portable + ["--input", f"{photos}/**/*.gif"]), count=False)


def test_the_shipped_inpainting_checkpoint_needs_no_upload_for_dataflow():
    """It is installed with the package on every worker (--setup_file, the image): the default
    --inpaint_weights is the workers' own copy, not a path on the launcher's disk."""
    from models import SHIPPED_INPAINT_WEIGHTS
    from models.uri import sha256_of
    from transforms.inpaint import InpaintModelHandler

    run_pipeline(["--runner", "DataflowRunner", "--dry_run", "True", "--project", "example-project",
                  "--region", "us-central1", "--temp_location", "gs://example-bucket/tmp",
                  "--segmenter", "masks", "--input", "gs://example-bucket/in/*",
                  "--output", "gs://example-bucket/out", "--masks", "gs://example-bucket/masks"])
    # What the graph's handler gets for the default: "" -> the checkpoint where its process has it.
    loaded = InpaintModelHandler("", self_ensemble=1).load_model()
    assert loaded.identity.startswith(f"pconv_unet_256-256@{sha256_of(SHIPPED_INPAINT_WEIGHTS)[:12]}")


@pytest.mark.parametrize("seg_config,refused", [
    ("mask-rcnn_r50_fpn_1x_coco", False), ("mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", False),
    ("configs/my_config.py", True), ("gs://b/models/my_config.py", False)])
def test_only_a_local_seg_config_is_refused_for_dataflow(seg_config, refused):
    """mmdet's packaged configs, by name or `mmdet::` path, are installed on every worker."""
    from pipeline.options import RemoverOptions
    from pipeline.run import UsageError, _require_remote_paths

    options = RemoverOptions(["--runner", "DataflowRunner", "--input", "gs://b/in/*", "--output", "gs://b/out",
                              "--seg_checkpoint", "gs://b/models/w.pth", "--seg_config", seg_config])
    if refused:
        with pytest.raises(UsageError, match=f"upload --seg_config {seg_config}"):
            _require_remote_paths(options)
    else:
        _require_remote_paths(options)


@pytest.mark.parametrize("workers, threads", [("2", 4), ("0", 1), ("16", 1)])
def test_local_worker_processes_share_the_cpus_out_for_torch(monkeypatch, workers, threads):
    """`--direct_num_workers 0` is Beam's one process per CPU: each took every CPU for torch."""
    import multiprocessing

    import pipeline.run
    from pipeline.options import RemoverOptions

    monkeypatch.setattr(pipeline.run, "usable_cpu_count", lambda: 8)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 8)
    options = RemoverOptions(["--direct_running_mode", "multi_processing", "--direct_num_workers", workers])
    assert pipeline.run._threads_per_worker_process(options) == threads
    assert pipeline.run._threads_per_worker_process(RemoverOptions(["--direct_num_workers", workers])) is None


@pytest.mark.parametrize("runner, here", [
    (["--runner", "PortableRunner", "--job_endpoint", "flink-jobserver:8099"], False),
    (["--runner", "PortableRunner", "--job_endpoint", "embed"], False),  # Docker containers
    (["--runner", "PortableRunner", "--job_endpoint", "flink-jobserver:8099",
      "--environment_type", "LOOPBACK"], True),
    (["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "PROCESS"], True),
    (["--runner", "FlinkRunner"], False), (["--runner", "dataflow"], False),
    (["--runner", "direct"], True), (["--runner", "prism"], True), (["--runner", "FnApiRunner"], True)])
def test_local_files_and_the_launchers_gpu_serve_only_runners_whose_code_runs_here(runner, here):
    """A portable runner's workers behind a remote job endpoint see neither the launcher's disk
    nor its GPU: `--device cuda` is not checked on a launcher without one, local paths are refused."""
    from pipeline.options import RemoverOptions
    from pipeline.run import UsageError, _require_remote_paths, _require_usable_device

    options = RemoverOptions(runner + ["--segmenter", "masks", "--masks", "/home/me/masks",
                                       "--input", "gs://b/in/*", "--output", "gs://b/out"])
    if here:
        _require_remote_paths(options)
    else:
        with pytest.raises(UsageError, match="upload --masks /home/me/masks"):
            _require_remote_paths(options)
        options = RemoverOptions(runner + ["--segmenter", "masks", "--device", "cuda"])
        assert _require_usable_device(options) is None  # no GPU here, none needed


@pytest.mark.parametrize("runner, dry", [
    ("DataflowRunner", True), ("dataflow", True), ("TestDataflowRunner", True),
    ("FlinkRunner", False), ("PortableRunner", False), ("direct", False)])
def test_only_dataflow_skips_the_work_of_a_dry_run(runner, dry):
    """Other runners run the job despite --dry_run: it needs its input checked, the previous
    run's leftovers cleared and its report written."""
    from pipeline.options import RemoverOptions
    from pipeline.run import _dry_run

    assert _dry_run(RemoverOptions(["--runner", runner, "--dry_run", "True"])) is dry


GPU_WORKERS = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"


@pytest.mark.parametrize("flags, refused", [
    ([], "get no GPU without --dataflow_service_options"),
    (["--dataflow_service_options", "worker_accelerator=type:nvidia-l4;count:1"], "install-nvidia-driver"),
    (["--dataflow_service_options", GPU_WORKERS], None),
    (["--experiments", GPU_WORKERS], None),  # the older way to ask
    (["--resource_hints", "accelerator=type:nvidia-l4;count:1;install-nvidia-driver"], None),
    (["--resource_hints", "accelerator=type:nvidia-l4;count:1"], "install-nvidia-driver")])
def test_a_cuda_job_on_dataflow_needs_workers_with_a_gpu_and_its_driver(flags, refused):
    """Without them every image fails on the workers, after the job's start-up is paid for."""
    from pipeline.options import RemoverOptions
    from pipeline.run import UsageError, _require_gpus_on_dataflow_workers

    options = RemoverOptions(["--runner", "DataflowRunner", "--device", "cuda", "--model_copies", "1"] + flags)
    if refused:
        with pytest.raises(UsageError, match=refused):
            _require_gpus_on_dataflow_workers(options)
    else:
        _require_gpus_on_dataflow_workers(options)
    _require_gpus_on_dataflow_workers(RemoverOptions(["--runner", "DataflowRunner"] + flags))  # cpu


@pytest.mark.parametrize("flags, warned", [
    ([], True), (["--model_copies", "1"], False),
    (["--experiments", "no_use_multiple_sdk_containers"], False)])
def test_a_cuda_job_on_dataflow_without_one_model_copy_per_worker_is_warned_of(flags, warned, caplog):
    from pipeline.options import RemoverOptions
    from pipeline.run import _require_gpus_on_dataflow_workers

    _require_gpus_on_dataflow_workers(RemoverOptions(
        ["--runner", "DataflowRunner", "--device", "cuda", "--dataflow_service_options", GPU_WORKERS] + flags))
    assert ("loads its own copy of both models" in caplog.text) is warned
