"""Model files over HTTP: what `--seg_checkpoint https://...` and `--inpaint_weights https://...` do
with a plain web server, a transfer cut short and a missing file."""
from __future__ import annotations

import functools
import http.server
import os
import threading

import pytest

from models.uri import ModelFileError, fetch, sha256_of


@pytest.fixture
def web_server(tmp_path):
    """Python's http.server on a free localhost port, serving `tmp_path/www` (no Range support,
    like many simple file servers); yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
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
    folder, base_url = web_server
    weights = folder / "weights.pth"
    # fsspec reads HTTP files in 5 MiB blocks: past the first two, a read needs a range request
    weights.write_bytes(os.urandom(12 << 20))
    cache_dir = tmp_path / "cache"

    fetched = fetch(f"{base_url}/weights.pth", str(cache_dir))

    assert fetched.sha256 == sha256_of(str(weights))
    assert _cached_files(cache_dir) == ["weights.pth"]
    weights.unlink()  # cached: the second fetch does not go to the server
    assert fetch(f"{base_url}/weights.pth", str(cache_dir)).sha256 == fetched.sha256


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
    _, base_url = web_server
    with pytest.raises(ModelFileError, match=r"cannot download model file '.*/missing\.keras': FileNotFoundError"):
        fetch(f"{base_url}/missing.keras", str(tmp_path / "cache"))
