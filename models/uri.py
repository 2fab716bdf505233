"""Model files from a local path, `gs://`, `https://` or any fsspec URI, cached locally.

Both models load their weights through `fetch`, so remote files are read once per machine and
every model can name the exact bytes it runs (sha256) in the output metadata.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
    "bg-obj-remover")


class ModelFileError(RuntimeError):
    """A model file could not be reached or is not what it claims to be."""


@dataclass(frozen=True)
class FetchedFile:
    uri: str
    path: str
    sha256: str

    @property
    def short_id(self) -> str:
        return self.sha256[:12]


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(uri: str, cache_dir: str | None = None, hint: str = "") -> FetchedFile:
    """Returns a local copy of `uri` and its sha256; remote files are downloaded once into the cache.

    `hint` is appended to the error when the file cannot be reached (e.g. which flag takes a local
    path instead).
    """
    if not is_remote(uri):
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ModelFileError(f"model file not found: {path!r}. {hint}".strip())
        fetched = FetchedFile(uri, path, sha256_of(path))
    else:
        fetched = _fetch_remote(uri, cache_dir or DEFAULT_CACHE_DIR, hint)
    logger.info("model file %s sha256=%s", uri, fetched.sha256)
    return fetched


def _fetch_remote(uri: str, cache_dir: str, hint: str) -> FetchedFile:
    import fsspec

    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target_dir = os.path.join(cache_dir, key)
    target = os.path.join(target_dir, os.path.basename(uri.rstrip("/")) or "model")
    if not os.path.isfile(target):
        os.makedirs(target_dir, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target_dir, suffix=".part")
        os.close(fd)
        try:
            # One sequential transfer in the file system's own way: reading through fsspec.open
            # fetches HTTP files in range requests, which servers without Range support refuse.
            fs, path = fsspec.core.url_to_fs(uri)
            fs.get_file(path, partial)
            os.replace(partial, target)  # atomic: a killed download never looks complete
        except Exception as e:  # noqa: BLE001 - any transport error means the same to the user
            if os.path.exists(partial):
                os.unlink(partial)
            raise ModelFileError(
                f"cannot download model file {uri!r}: {type(e).__name__}: {e}. "
                f"Download it elsewhere and pass its local path instead. {hint}".strip()) from e
    return FetchedFile(uri, target, sha256_of(target))
