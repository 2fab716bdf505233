"""Model files from a local path, `gs://`, `https://` or any fsspec URI, cached locally.

Both models load their weights through `fetch`, so remote files are read once per machine and
every model can name the exact bytes it runs (sha256) in the output metadata.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os
import tempfile
import time
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


def local_path(uri: str) -> str:
    """The path a local `uri` names: a `file://` URI or a plain path, `~` expanded."""
    return os.path.expanduser(uri[len("file://"):] if uri.startswith("file://") else uri)


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
        path = local_path(uri)
        if not os.path.isfile(path):
            raise ModelFileError(f"model file not found: {path!r}. {hint}".strip())
        fetched = FetchedFile(uri, path, sha256_of(path))
    else:
        fetched = _fetch_remote(uri, cache_dir or DEFAULT_CACHE_DIR, hint)
    logger.info("model file %s sha256=%s", uri, fetched.sha256)
    return fetched


# What file systems tell one version of a file from another by: HTTP headers, the object
# metadata of GCS and S3, modification times elsewhere.
_VERSION_FIELDS = ("size", "ETag", "Last-Modified", "Content-MD5", "Digest", "generation",
                   "md5Hash", "crc32c", "etag", "updated", "LastModified", "mtime", "created")


def _fetch_remote(uri: str, cache_dir: str, hint: str) -> FetchedFile:
    """The cached copy of the file's current version at `uri`, downloaded when there is none.

    Copies are cached per version, so a file replaced at its URI is downloaded again, never
    silently stood in for by the old copy. Where the store cannot be reached (offline) the newest
    cached copy serves, with a warning.
    """
    import fsspec

    uri_dir = os.path.join(cache_dir, hashlib.sha256(uri.encode()).hexdigest()[:16])
    name = os.path.basename(uri.rstrip("/")) or "model"
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
    except Exception as e:  # noqa: BLE001 - any transport error means the same to the user
        cached = _newest_cached_copy(uri_dir, name)  # fsspec's HTTP reports no network as not found
        if cached is None:
            raise _unreachable(uri, e, hint) from e
        logger.warning("cannot check %s for a newer version (%s: %s); using the copy cached at %s",
                       uri, type(e).__name__, e, cached)
        return FetchedFile(uri, cached, sha256_of(cached))
    version = sorted((field, str(info[field])) for field in _VERSION_FIELDS
                     if info.get(field) is not None)
    target = os.path.join(uri_dir, hashlib.sha256(repr(version).encode()).hexdigest()[:16], name)
    if not os.path.isfile(target):
        _remove_abandoned_downloads(uri_dir)
        try:
            _download(fs, path, target, info.get("size"))
        except Exception as e:  # noqa: BLE001
            raise _unreachable(uri, e, hint) from e
    return FetchedFile(uri, target, sha256_of(target))


def _unreachable(uri: str, error: Exception, hint: str) -> ModelFileError:
    detail = str(error).strip().strip("'\"")
    if not detail or detail in uri:  # fsspec's HTTP says only the URI, offline or not found
        detail = "nothing there, or no network"
    return ModelFileError(
        f"cannot download model file {uri!r} ({type(error).__name__}: {detail}). "
        f"Download it elsewhere and pass its local path instead. {hint}".strip())


def _download(fs, path: str, target: str, size: int | None) -> None:
    """Copies `path` to `target` through a temporary file renamed at the end: a killed or
    short download never looks complete, and processes fetching one file at once do not clash."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".part")
    os.close(fd)
    try:
        # One sequential transfer in the file system's own way: reading through fsspec.open
        # fetches HTTP files in range requests, which servers without Range support refuse.
        fs.get_file(path, partial)
        if size is not None and os.path.getsize(partial) != int(size):
            raise OSError(f"transfer ended after {os.path.getsize(partial)} of {size} bytes")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# A download still running writes to its file at least this often; one untouched longer was killed.
ABANDONED_AFTER_SECONDS = 3600


def _remove_abandoned_downloads(uri_dir: str) -> None:
    """Deletes what killed downloads of any version left (a model-sized `.part` file each), not
    running ones."""
    for partial in glob.glob(os.path.join(glob.escape(uri_dir), "*", "*.part")):
        try:
            if time.time() - os.path.getmtime(partial) > ABANDONED_AFTER_SECONDS:
                os.unlink(partial)
        except FileNotFoundError:  # another process removed it first
            pass


def _newest_cached_copy(uri_dir: str, name: str) -> str | None:
    copies = glob.glob(os.path.join(glob.escape(uri_dir), "*", glob.escape(name)))
    return max(copies, key=os.path.getmtime) if copies else None
