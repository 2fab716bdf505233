"""Peak RSS of `python -m pipeline.report` over one large photo and over many, each in its own
process: the report decodes in one thread per CPU, so its peak grows with the CPUs, not with the
images nor with the threads that read and write files (4 per CPU, up to 32).

    python benchmarks/report_memory.py [--count 12] [--size 4000 6000]

The output folder is made directly (the inputs copied as `unchanged` images, one metadata row
each), so only the report runs. Last line: `report peak RSS N/1 images: R`: 1.65 for 12 24 MP
photos on 2 CPUs (8 reading threads); 4.46 when every reading thread decoded, as it once did.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from common import PROJECT_ROOT, machine, photo_like, usable_cpu_count


def write_output(folder: str, count: int, height: int, width: int) -> None:
    """`count` JPEG photos, their copies as written `unchanged` images, and the run's metadata."""
    from transforms.metadata import SCHEMA

    inputs, images = os.path.join(folder, "in"), os.path.join(folder, "out", "images")
    for path in (inputs, images, os.path.join(folder, "out", "metadata")):
        os.makedirs(path, exist_ok=True)
    # Made small and scaled up: a child's peak RSS counts its parent's at the fork, so this
    # process stays small.
    photo = Image.fromarray(photo_like(height // 8, width // 8, 0)).resize((width, height))
    rows = []
    for i in range(count):
        source, written = os.path.join(inputs, f"{i:03d}.jpg"), os.path.join(images, f"{i:03d}.jpg")
        photo.rotate(i * 7).save(source, quality=90)
        shutil.copyfile(source, written)
        rows.append({"image_uri": source, "output_uri": written, "status": "unchanged", "error": None,
                     "width": width, "height": height, "instances": [], "removed_fraction": 0.0,
                     "segmenter": "none", "inpainter": "none", "notes": []})
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA),
                   os.path.join(folder, "out", "metadata", "part-0-00000-of-00001.parquet"))


def report_peak_mib(output: str) -> float:
    """Runs the report command in a child process; returns its peak RSS in MiB."""
    child = subprocess.Popen([sys.executable, "-m", "pipeline.report", output], cwd=PROJECT_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"report failed:\n{stderr.decode()[-3000:]}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(4000, 6000), metavar=("H", "W"))
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    height, width = args.size
    print(f"machine: {machine()}")
    os.makedirs(args.workdir, exist_ok=True)
    peaks = {}
    for count in (1, args.count):
        with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
            write_output(folder, count, height, width)
            peaks[count] = report_peak_mib(os.path.join(folder, "out"))
        print(f"{count:>3} photos of {width}x{height}: report peak RSS {peaks[count]:.0f} MiB")
    decoded_mib = height * width * 3 / 2 ** 20
    cpus = usable_cpu_count()
    print(f"one decoded photo: {decoded_mib:.0f} MiB; decoding threads: {cpus}")
    print(f"machine after: {machine()}")
    print(f"report peak RSS {args.count}/1 images: {peaks[args.count] / peaks[1]:.2f}")


if __name__ == "__main__":
    main()
