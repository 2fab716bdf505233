"""Running the pipeline in tests and reading back what it wrote."""
from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.run import run


def run_pipeline(args: list[str]):
    return run(["--runner", "DirectRunner"] + [str(a) for a in args])


def read_rows(output) -> dict[str, dict]:
    """Parquet rows keyed by image_uri (exactly one per input is the contract)."""
    files = sorted(glob.glob(os.path.join(str(output), "metadata", "part-*.parquet")))
    assert files, f"no metadata written under {output}"
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    uris = [r["image_uri"] for r in rows]
    assert len(uris) == len(set(uris)), "an image has more than one row"
    return {r["image_uri"]: r for r in rows}


def load_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def output_files(output) -> dict[str, bytes]:
    images = os.path.join(str(output), "images")
    return {os.path.relpath(os.path.join(d, f), images): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(images) for f in files}
