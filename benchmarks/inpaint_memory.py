"""Working memory of `Inpainter.inpaint` on big photos with small holes, against the photo's size.

    python benchmarks/inpaint_memory.py [--size 4000 6000] [--images 1] [--strategies crop resize]

Peak memory traced by `tracemalloc` (NumPy's and OpenCV's arrays; not TensorFlow's own buffers,
which follow the window canvases, not the photo) during one `inpaint` call on 24 MP photos with
two small holes each, in opposite corners, with the default 2-way ensemble and Poisson blend,
over the decoded photos' bytes. The output copy of each photo is 1x; `crop` should need little
more (target <= 1.2), `resize` one float copy of a photo at a time (4x). Before the fills were
kept on the holes' grid, `crop` took 28x (two float fills of each photo, mirrored copies of it,
and a blend over the box spanning both holes). Last line: `peak / photo bytes, crop: R`.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc

import numpy as np

from common import inpainter_weights, machine, photo_like


def two_small_holes(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), bool)
    hole[37:90, 51:130] = True
    hole[height - 140:height - 61, width - 170:width - 97] = True
    return hole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(4000, 6000), metavar=("H", "W"))
    parser.add_argument("--images", type=int, default=1, help="photos per inpaint call")
    parser.add_argument("--strategies", nargs="+", default=["resize", "crop"], choices=["crop", "resize"])
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bg-obj-remover-bench"))
    args = parser.parse_args()
    from models.pconv import Inpainter

    height, width = args.size
    images = [photo_like(height, width, seed) for seed in range(args.images)]
    holes = [two_small_holes(height, width)] * args.images
    photo_bytes = sum(image.nbytes for image in images)
    weights = inpainter_weights(os.path.join(args.workdir, "models"), "shipped")
    print(f"machine: {machine()}")
    print(f"{args.images} photo(s) of {width}x{height}, {photo_bytes / 2 ** 20:.0f} MiB decoded, two small holes each")
    ratios = {}
    for strategy in args.strategies:
        inpainter = Inpainter.load(weights, strategy=strategy)
        inpainter.inpaint([images[0][:300, :300]], [holes[0][:300, :300]])  # builds the model's canvas first
        tracemalloc.start()
        started = time.perf_counter()
        inpainter.inpaint(images, holes)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ratios[strategy] = peak / photo_bytes
        print(f"{strategy:>6}: peak traced {peak / 2 ** 20:.0f} MiB = {ratios[strategy]:.2f}x the photos' bytes "
              f"({seconds:.1f} s)")
    print(f"machine after: {machine()}")
    for strategy, ratio in ratios.items():
        print(f"peak / photo bytes, {strategy}: {ratio:.2f}")


if __name__ == "__main__":
    main()
