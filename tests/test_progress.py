"""The progress a run logs while it works: images done of how many, rate, time left."""
import logging
import sys

import pytest

from pipeline.options import RemoverOptions
from pipeline.run import resolve_config
from tests.pipeline_helpers import read_rows, run_pipeline
from transforms import progress
from transforms.progress import ReportProgress, progress_line
from transforms.records import CLEANED, SKIPPED, ImageInfo


def test_progress_line_gives_share_rate_and_time_left():
    assert progress_line(1, 0, 1000, 0.0) == "1 of 1000 images done (0%)"
    # the rate counts from the first image read: 12 in 30 s
    assert progress_line(12, 0, 1000, 30.0) == (
        "12 of 1000 images done (1%), 0.40 images/s, about 41 min left")
    assert progress_line(500, 3, 1000, 60.0) == (
        "500 of 1000 images done (50%), 3 errors, 8.33 images/s, about 60 s left")
    assert progress_line(2, 1, 100_000, 6.0).endswith("1 error, 0.33 images/s, about 83.3 h left")
    assert progress_line(1000, 0, 1000, 100.0) == "1000 of 1000 images done (100%), 10.00 images/s"


def test_without_a_total_a_process_counts_its_own_share():
    assert progress_line(40, 2, None, 40.0) == "40 images done, 2 errors, 1.00 images/s"
    assert progress_line(1, 0, None, 0.0) == "1 image done"
    assert progress_line(1, 0, 1, 0.0) == "1 of 1 image done (100%)"


def _clock(monkeypatch, start: float) -> list[float]:
    """One settable clock for both of progress's clocks (interval and rate)."""
    clock = [start]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    return clock


def test_a_resumed_runs_rate_counts_only_the_images_it_processes(monkeypatch, caplog):
    """A run resumed with --skip_existing passes thousands of finished images in its first
    seconds: counted in the rate, they made the time left a small fraction of the real one."""
    clock = _clock(monkeypatch, 100.0)
    caplog.set_level(logging.INFO, logger="transforms.progress")
    report = ReportProgress("resumed-run", total=1000, every_seconds=0.0)
    for index in range(900):  # the previous run's images, skipped in the first second
        clock[0] += 0.001
        list(report.process(ImageInfo(f"skipped{index}", "", status=SKIPPED)))
    for index in range(11):  # then one image every 2 s, each read as the one before ends
        info = ImageInfo(f"new{index}", "", status=CLEANED, read_at=clock[0])
        clock[0] += 2.0
        list(report.process(info))
    assert caplog.records[-1].getMessage() == (
        "911 of 1000 images done (91%), 900 skipped, 0.50 images/s, about 3 min left")


def test_a_batchs_images_ending_together_give_the_batchs_rate(monkeypatch, caplog):
    """Four images read at once and ended together by one 6 s batch: counted from the first
    image done, the run's last line said `480.35 images/s`."""
    clock = _clock(monkeypatch, 100.0)
    caplog.set_level(logging.INFO, logger="transforms.progress")
    report = ReportProgress("one-batch", total=4, every_seconds=30.0)
    read = [ImageInfo(f"image{index}", "", read_at=clock[0] + 0.01 * index) for index in range(4)]
    clock[0] += 6.0
    for index, info in enumerate(read):
        clock[0] += 0.002
        list(report.process(info.replace(status=CLEANED)))
    assert caplog.records[-1].getMessage() == "4 of 4 images done (100%), 0.67 images/s"


def test_skipped_images_are_named_and_left_out_of_the_rate():
    assert progress_line(905, 1, 1000, 10.0, skipped=900) == (
        "905 of 1000 images done (90%), 900 skipped, 1 error, 0.50 images/s, about 3 min left")
    assert progress_line(900, 0, 1000, 0.0, skipped=900) == (
        "900 of 1000 images done (90%), 900 skipped")


def _args(masks_corpus, tmp_path, weights, *extra):
    images, masks, _ = masks_corpus
    return ["--input", f"{images}/**", "--segmenter", "masks", "--masks", str(masks),
            "--output", str(tmp_path / "out"), "--inpaint_weights", weights, *extra]


def test_a_local_run_logs_its_progress_as_images_finish(masks_corpus, tmp_path, tiny_inpaint_weights,
                                                        caplog):
    images, _, specs = masks_corpus
    (images / "sub" / "broken.png").write_bytes(b"not an image")
    caplog.set_level(logging.INFO, logger="transforms.progress")
    run_pipeline(_args(masks_corpus, tmp_path, tiny_inpaint_weights))

    total = len(specs) + 1
    assert len(read_rows(tmp_path / "out")) == total
    lines = [r.getMessage() for r in caplog.records if r.name == "transforms.progress"]
    assert lines[0].startswith(f"1 of {total} images done ({100 // total}%)")
    assert lines[-1].startswith(f"{total} of {total} images done (100%), 1 error, ")


