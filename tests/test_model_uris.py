"""Remote model files (`--seg_checkpoint` / `--inpaint_weights` as https:// or any fsspec URI): a
plain web server, a transfer cut short, a missing file, a file replaced at its URI, no network."""
from __future__ import annotations

import functools
import http.server
import logging
import os
import threading
import urllib.parse
import uuid

import fsspec
import pytest

from models.uri import ModelFileError, fetch, sha256_of


@pytest.fixture
def web_server(tmp_path):
    """Python's http.server on a free localhost port, serving `tmp_path/www` (no Range support,
    like many simple file servers); yields (folder, base URL, server)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


class _CutShortHandler(http.server.BaseHTTPRequestHandler):
    """Announces the whole file, sends half of it and drops the connection (a server killed
    mid-file)."""
    body = b""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[:len(self.body) // 2])
        self.wfile.flush()
        self.connection.close()

    def log_message(self, *args):
        pass


def _cached_files(cache_dir) -> list[str]:
    return sorted(name for _, _, names in os.walk(cache_dir) for name in names)


def test_a_model_larger_than_one_read_block_downloads_from_a_server_without_range_requests(
        web_server, tmp_path):
    folder, base_url, _ = web_server
    weights = folder / "weights.pth"
    # fsspec reads HTTP files in 5 MiB blocks: past the first two, a read needs a range request
    weights.write_bytes(os.urandom(12 << 20))
    cache_dir = tmp_path / "cache"

    fetched = fetch(f"{base_url}/weights.pth", str(cache_dir))

    assert fetched.sha256 == sha256_of(str(weights))
    assert _cached_files(cache_dir) == ["weights.pth"]
    again = fetch(f"{base_url}/weights.pth", str(cache_dir))
    assert again.path == fetched.path and os.stat(again.path).st_mtime_ns == os.stat(fetched.path).st_mtime_ns


def test_a_model_file_replaced_at_its_uri_is_downloaded_again(tmp_path):
    uri = f"memory://model-uri-tests/{uuid.uuid4().hex}/weights.pth"
    cache_dir = str(tmp_path / "cache")
    with fsspec.open(uri, "wb") as f:
        f.write(b"first weights")
    first = fetch(uri, cache_dir)
    with fsspec.open(uri, "wb") as f:
        f.write(b"newer weights")  # same size: only the store's version data tells them apart

    with open(fetch(uri, cache_dir).path, "rb") as f:
        assert f.read() == b"newer weights"
    with open(first.path, "rb") as f:
        assert f.read() == b"first weights"


def test_the_cached_copy_serves_with_a_warning_when_the_server_cannot_be_reached(
        web_server, tmp_path, caplog):
    folder, base_url, server = web_server
    (folder / "weights.pth").write_bytes(b"weights")
    cache_dir = str(tmp_path / "cache")
    cached = fetch(f"{base_url}/weights.pth", cache_dir)
    server.shutdown()
    server.server_close()

    with caplog.at_level(logging.WARNING, logger="models.uri"):
        offline = fetch(f"{base_url}/weights.pth", cache_dir)

    assert offline == cached
    assert "using the copy cached at" in caplog.text


def test_a_download_cut_short_fails_and_caches_nothing(tmp_path):
    handler = type("Handler", (_CutShortHandler,), {"body": os.urandom(1 << 20)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache_dir = tmp_path / "cache"
    try:
        with pytest.raises(ModelFileError, match="cannot download model file"):
            fetch(f"http://127.0.0.1:{server.server_address[1]}/weights.pth", str(cache_dir))
    finally:
        server.shutdown()
        server.server_close()
    assert _cached_files(cache_dir) == []


def test_a_missing_file_names_the_uri(web_server, tmp_path):
    _, base_url, _ = web_server
    with pytest.raises(ModelFileError, match=r"cannot download model file '.*/missing\.keras' \(FileNotFoundError: nothing there, or no network\)\. "):
        fetch(f"{base_url}/missing.keras", str(tmp_path / "cache"))


def test_what_killed_downloads_left_is_removed_by_the_next_download(tmp_path):
    """A download killed outright (SIGKILL, a preempted worker) cannot clean up its `.part`
    file; the next download of that URI removes it, but not one still being written."""
    uri = f"memory://model-uri-tests/{uuid.uuid4().hex}/weights.pth"
    cache_dir = str(tmp_path / "cache")
    with fsspec.open(uri, "wb") as f:
        f.write(b"first weights")
    version_dir = os.path.dirname(fetch(uri, cache_dir).path)
    abandoned, running = os.path.join(version_dir, "a.part"), os.path.join(version_dir, "b.part")
    for partial in (abandoned, running):
        with open(partial, "wb") as f:
            f.write(b"half a model")
    os.utime(abandoned, (0, 0))
    with fsspec.open(uri, "wb") as f:
        f.write(b"newer weights")

    fetch(uri, cache_dir)
    assert not os.path.exists(abandoned) and os.path.exists(running)


def test_a_file_uri_is_read_as_a_browser_or_file_manager_writes_it(tmp_path):
    """`file:///a%20b/...` and `file://localhost/...` name local files; a name holding a literal
    '%20' is still found by it."""
    from models.segmentation.config import resolve_config

    folder = tmp_path / "my models é"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"weights")
    (folder / "literal%20name.bin").write_bytes(b"other")
    (folder / "seg.py").write_text("model = dict(type='MaskRCNN')\n")
    quoted = "file://" + "/".join(map(urllib.parse.quote, str(folder).split("/")))
    assert fetch(f"{quoted}/w.bin").path == str(folder / "w.bin")
    assert fetch(f"file://localhost{folder}/w.bin").path == str(folder / "w.bin")
    assert fetch(f"file://{folder}/literal%20name.bin").path == str(folder / "literal%20name.bin")
    assert resolve_config(f"{quoted}/seg.py").path == str(folder / "seg.py")
