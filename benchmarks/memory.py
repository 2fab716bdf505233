"""Peak RSS of the whole pipeline on 100 and on 1,000 images, each run in its own process: the job
streams (nothing is held per image once it is written) when the two peaks are within 10%.

    python benchmarks/memory.py [--counts 100 1000] [--size 256 256]

Masks mode (no segmentation model) with the tiny random inpainter, so the run takes about a
minute and what grows with the image count is the pipeline's own holding, not a model's. The
images are large enough (256x256: 192 KiB decoded) that holding each one would show: the growth
per extra image is printed beside the decoded size. Last line: `peak RSS 1000/100 images: R`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import PROJECT_ROOT, inpainter_weights, machine, write_images, write_masks


def peak_rss_mib(argv: list[str]) -> tuple[float, float]:
    """Runs the pipeline CLI in a child process; returns (its peak RSS in MiB, seconds)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, os.path.join(PROJECT_ROOT, "run_pipeline.py"), *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"pipeline failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs=2, default=(100, 1000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    height, width = args.size

    weights = inpainter_weights(os.path.join(args.workdir, "models"), "tiny")
    print(f"machine: {machine()}")
    peaks = {}
    for count in args.counts:
        name = f"{count}-{height}x{width}"
        images = os.path.join(args.workdir, f"images-{name}")
        write_images(images, count, height, width)
        masks = write_masks(os.path.join(args.workdir, f"masks-{name}"), count, height, width)
        with tempfile.TemporaryDirectory(dir=args.workdir) as output:
            peaks[count], seconds = peak_rss_mib([
                "--input", os.path.join(images, "*.png"), "--segmenter", "masks", "--masks", masks,
                "--output", output, "--inpaint_weights", weights])
        print(f"{count:>5} images of {width}x{height}: peak RSS {peaks[count]:.0f} MiB ({seconds:.0f} s)")
    small, large = args.counts
    growth_kib = (peaks[large] - peaks[small]) * 1024 / (large - small)
    print(f"growth per extra image: {growth_kib:.1f} KiB (one decoded image: "
          f"{height * width * 3 / 1024:.0f} KiB)")
    print(f"machine after: {machine()}")
    print(f"peak RSS {large}/{small} images: {peaks[large] / peaks[small]:.2f}")


if __name__ == "__main__":
    main()
