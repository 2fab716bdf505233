"""Forward time of the PConv U-Net (depth 8, full width by default) per input size, on this machine.

    python benchmarks/pconv_forward.py [--sizes 256 512] [--batch 1] [--repeats 5]
    KERAS_BACKEND=torch python benchmarks/pconv_forward.py   # the same on the torch backend
    KERAS_BACKEND=torch python benchmarks/pconv_forward.py --sizes 512 --batch 8 --widths 1 0.01

Times `predict_on_batch` (what the Inpainter calls) after one warm-up call that pays for tracing,
and prints each row's time relative to the first, all measured in this one run. A width of 0.01
leaves almost no arithmetic (1 to 5 channels a layer), so its time is what one call costs besides
the convolutions: the backend's dispatch of every op (Keras on torch runs eagerly; on TensorFlow
`predict_on_batch` runs a traced graph), the copies to and from the device, the mask work.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_forward(size: int, width: float, batch: int, repeats: int) -> dict:
    import numpy as np

    from models.pconv import build_pconv_unet

    started = time.perf_counter()
    model = build_pconv_unet(image_size=size, width_multiplier=width)
    built = time.perf_counter() - started
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    mask = np.ones_like(image)
    mask[:, size // 4:size // 2, size // 3:2 * size // 3] = 0.0
    started = time.perf_counter()
    model.predict_on_batch([image, mask])
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch([image, mask])
        times.append(time.perf_counter() - started)
    return {"size": size, "width": width, "params": model.count_params(), "build_s": built, "first_s": first,
            "median_s": statistics.median(times), "min_s": min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0],
                        help="width multipliers (0.01: the per-call cost without the arithmetic)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras

    from models.runtime import usable_cpu_count
    print(f"backend {keras.backend.backend()}, {usable_cpu_count()} usable CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, batch {args.batch}, {args.repeats} timed runs")
    results = [time_forward(size, width, args.batch, args.repeats) for size in args.sizes for width in args.widths]
    baseline = results[0]["median_s"]
    print(f"{'size':>6} {'width':>6} {'params':>11} {'build s':>8} {'first s':>8} {'median s':>9} {'min s':>7} "
          f"{'ms/image':>9} {'x first row':>11}")
    for r in results:
        print(f"{r['size']:>6} {r['width']:>6g} {r['params']:>11,} {r['build_s']:>8.2f} {r['first_s']:>8.2f} "
              f"{r['median_s']:>9.3f} {r['min_s']:>7.3f} {1000 * r['median_s'] / args.batch:>9.0f} "
              f"{r['median_s'] / baseline:>11.2f}")


if __name__ == "__main__":
    main()
