"""JPEG training speed with the in-graph format check that sends other photos (TIFF, HEIC, ...) to
PIL, against tf.io.decode_image alone (what training ran before), in one process.

    python benchmarks/training_decode.py [--photos 50] [--size 320 240] [--rounds 7] [--batches 40]

`training_dataset` batches/s over JPEGs (320x240 by default, 128 px crops, batch 8, generated masks,
encoded bytes cached: decoding every step), and random crops/s without the masks, where decoding
is a larger share. The variants alternate round by round, each round on a dataset built afresh;
the medians of the rounds are compared. Small photos are the worst case: the check costs the same
whatever the photo's size, the decode grows with it.
Last line: `JPEG training batches/s, format check / decode_image alone: R`, target >= 0.97.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import tensorflow as tf
from common import machine, photo_like  # puts the project on the path
from PIL import Image

from models.pconv import data  # noqa: E402  (needs the project on the path)


def decode_image_alone(encoded, channels: int = 3):
    """Training's decode before the format check: TensorFlow's formats only."""
    return tf.io.decode_image(encoded, channels=channels, expand_animations=False)


def training_batches(files: list[str]):
    return iter(data.training_dataset(files, image_size=128, batch_size=8, masks=data.MaskConfig(), cache=True))


def crops(files: list[str]):
    return iter(data.encoded_images(files, shuffle=True, cache=True).map(
        lambda encoded, source: data.random_crop(encoded, tf.constant([1, 2], tf.int64), 128),
        num_parallel_calls=tf.data.AUTOTUNE))


def built_with(decode, make, files):
    """`make(files)`, its graph traced with `decode` as training's photo decode."""
    kept = data.decode_photo
    data.decode_photo = decode
    try:
        return make(files)
    finally:
        data.decode_photo = kept


def rate(iterator, count: int) -> float:
    """Elements/s of `iterator` over `count` elements, after as many to warm it up (caches filled,
    threads started)."""
    for _ in range(count):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"),
                        help="the photos' size: small is the worst case")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per variant, alternating")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per round (8x as many crops)")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.photos} JPEGs of {args.size[0]}x{args.size[1]}")
    variants = {"format check": data.decode_photo, "decode_image alone": decode_image_alone}
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for index in range(args.photos):
            files.append(os.path.join(folder, f"{index:03d}.jpg"))
            Image.fromarray(photo_like(args.size[1], args.size[0], index)).save(files[-1], quality=90)
        rates = {(name, kind): [] for name in variants for kind in ("batches", "crops")}
        for _ in range(args.rounds):  # one dataset alive at a time: two would share the CPUs unevenly
            for name, decode in variants.items():
                rates[name, "batches"].append(rate(built_with(decode, training_batches, files), args.batches))
                rates[name, "crops"].append(rate(built_with(decode, crops, files), 8 * args.batches))
    batches, crop_rates = ({name: statistics.median(rates[name, kind]) for name in variants}
                           for kind in ("batches", "crops"))
    for name in variants:
        print(f"{name:>18}: {batches[name]:7.2f} batches/s  {crop_rates[name]:8.1f} crops/s (no masks)")
    print(f"machine after: {machine()}")
    print(f"JPEG crops/s without masks, format check / decode_image alone: "
          f"{crop_rates['format check'] / crop_rates['decode_image alone']:.3f}")
    print(f"JPEG training batches/s, format check / decode_image alone: "
          f"{batches['format check'] / batches['decode_image alone']:.3f}")


if __name__ == "__main__":
    main()
