"""Scores the inpainter against OpenCV's TELEA and NS per hole-ratio band:
`python -m models.pconv.evaluate --help`.

Each photo is paired with one mask from every band folder (seeded, so reruns score the same
pairs). Masks are resized to the photo (area resampling, then >= 0.5 is a hole), not the other way
round: the photos keep their native pixels, so scores are not flattered by upscaling blur. The
model runs through `Inpainter`, exactly as the pipeline uses it. Every method keeps the known
pixels, so the scores are those of the composite against the original photo.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np

from models import PROJECT_ROOT, SHIPPED_INPAINT_WEIGHTS
from models.pconv.inpainter import BLENDS, DEFAULT_BLEND, DEFAULT_SELF_ENSEMBLE
from models.pconv.metrics import (HOLE_RATIO_BANDS, BandedScores, band_name, band_of_ratio, format_table, l1_error,
                                  psnr, ssim, write_csv)
from models.pconv.photo_files import PHOTO_EXTENSIONS, pil_decoded
from models.uri import ModelFileError, fetch

logger = logging.getLogger("models.pconv.evaluate")

DEFAULT_WEIGHTS = SHIPPED_INPAINT_WEIGHTS
# The development checkout's evaluation data (see README), found from any working directory.
DEFAULT_IMAGES = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data", "bsds500", "test"))
DEFAULT_MASKS = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data", "masks"))
METHODS = ("pconv", "telea", "ns")
METHOD_TITLES = {"pconv": "PConvUNet", "telea": "TELEA", "ns": "NS"}
BAND_FOLDERS = tuple(band_name(band) for band in HOLE_RATIO_BANDS)
SSIM_WINDOW = 7  # SSIM's window: a smaller photo has no SSIM


@dataclass(frozen=True)
class Pair:
    image: str
    mask: str
    band: str


def _image_files(folder: str) -> list[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(PHOTO_EXTENSIONS))


def mask_groups(mask_dir: str, hole_color: str = "white") -> dict[str, list[str]]:
    """Mask files by band: one group per band subfolder (the `00-10`, ..., `50-60` layout), or
    else every mask below `mask_dir` (e.g. NVIDIA's download, mask/testing_mask_dataset/*.png)
    grouped by its measured hole ratio."""
    if not os.path.isdir(mask_dir):
        raise FileNotFoundError(f"mask folder not found: {mask_dir}")
    groups = {name: _image_files(os.path.join(mask_dir, name)) for name in BAND_FOLDERS
              if os.path.isdir(os.path.join(mask_dir, name))}
    groups = {name: files for name, files in groups.items() if files}
    if not groups:
        found = sorted(os.path.join(folder, name) for folder, _, names in os.walk(mask_dir) for name in names
                       if name.lower().endswith(PHOTO_EXTENSIONS))
        beyond_bands = []
        for path in found:
            try:
                band = band_of_ratio(float(read_hole(path, hole_color).mean()))
            except ValueError as error:
                logger.warning("skipping unreadable mask: %s", error)
                continue
            if band is None:
                beyond_bands.append(path)
            else:
                groups.setdefault(band_name(band), []).append(path)
        if beyond_bands:
            logger.warning("skipping %d masks in %s with holes over %s of the image, beyond the last band "
                           "(e.g. %s)", len(beyond_bands), mask_dir, f"{HOLE_RATIO_BANDS[-1][1]:.0%}", beyond_bands[0])
        groups = dict(sorted(groups.items()))
    if not groups:
        raise FileNotFoundError(f"no usable mask images in {mask_dir} or its subfolders (see the warnings above)")
    return groups


def pair_images_with_masks(images: list[str], groups: dict[str, list[str]], seed: int) -> list[Pair]:
    """Every image with one mask of every band; masks drawn by a seeded permutation per band
    (reused cyclically when there are more images than masks)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for band, masks in groups.items():
        order = rng.permutation(len(masks))
        pairs.extend(Pair(image, masks[order[i % len(masks)]], band) for i, image in enumerate(images))
    return pairs


def read_image(path: str, channels: int = 3) -> np.ndarray:
    """uint8 (height, width, channels) of a photo or mask file in any format training reads
    (TIFF, HEIC, AVIF, ... too), decoded as training's PIL decode does; ValueError saying why not."""
    try:
        with open(path, "rb") as f:
            return pil_decoded(f.read(), channels)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None


def read_hole(path: str, hole_color: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Bool hole mask of `path`, resized to `shape` (height, width) by area resampling."""
    grey = read_image(path, channels=1)[:, :, 0]
    hole = (grey > 127) if hole_color == "white" else (grey <= 127)
    if shape is not None and hole.shape != tuple(shape):
        hole = cv2.resize(hole.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) >= 0.5
    return hole


def _opencv_method(flag: int, radius: float):
    def inpaint(images: list[np.ndarray], holes: list[np.ndarray]) -> list[np.ndarray]:
        return [cv2.inpaint(image, hole.astype(np.uint8) * 255, radius, flag) for image, hole in zip(images, holes)]

    return inpaint


def build_methods(names: list[str], weights: str, strategy: str, batch_size: int, radius: float,
                  self_ensemble: int = DEFAULT_SELF_ENSEMBLE, blend: str = DEFAULT_BLEND):
    """{name: inpaint(images, holes) -> images} plus a description of each (model identity)."""
    methods, described = {}, {}
    for name in names:
        if name == "pconv":
            from models.pconv import Inpainter

            if "://" not in weights and not os.path.isfile(weights):
                raise SystemExit(f"no inpainting model at {weights}: pass --weights PATH (e.g. a training "
                                 "run's model.keras) or --methods telea ns")
            try:
                inpainter = Inpainter.load(weights, strategy=strategy, batch_size=batch_size,
                                           self_ensemble=self_ensemble, blend=blend)
            except ModelFileError as error:  # no such file behind a URI, not a .keras model, ...
                raise SystemExit(f"--weights: {error}") from None
            methods[name] = inpainter.inpaint
            described[name] = {"model": inpainter.identity, "weights": weights, "strategy": strategy,
                               "self_ensemble": self_ensemble, "blend": blend, "training": _training_metadata(weights)}
        else:
            flag = cv2.INPAINT_TELEA if name == "telea" else cv2.INPAINT_NS
            methods[name] = _opencv_method(flag, radius)
            described[name] = {"opencv": f"cv2.inpaint {name.upper()}", "radius": radius}
    return methods, described


def _training_metadata(weights: str) -> dict | None:
    """The VGG flag and steps a checkpoint was trained with, when train.py stored them in it."""
    from models.pconv.train import read_training_metadata

    metadata = read_training_metadata(fetch(weights).path)  # a URI's: the copy Inpainter.load cached
    if metadata is None:
        return None
    return {"vgg": metadata.get("loss", {}).get("vgg"), "steps": metadata.get("steps"),
            "image_size": metadata.get("config", {}).get("image_size")}


def usable_images(paths: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The photos that can be scored, and those left out by reason (unreadable; smaller than the
    SSIM window), each with a warning: one bad photo must not abort a long evaluation."""
    usable, left_out = [], {"unreadable": [], "smaller_than_ssim_window": []}
    for path in paths:
        try:
            image = read_image(path)
        except ValueError as error:
            logger.warning("skipping unreadable photo: %s", error)
            left_out["unreadable"].append(path)
            continue
        if min(image.shape[:2]) < SSIM_WINDOW:
            logger.warning("skipping %s: %dx%d is smaller than SSIM's %d px window", path,
                           image.shape[1], image.shape[0], SSIM_WINDOW)
            left_out["smaller_than_ssim_window"].append(path)
        else:
            usable.append(path)
    return usable, left_out


def evaluate(pairs: list[Pair], methods: dict, hole_color: str, chunk: int = 8):
    """Runs every method on every pair; returns (per-band rows, per-pair rows, seconds per method,
    pairs skipped by reason: their mask is unreadable, or has no hole pixels at the photo's size)."""
    scores = {name: BandedScores() for name in methods}
    per_pair, seconds = [], dict.fromkeys(methods, 0.0)
    skipped = {"pairs_with_unreadable_masks": 0, "pairs_without_hole_pixels": 0}
    for start in range(0, len(pairs), chunk):
        batch, images, holes = [], [], []
        for pair in pairs[start:start + chunk]:
            image = read_image(pair.image)
            try:
                hole = read_hole(pair.mask, hole_color, image.shape[:2])
            except ValueError as error:  # one bad mask must not abort a long evaluation either
                logger.warning("skipping the pair of %s: unreadable mask: %s", os.path.basename(pair.image), error)
                skipped["pairs_with_unreadable_masks"] += 1
                continue
            if not hole.any():  # nothing to fill: PSNR would be infinite
                skipped["pairs_without_hole_pixels"] += 1
                continue
            batch.append(pair)
            images.append(image)
            holes.append(hole)
        if not batch:
            continue
        for name, inpaint in methods.items():
            began = time.perf_counter()
            outputs = inpaint(images, holes)
            seconds[name] += time.perf_counter() - began
            for pair, image, hole, output in zip(batch, images, holes, outputs):
                truth, filled = image.astype(np.float32) / 255.0, output.astype(np.float32) / 255.0
                scores[name].add(pair.band, filled, truth)
                per_pair.append({"method": name, "band": pair.band, "image": os.path.basename(pair.image),
                                 "mask": os.path.relpath(pair.mask, os.path.dirname(os.path.dirname(pair.mask))),
                                 "hole_ratio": round(float(hole.mean()), 5),
                                 "l1": float(l1_error(filled, truth)[0]), "psnr": float(psnr(filled, truth)[0]),
                                 "ssim": float(ssim(filled, truth)[0])})
        logger.info("%d/%d pairs", min(start + chunk, len(pairs)), len(pairs))
    if skipped["pairs_without_hole_pixels"]:
        logger.warning("skipped %d of %d pairs whose mask has no hole pixels at the photo's size",
                       skipped["pairs_without_hole_pixels"], len(pairs))
    rows = [{"band": row["band"], "method": name, **{k: row[k] for k in ("count", "l1", "psnr", "ssim")}}
            for name, banded in scores.items() for row in banded.rows()]
    rows.sort(key=lambda r: (r["band"], list(methods).index(r["method"])))
    return rows, per_pair, seconds, skipped


def _finite_or_none(value):
    """`value` with every inf or nan float replaced by None, so summary.json stays standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def markdown_table(rows: list[dict]) -> str:
    """PSNR and SSIM per band and method as a Markdown table, the best of each band in bold
    (compared as printed), the form the README and the model card show."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    by = {(row["band"], row["method"]): row for row in rows}
    metrics = (("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"))
    lines = ["| band | " + " | ".join(f"{METHOD_TITLES.get(m, m)} {title}" for _, title, _ in metrics
                                      for m in methods) + " |",
             "|---" * (1 + len(methods) * len(metrics)) + "|"]
    for band in sorted({row["band"] for row in rows}):
        cells = [f"{band} %"]
        for key, _, form in metrics:
            printed = {m: form.format(by[band, m][key]) for m in methods if (band, m) in by}
            best = max(float(value) for value in printed.values())
            cells += [f"**{printed[m]}**" if float(printed[m]) == best else printed[m]
                      for m in methods if m in printed]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bands_won(rows: list[dict], method: str = "pconv") -> list[str]:
    """Bands where `method` beats every other method on both PSNR and SSIM."""
    won = []
    for band in sorted({row["band"] for row in rows}):
        ours = next((r for r in rows if r["band"] == band and r["method"] == method), None)
        others = [r for r in rows if r["band"] == band and r["method"] != method]
        if ours and others and all(ours["psnr"] > r["psnr"] and ours["ssim"] > r["ssim"] for r in others):
            won.append(band)
    return won


def paired_gains(per_pair: list[dict], method: str = "pconv") -> list[dict]:
    """Per band and other method, `method`'s PSNR and SSIM gain over the same photo-mask pairs: the
    mean, its standard error and the share of pairs it wins. A band mean can hide a method that
    wins on average by a few lucky photos; the paired view shows how consistent the gain is."""
    scores = {}
    for row in per_pair:
        scores.setdefault((row["band"], row["image"], row["mask"]), {})[row["method"]] = row
    rows = []
    others = list(dict.fromkeys(r["method"] for r in per_pair if r["method"] != method))
    for band in sorted({key[0] for key in scores}):
        for other in others:
            pairs = [by for key, by in scores.items() if key[0] == band and method in by and other in by]
            if not pairs:
                continue
            row = {"band": band, "versus": other, "pairs": len(pairs)}
            for metric in ("psnr", "ssim"):
                gain = np.array([by[method][metric] - by[other][metric] for by in pairs])
                row[f"{metric}_gain"] = float(gain.mean())
                row[f"{metric}_gain_se"] = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
                row[f"{metric}_pairs_won"] = float(np.mean(gain > 0))
            rows.append(row)
    return rows


def plot_bands(rows: list[dict], path: str) -> None:
    """L1, PSNR and SSIM against hole-ratio band, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = sorted({row["band"] for row in rows})
    methods = list(dict.fromkeys(row["method"] for row in rows))
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for axis, metric, label in zip(axes, ("l1", "psnr", "ssim"), ("L1 (lower is better)", "PSNR dB", "SSIM")):
        for method in methods:
            by_band = {row["band"]: row[metric] for row in rows if row["method"] == method}
            axis.plot(bands, [by_band.get(band, np.nan) for band in bands], marker="o", label=method)
        axis.set_xlabel("hole ratio band (%)")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.pconv.evaluate",
        description="Score the PConv inpainter and OpenCV's TELEA and NS inpainting on photos with "
                    "hole masks grouped by hole-ratio band; prints and saves a per-band table of L1, "
                    "PSNR and SSIM (per_band.csv, per_band.md, per_pair.csv, per_band.png, summary.json) "
                    "and pconv's gains over the others on the same pairs (paired.csv).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help="the inpainting model (.keras, local path or URI), e.g. a training run's model.keras")
    parser.add_argument("--images", default=DEFAULT_IMAGES, help="folder of evaluation photos")
    parser.add_argument("--masks", default=DEFAULT_MASKS,
                        help="folder of mask images: one subfolder per band (00-10, ..., 50-60), or any "
                             "other folder, whose masks (searched recursively) are grouped by measured "
                             "hole ratio; masks are resized to each photo")
    parser.add_argument("--mask_hole_color", choices=["white", "black"], default="white",
                        help="which colour is the hole in the mask images")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to score")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N >= 1 photos (sorted by name), for a quick run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image-mask pairing")
    parser.add_argument("--strategy", choices=["crop", "resize"], default="crop",
                        help="Inpainter strategy: context window around each hole, or whole photo at model size")
    parser.add_argument("--batch_size", type=int, default=8, help="model windows per forward pass")
    parser.add_argument("--self_ensemble", type=int, choices=[1, 2, 4], default=DEFAULT_SELF_ENSEMBLE,
                        help="Inpainter self-ensemble: average with the mirrored images' fills (the "
                             "pipeline's --inpaint_self_ensemble)")
    parser.add_argument("--blend", choices=BLENDS, default=DEFAULT_BLEND,
                        help="how the Inpainter's fill meets the photo: Poisson seam blending or pasted "
                             "as is (the pipeline's --inpaint_blend)")
    parser.add_argument("--radius", type=float, default=3.0, help="inpaintRadius of cv2.inpaint")
    parser.add_argument("--output_dir", default="eval-output", help="where the CSVs, chart and summary go")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if not os.path.isdir(args.images):
        raise SystemExit(f"image folder not found: {args.images}")
    images = _image_files(args.images)[: args.limit]
    if not images:
        raise SystemExit(f"no images in {args.images}")
    images, left_out = usable_images(images)
    if not images:
        raise SystemExit(f"no usable images in {args.images}: see the warnings above")
    try:
        groups = mask_groups(args.masks, args.mask_hole_color)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    methods, described = build_methods(args.methods, args.weights, args.strategy, args.batch_size, args.radius,
                                       args.self_ensemble, args.blend)
    try:  # before the scoring, which it would throw away
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as error:
        raise SystemExit(f"--output_dir: cannot make {args.output_dir}: {error}") from None
    pairs = pair_images_with_masks(images, groups, args.seed)
    logger.info("%d photos x %d bands = %d pairs, methods: %s", len(images), len(groups), len(pairs),
                ", ".join(methods))
    rows, per_pair, seconds, skipped_pairs = evaluate(pairs, methods, args.mask_hole_color)
    if not rows:
        raise SystemExit(f"no pair of {args.images} and {args.masks} has hole pixels to score "
                         "(see the warnings above)")

    write_csv(rows, os.path.join(args.output_dir, "per_band.csv"))
    write_csv(per_pair, os.path.join(args.output_dir, "per_pair.csv"))
    compared = "pconv" in methods and len(methods) > 1
    paired = paired_gains(per_pair) if compared else []
    paired_path = os.path.join(args.output_dir, "paired.csv")
    if paired:
        write_csv(paired, paired_path)
    elif os.path.exists(paired_path):  # an earlier evaluation's: it would contradict these scores
        os.remove(paired_path)
    plot_bands(rows, os.path.join(args.output_dir, "per_band.png"))
    with open(os.path.join(args.output_dir, "per_band.md"), "w") as f:
        f.write(markdown_table(rows) + "\n")
    scored = len(pairs) - sum(skipped_pairs.values())
    summary = {"images": args.images, "photos": len(images), "masks": args.masks, "bands": list(groups),
               "seed": args.seed, "methods": described,
               "skipped": {"unreadable_photos": len(left_out["unreadable"]),
                           "photos_smaller_than_ssim_window": len(left_out["smaller_than_ssim_window"]),
                           **skipped_pairs},
               "seconds_per_pair": {name: s / scored for name, s in seconds.items()}, "per_band": rows}
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(_finite_or_none(summary), f, indent=2, allow_nan=False)
    print(format_table(rows, keys=("band", "method")))
    if compared:
        won = bands_won(rows)
        print("pconv's gain on the same pairs (mean ± standard error, share of pairs won):")
        for row in paired:
            print(f"  {row['band']} vs {row['versus']:<6} PSNR {row['psnr_gain']:+.2f} ± {row['psnr_gain_se']:.2f} dB "
                  f"({row['psnr_pairs_won']:.0%})  SSIM {row['ssim_gain']:+.4f} ± {row['ssim_gain_se']:.4f} "
                  f"({row['ssim_pairs_won']:.0%})")
        print(f"pconv beats every other method on both PSNR and SSIM in {len(won)} of {len(groups)} bands"
              + (f": {', '.join(won)}" if won else ""))
    print("seconds per pair: " + ", ".join(f"{n} {s / scored:.3f}" for n, s in seconds.items()))
    print(f"wrote {args.output_dir}/per_band.csv, per_band.md, per_pair.csv, per_band.png, summary.json"
          + (", paired.csv" if paired else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
