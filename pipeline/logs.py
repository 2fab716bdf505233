"""The command line's logging: the job's own messages (progress, skipped files, retries) at INFO,
the libraries' at WARNING, including what local worker processes send back."""
from __future__ import annotations

import logging
import os

from apache_beam.portability.api import beam_fn_api_pb2
from google.protobuf import text_format

JOB_PACKAGES = ("pipeline", "transforms", "models")
# Where Beam's local job service re-logs what multi-processing DirectRunner workers log, each
# record a one-line text dump of the worker's LogEntry.
_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_WORKER_FORMAT = "Worker: %s"
# What every local worker process warns at start, harmless here: it received the job's own options
# (the job reads them from its GraphConfig, not from the worker's flags), and has no folder to
# keep state across restarts. Shown, they read as if the job's options were being dropped.
_HARMLESS_WORKER_WARNINGS = ("Discarding unparseable args: ", "No semi_persistent_directory found")


class WorkerLines(logging.Filter):
    """Worker processes' records as the job's own would read: the job's at INFO, the rest from
    WARNING; each shown as its message under its module's name, not as a protobuf dump."""

    def __init__(self):
        super().__init__()
        from models import PROJECT_ROOT
        self._root = PROJECT_ROOT
        self._job_folders = tuple(os.path.join(PROJECT_ROOT, package) + os.sep for package in JOB_PACKAGES)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _WORKER_FORMAT or len(record.args or ()) != 1:
            return record.levelno >= logging.WARNING
        try:
            entry = text_format.Parse(record.args[0], beam_fn_api_pb2.LogEntry())
        except text_format.ParseError:
            return record.levelno >= logging.WARNING
        path = entry.log_location.rsplit(":", 1)[0]
        ours = path.startswith(self._job_folders)
        if not ours and (record.levelno < logging.WARNING
                         or entry.message.startswith(_HARMLESS_WORKER_WARNINGS)):
            return False
        # Beam's Python workers format the message with the default formatter, which already
        # appends the traceback that `trace` repeats; other harnesses may send it in `trace` only.
        trace = entry.trace.rstrip()
        record.msg = entry.message + (f"\n{trace}" if trace and trace not in entry.message else "")
        record.args = ()
        # `<root>/models/pconv/inpainter.py` -> `models.pconv.inpainter`, as the logger is named.
        record.name = (os.path.splitext(os.path.relpath(path, self._root))[0].replace(os.sep, ".")
                       if ours else f"worker {os.path.basename(path)}")
        return True


def configure_command_line_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for package in JOB_PACKAGES:
        logging.getLogger(package).setLevel(logging.INFO)
    workers = logging.getLogger(_WORKER_LOGGER)
    workers.setLevel(logging.INFO)
    # Once: a second filter would take the first one's rewritten records for none of the workers'.
    if not any(isinstance(f, WorkerLines) for f in workers.filters):
        workers.addFilter(WorkerLines())
