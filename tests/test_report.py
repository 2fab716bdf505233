"""The before/after report renders in a real headless Chromium with the expected items."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pipeline.report import write_report
from tests.pipeline_helpers import run_pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _rendered_dom(page: str, tmp_path) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", f"file://{page}"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")
def test_report_pages_render_every_image_and_the_errors(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, specs = masks_corpus
    (images / "broken.png").write_bytes(b"<html>404 Not Found</html>")
    output = tmp_path / "out"
    run_pipeline(["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights, "--report"])
    assert (output / "report" / "index.html").is_file()  # written by --report

    index = write_report(str(output), per_page=2)  # 3 good images -> pages of 2 and 1
    first = _rendered_dom(index, tmp_path)
    second = _rendered_dom(os.path.join(os.path.dirname(index), "page-2.html"), tmp_path)
    assert first.count('class="item"') == 2 and second.count('class="item"') == 1
    assert first.count('alt="cleaned"') == 2
    assert "broken.png" in first and "not an image file" in first  # the errors table
    assert "<td>mask</td><td>2</td>" in first  # removed instances per class
    thumbs = os.listdir(output / "report" / "thumbs")
    assert len(thumbs) == 2 * len(specs)
