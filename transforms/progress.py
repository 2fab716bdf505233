"""Progress in the log while a job runs: images done, rate, time left.

A local run over an archive takes hours (Mask R-CNN: seconds per photo on a CPU) and Beam says
nothing until the end; Dataflow shows the job's counters in its console, but a terminal shows only
the log. Every branch that ends an image (written, skipped, failed) passes its infos through
`ReportProgress`; one tally per process and run adds them up across branches and threads.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import apache_beam as beam

from transforms.records import ERROR, SKIPPED, skip_type_inference

logger = logging.getLogger(__name__)


@dataclass
class _Tally:
    done: int = 0
    errors: int = 0
    skipped: int = 0
    first_read_at: float = 0.0  # wall clock: images may be read in another process
    logged_at: float = 0.0


_tallies: dict[str, _Tally] = {}
_lock = threading.Lock()


def progress_line(done: int, errors: int, total: int | None, seconds: float, skipped: int = 0) -> str:
    """`120 of 1000 images done (12%), 3 errors, 0.33 images/s, about 44 min left`; without a
    total (each process of a multi-process run sees its own share) no share and no time left.
    The rate counts the images processed (`done` less the `skipped` ones, whose outputs a
    previous run wrote, so a resumed run's thousands of instant skips do not skew it) in the
    `seconds` since the first of them was read. Counted from the first image done instead, a
    batch's images, which end together, made it up to a batch size too fast (`4 of 4 images
    done, 480 images/s` for four images in 6 s)."""
    images = "image" if (total or done) == 1 else "images"
    text = (f"{done} of {total} {images} done ({100 * done // total}%)" if total
            else f"{done} {images} done")
    if skipped:
        text += f", {skipped} skipped"
    if errors:
        text += f", {errors} error{'s' if errors > 1 else ''}"
    processed = done - skipped
    if processed > 1 and seconds > 0:
        rate = processed / seconds
        text += f", {rate:.2f} images/s"
        if total and total > done:
            text += f", about {_duration((total - done) / rate)} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@skip_type_inference
class ReportProgress(beam.DoFn):
    """Passes `ImageInfo`s through, logging the run's progress in this process at its first image,
    then at most every `every_seconds`, and at its last. `total`: the images the whole run reads,
    when this process sees all of them."""

    def __init__(self, run: str, total: int | None, every_seconds: float = 30.0):
        self._run = run
        self._total = total
        self._every_seconds = every_seconds

    def process(self, info):
        now = time.monotonic()
        with _lock:
            tally = _tallies.setdefault(self._run, _Tally())
            tally.done += 1
            tally.errors += info.status == ERROR
            tally.skipped += info.status == SKIPPED
            if info.read_at and info.status != SKIPPED:
                tally.first_read_at = min(tally.first_read_at or info.read_at, info.read_at)
            due = (tally.done == 1 or tally.done == self._total
                   or now - tally.logged_at >= self._every_seconds)
            if due:
                tally.logged_at = now
                seconds = time.time() - tally.first_read_at if tally.first_read_at else 0.0
                line = progress_line(tally.done, tally.errors, self._total, seconds, tally.skipped)
        if due:
            logger.info(line)
        yield info