@pytest.mark.parametrize("extra, total", [
    ((), 3),
    (("--direct_running_mode", "multi_threading", "--direct_num_workers", "2"), 3),
    # each worker process sees only its share: no total, so no misleading share or time left
    (("--direct_running_mode", "multi_processing", "--direct_num_workers", "2"), None),
])
def test_the_total_is_given_only_where_one_process_sees_every_image(
        masks_corpus, tmp_path, tiny_inpaint_weights, extra, total):
    config = resolve_config(RemoverOptions(_args(masks_corpus, tmp_path, tiny_inpaint_weights, *extra)))
    assert config.expected_images == total


@pytest.mark.parametrize("extra, progress_line", [
    ((), "INFO transforms.progress: 3 of 3 images done (100%)"),
    # Worker processes' lines come back through Beam's job service, as the job's own.
    (("--direct_running_mode", "multi_processing", "--direct_num_workers", "2"),
     "INFO transforms.progress: 1 image done"),
])
def test_the_command_line_shows_the_progress_and_the_summary(masks_corpus, tmp_path, tiny_inpaint_weights,
                                                             extra, progress_line):
    """`python -m pipeline.run` (as `run_pipeline.py` and the console script) runs the job and
    shows the job's own INFO lines: a library's logging defaults would show none."""
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "pipeline.run",
                           *_args(masks_corpus, tmp_path, tiny_inpaint_weights, *extra)],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert progress_line in done.stderr
    assert "bg-obj-remover finished" in done.stderr
    # Beam's own worker chatter stays out: start-up INFO lines, harmless warnings, protobuf dumps.
    for noise in ("Worker: ", "Discarding unparseable args", "semi_persistent_directory"):
        assert noise not in done.stderr


def worker_record(level, message, location, trace=""):
    """A worker's log entry as Beam's local job service re-logs it: a one-line text dump."""
    from apache_beam.portability.api import beam_fn_api_pb2

    entry = beam_fn_api_pb2.LogEntry(message=message, log_location=location, trace=trace)
    return logging.LogRecord("apache_beam.runners.portability.local_job_service", level, "", 0,
                             "Worker: %s", (str(entry).replace("\n", " "),), None)


def test_worker_lines_keep_the_jobs_info_and_others_warnings():
    from models import PROJECT_ROOT
    from pipeline.logs import WorkerLines

    keep = WorkerLines().filter
    job = worker_record(logging.INFO, 'a "quoted"\nline',
                        f"{PROJECT_ROOT}/models/pconv/inpainter.py:12")
    assert keep(job) and job.getMessage() == 'a "quoted"\nline' and job.name == "models.pconv.inpainter"
    assert not keep(worker_record(logging.INFO, "Creating state cache", "/beam/sdk_worker.py:1"))
    beam_warning = worker_record(logging.WARNING, "disk slow", "/beam/sdk_worker.py:1",
                                 trace="Traceback ...\nOSError: slow\n")
    assert keep(beam_warning) and beam_warning.name == "worker sdk_worker.py"
    assert beam_warning.getMessage() == "disk slow\nTraceback ...\nOSError: slow"
    assert not keep(logging.LogRecord("x", logging.INFO, "", 0, "Grpc server started", (), None))


def test_a_worker_line_logged_with_its_exception_shows_the_traceback_once():
    """Beam's worker handler formats the message with the default formatter, which already ends
    with the traceback, and sends the traceback again as the entry's `trace`."""
    import traceback

    from pipeline.logs import WorkerLines

    try:
        raise OSError("disk full")
    except OSError:
        logged = logging.LogRecord("somelib", logging.WARNING, "/lib/somelib.py", 3, "could not cache %s",
                                   ("x",), sys.exc_info())
    trace = "".join(traceback.format_exception(*logged.exc_info))
    record = worker_record(logging.WARNING, logging.Formatter().format(logged), "/lib/somelib.py:3", trace)
    assert WorkerLines().filter(record)
    assert record.getMessage() == f"could not cache x\n{trace.rstrip()}"


def test_configuring_the_command_line_logging_twice_keeps_the_workers_lines(monkeypatch):
    """`pipeline.run.main` called again in one process (a script running several archives): a
    second filter saw the first one's rewritten record as none of the workers' and dropped the
    job's INFO lines."""
    from models import PROJECT_ROOT
    from pipeline.logs import JOB_PACKAGES, _WORKER_LOGGER, configure_command_line_logging

    workers = logging.getLogger(_WORKER_LOGGER)
    monkeypatch.setattr(workers, "filters", [])
    levels = {name: logging.getLogger(name).level for name in (_WORKER_LOGGER, *JOB_PACKAGES)}
    try:
        configure_command_line_logging()
        configure_command_line_logging()
        record = worker_record(logging.INFO, "3 images done", f"{PROJECT_ROOT}/transforms/progress.py:9")
        assert workers.filter(record) and record.getMessage() == "3 images done"
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
