"""Inpainting quality metrics (L1, PSNR, SSIM) per hole-ratio band, in plain numpy.

Training validation and the evaluation command share these so their numbers are comparable; they
work on whole batches (N, H, W, C) in [0, 1] and follow skimage's definitions (SSIM: 7x7 uniform
window, sample covariance, K1=0.01, K2=0.03, border of 3 px left out, channels averaged), which the
tests check against skimage itself.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter

# The bands of the NVIDIA irregular-mask test set (Liu et al. 2018): hole area / image area.
HOLE_RATIO_BANDS: tuple[tuple[float, float], ...] = tuple((b / 10, (b + 1) / 10) for b in range(6))

_SSIM_WINDOW = 7
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def band_name(band: tuple[float, float]) -> str:
    """'00-10' for (0.0, 0.1): the folder names of the mask set."""
    low, high = band
    return f"{round(low * 100):02d}-{round(high * 100):02d}"


def band_of_ratio(hole_ratio: float) -> tuple[float, float] | None:
    """The band holding `hole_ratio` (lower bound inclusive), None above the last band."""
    for low, high in HOLE_RATIO_BANDS:
        if low <= hole_ratio < high:
            return (low, high)
    return None


def _as_batch(images) -> np.ndarray:
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected (H, W, C) or (N, H, W, C) images, got shape {array.shape}")
    return array


def l1_error(pred, truth) -> np.ndarray:
    """Mean absolute error per image."""
    pred, truth = _as_batch(pred), _as_batch(truth)
    return np.abs(pred - truth).mean(axis=(1, 2, 3))


def psnr(pred, truth, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image (inf for identical images, as skimage)."""
    pred, truth = _as_batch(pred), _as_batch(truth)
    mse = np.square(pred - truth).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def ssim(pred, truth, data_range: float = 1.0) -> np.ndarray:
    """Mean structural similarity per image, equal to skimage's
    `structural_similarity(pred, truth, channel_axis=-1, data_range=data_range)`."""
    pred, truth = _as_batch(pred), _as_batch(truth)
    window = (1, _SSIM_WINDOW, _SSIM_WINDOW, 1)  # spatial only: channels and images stay apart

    def local_mean(x):
        return uniform_filter(x, size=window)

    covariance_norm = _SSIM_WINDOW ** 2 / (_SSIM_WINDOW ** 2 - 1)
    mean_p, mean_t = local_mean(pred), local_mean(truth)
    var_p = covariance_norm * (local_mean(pred * pred) - mean_p * mean_p)
    var_t = covariance_norm * (local_mean(truth * truth) - mean_t * mean_t)
    cov = covariance_norm * (local_mean(pred * truth) - mean_p * mean_t)
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mean_p * mean_t + c1) * (2 * cov + c2)
                / ((mean_p ** 2 + mean_t ** 2 + c1) * (var_p + var_t + c2)))
    pad = (_SSIM_WINDOW - 1) // 2
    return ssim_map[:, pad:-pad, pad:-pad, :].mean(axis=(1, 2, 3))


@dataclass
class _Sums:
    count: int = 0
    l1: float = 0.0
    psnr: float = 0.0
    ssim: float = 0.0


@dataclass
class BandedScores:
    """Accumulates per-image L1/PSNR/SSIM under a band label and reports the mean per band."""

    _sums: dict[str, _Sums] = field(default_factory=dict)

    def add(self, band: str, pred, truth) -> None:
        sums = self._sums.setdefault(band, _Sums())
        sums.count += len(_as_batch(pred))
        sums.l1 += float(l1_error(pred, truth).sum())
        sums.psnr += float(psnr(pred, truth).sum())
        sums.ssim += float(ssim(pred, truth).sum())

    def rows(self) -> list[dict]:
        """One dict per band (sorted by band): band, count, l1, psnr, ssim."""
        return [{"band": band, "count": s.count, "l1": s.l1 / s.count,
                 "psnr": s.psnr / s.count, "ssim": s.ssim / s.count}
                for band, s in sorted(self._sums.items())]


def format_table(rows: list[dict], keys: tuple[str, ...] = ("band",)) -> str:
    """A fixed-width text table of `rows` (dicts with `keys`, count, l1, psnr, ssim)."""
    lines = ["".join(f"{key:<10}" for key in keys) + f"{'n':>6}{'L1':>10}{'PSNR':>10}{'SSIM':>10}"]
    for row in rows:
        psnr_text = "inf" if math.isinf(row["psnr"]) else f"{row['psnr']:.2f}"
        lines.append("".join(f"{row[key]:<10}" for key in keys)
                     + f"{row['count']:>6}{row['l1']:>10.4f}{psnr_text:>10}{row['ssim']:>10.4f}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
