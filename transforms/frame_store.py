"""Where the frames of a multi-frame input wait, between the writer and `transforms/frames.py`.

Each frame leaves the models as an element of its own; the pixels of a cleaned one (with the
alpha and own values the writer needs) are stored under `<output>/.frames/` and only its small
`ImageInfo` travels on to be grouped with its image's other frames. Pixels never pass through a
GroupByKey, which the DirectRunner holds in memory until the whole input is read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import logging

import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.read import FRAMES_FOLDER
from transforms.records import ImageInfo, uri_bytes

logger = logging.getLogger(__name__)


def frames_folder(output_root: str) -> str:
    """A run starts by clearing what a killed one left there, and ends by removing it."""
    return FileSystems.join(output_root.rstrip("/"), FRAMES_FOLDER)


def stored_frame_path(output_root: str, info: ImageInfo) -> str:
    """One file per frame of each input, whatever its path's characters."""
    name = hashlib.sha1(uri_bytes(info.image_uri)).hexdigest()
    return FileSystems.join(frames_folder(output_root), f"{name}-{info.frame}.npz")


def store_frame(output_root: str, info: ImageInfo, rgb: np.ndarray) -> ImageInfo:
    """Stores the frame's pixels; returns its info without them, `output_uri` naming the file."""
    encoding = info.encoding
    arrays = {"rgb": rgb}
    if info.alpha is not None:
        arrays["alpha"] = info.alpha
    if encoding is not None and encoding.own_values is not None:
        arrays["own_values"] = encoding.own_values
        encoding = dataclasses.replace(encoding, own_values=None)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: stored briefly, read once
    path = stored_frame_path(output_root, info)
    with FileSystems.create(path, mime_type="application/octet-stream") as f:
        f.write(buffer.getbuffer())
    return info.replace(output_uri=path, alpha=None, encoding=encoding)


def load_frame(info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
    """The stored frame's pixels, and its info with its alpha and own values back."""
    with FileSystems.open(info.output_uri, compression_type="uncompressed") as f:
        arrays = np.load(io.BytesIO(f.read()), allow_pickle=False)
        rgb, alpha, own_values = (arrays.get(name) for name in ("rgb", "alpha", "own_values"))
    encoding = info.encoding
    if own_values is not None:
        encoding = dataclasses.replace(encoding, own_values=own_values)
    return rgb, info.replace(alpha=alpha, encoding=encoding)


def delete_stored_frames(infos: list[ImageInfo]) -> None:
    """Best effort: a frame left behind is cleared when the next run starts."""
    paths = [info.output_uri for info in infos if info.output_uri]
    try:
        FileSystems.delete(paths)
    except Exception as e:  # noqa: BLE001 - the image is written; a stray file is not its error
        logger.warning("stored frames not deleted (%s): %s", ", ".join(paths), e)
