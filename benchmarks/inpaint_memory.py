"""Working memory of `Inpainter.inpaint` on big photos, against the photo's size.

    python benchmarks/inpaint_memory.py [--size 4000 6000] [--images 1] [--strategies crop resize]

Peak memory traced by `tracemalloc` (NumPy's and OpenCV's arrays; not TensorFlow's own buffers,
which follow the window canvases, not the photo, nor SuperLU's factors in the blend, bounded by
its unknowns) during one `inpaint` call on 24 MP photos, with the default 2-way ensemble and
Poisson blend, over the decoded photos' bytes. The output copy of each photo is 1x.

Two small holes in opposite corners, with every strategy: `crop` should need little more (target
<= 1.2), and so does `resize` now that it reads the photo a band of rows at a time (1.01x; one
float channel of it at a time, 1.5x). Before the fills were kept on the holes' grid, `crop` took
28x (two float fills of each photo, mirrored copies of it, and a blend over the box spanning
both holes).

Removed people, with `crop`: one 2600x1000 hole (11 % of a 6000x4000 photo) and five
person-sized holes (2000x1000 each, 42 %), scaled with `--size`. Their windows are most of the
photo and the float fill of their pixels alone is 0.4x and 1.7x; target <= 4x: 2.2x and 3.5x
with the shipped model (2 vCPUs, 24 GiB, no GPU), since windows, the blend's reduced boxes and
the output's grid pixels are read a band of rows at a time. With one float channel of a window
or box at a time, 2.6x and 4.2x; before that, 6.5x and 19x.

Last lines: `peak / photo bytes, crop, one 2600x1000 hole: R`, `... five person-sized holes: R`,
`peak / photo bytes, resize: R`, then `peak / photo bytes, crop: R` (two small holes).
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


def one_person(height: int, width: int) -> np.ndarray:
    """2600x1000 in a 6000x4000 photo, in the middle."""
    hole = np.zeros((height, width), bool)
    hole[height * 7 // 40:height * 33 // 40, width * 5 // 12:width * 7 // 12] = True
    return hole


def five_people(height: int, width: int) -> np.ndarray:
    """Five 2000x1000 holes side by side in a 6000x4000 photo, 150 pixels apart."""
    hole = np.zeros((height, width), bool)
    for person in range(5):
        left = width * (3 + 23 * person) // 120
        hole[height // 4:height * 3 // 4, left:left + width // 6] = True
    return hole


LARGE_HOLES = {"one 2600x1000 hole": one_person, "five person-sized holes": five_people}


def traced_peak(inpainter, images: list[np.ndarray], holes: list[np.ndarray]) -> tuple[int, float]:
    """(peak traced bytes, seconds) of one `inpaint` call, after the same call untraced (which
    builds the model for each canvas size)."""
    inpainter.inpaint(images, holes)
    tracemalloc.start()
    started = time.perf_counter()
    inpainter.inpaint(images, holes)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, seconds


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
    photo_bytes = sum(image.nbytes for image in images)
    weights = inpainter_weights(os.path.join(args.workdir, "models"), "shipped")
    print(f"machine: {machine()}")
    print(f"{args.images} photo(s) of {width}x{height}, {photo_bytes / 2 ** 20:.0f} MiB decoded")
    ratios = {}
    cases = [(strategy, "two small holes", two_small_holes) for strategy in args.strategies]
    if "crop" in args.strategies:
        cases = [("crop", name, holes) for name, holes in LARGE_HOLES.items()] + cases
    for strategy, name, make_holes in cases:
        inpainter = Inpainter.load(weights, strategy=strategy)
        peak, seconds = traced_peak(inpainter, images, [make_holes(height, width)] * args.images)
        key = strategy if name == "two small holes" else f"{strategy}, {name}"
        ratios[key] = peak / photo_bytes
        print(f"{strategy:>6}, {name}: peak traced {peak / 2 ** 20:.0f} MiB = {ratios[key]:.2f}x the photos' "
              f"bytes ({seconds:.1f} s)")
    print(f"machine after: {machine()}")
    for key, ratio in ratios.items():
        print(f"peak / photo bytes, {key}: {ratio:.2f}")


if __name__ == "__main__":
    main()
