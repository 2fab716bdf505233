"""The before/after report renders in a real headless Chromium with the expected items."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse

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
    # each image named in its thumbnails' alt (so also as its link's text), each page in its title
    assert 'alt="a.png, before"' in first and 'alt="a.png, after"' in first and first.count(', after"') == 2
    assert "<title>bg-obj-remover report, page 2 of 2</title>" in second and '<html lang="en">' in second
    assert "broken.png" in first and "not an image file" in first  # the errors table
    assert "<td>mask</td><td>2</td>" in first  # removed instances per class
    thumbs = os.listdir(output / "report" / "thumbs")
    assert len(thumbs) == 2 * len(specs)
    # each cleaned thumbnail links to its image in full
    links = re.findall(r'<a href="([^"]+)"><img src="thumbs/\d+-after.jpg"', first + second)
    assert len(links) == len(specs)
    assert sorted(os.path.relpath(os.path.normpath(output / "report" / urllib.parse.unquote(link)), output / "images")
                  for link in links) == sorted(specs)

    write_report(str(output), per_page=1)  # 3 pages, then 1: nothing of the longer one lingers
    write_report(str(output))
    assert sorted(os.listdir(output / "report")) == ["index.html", "thumbs"]
    assert sorted(os.listdir(output / "report" / "thumbs")) == sorted(thumbs)


def test_a_thumbnail_links_to_its_image_whatever_its_name():
    from pipeline.report import _item

    row = {"image_uri": "/in/x", "output_uri": "/out/images/Côte d'Azur/#1 100%.jpg", "status": "cleaned",
           "instances": [], "removed_fraction": 0.0}
    assert '<a href="../images/C%C3%B4te%20d%27Azur/%231%20100%25.jpg">' in _item(row, "000000", None, "/out/images/")
    moved = {**row, "output_uri": "/elsewhere/images/a.jpg"}  # not under the report's output: no link
    assert "<a href" not in _item(moved, "000000", None, "/out/images/")


def test_report_reads_tfrecord_inputs_back_from_their_shards(tmp_path, tiny_inpaint_weights):
    import io

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    colours = [(20 * i, 255 - 20 * i, 100) for i in range(12)]  # 12: record 10 sorts after 2
    shard = tmp_path / "shard-00000.tfrecord"
    masks = tmp_path / "masks"
    masks.mkdir()
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for colour in colours:
            buffer = io.BytesIO()
            Image.new("RGB", (24, 16), colour).save(buffer, "PNG")
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()]))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature={"pixels": feature})).SerializeToString())
    for offset in range(len(colours)):
        Image.new("L", (24, 16)).save(masks / f"shard-00000.tfrecord-{offset:06d}.png")
    output = tmp_path / "out"
    run_pipeline(["--input_tfrecords", str(shard), "--tfrecord_image_key", "pixels",
                  "--segmenter", "masks", "--masks", masks, "--output", output,
                  "--inpaint_weights", tiny_inpaint_weights, "--report"])

    index = (output / "report" / "index.html").read_text()
    assert index.count('class="item"') == len(colours) and "missing" not in index
    for offset, colour in enumerate(colours):  # items in record order, each from its own record
        assert f"{shard}#{offset} " in index
        before = np.asarray(Image.open(output / "report" / "thumbs" / f"{offset:06d}-before.jpg"))
        assert np.abs(before.reshape(-1, 3).mean(axis=0) - colour).max() < 4


def test_report_command_explains_what_is_wrong(tmp_path, capsys):
    from pipeline.report import main

    for argv in ([str(tmp_path / "never-ran")], [str(tmp_path), "--per_page", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err
    assert "no metadata under" in errors and "run the pipeline first" in errors
    assert "--per_page: must be >= 1, got 0" in errors


def test_a_large_runs_report_shows_a_sample_the_first_errors_and_links_few_pages(
        tmp_path, tiny_inpaint_weights):
    """An archive's report must stay a few pages' work: the gallery an even sample, the errors
    table capped, each page linking to its neighbours rather than to every page."""
    from PIL import Image

    from pipeline.report import read_report_content
    from tests.conftest import rectangle_mask, textured_image

    images, masks, output = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for index in range(12):
        Image.fromarray(textured_image(12, 16, index)).save(images / f"{index:02d}.png")
        Image.fromarray(rectangle_mask(12, 16, (0, 0, 4, 4) if index % 2 else (0, 0, 0, 0))).save(
            masks / f"{index:02d}.png")
    for name in ("x1.png", "x2.png"):
        (images / name).write_bytes(b"not an image")
    # an error row whose instance is marked removed, though nothing was removed from it
    Image.fromarray(textured_image(12, 16, 12)).save(images / "x3.png")
    Image.fromarray(rectangle_mask(12, 16, (0, 0, 16, 12))).save(masks / "x3.png")
    run_pipeline(["--input", f"{images}/*", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights])

    content = read_report_content(str(output), max_images=3, max_errors=1)
    assert content.statuses == {"cleaned": 6, "unchanged": 6, "error": 3}
    assert content.removed_per_class == {"mask": 6}  # the cleaned images' only
    assert content.showable == 12
    assert [os.path.basename(r["image_uri"]) for r in content.shown] == ["00.png", "04.png", "08.png"]
    assert all(r["instances"] is not None and "removed_fraction" in r for r in content.shown)
    assert content.error_count == 3 and [os.path.basename(r["image_uri"]) for r in content.errors] == ["x1.png"]

    index = write_report(str(output), per_page=2, max_images=3)
    assert "3 of the 12 images written, evenly spaced" in open(index).read()
    assert len(os.listdir(output / "report" / "thumbs")) == 2 * 3

    write_report(str(output), per_page=1, max_images=None)  # 12 pages
    page = (output / "report" / "page-6.html").read_text()
    nav = page[page.index("<nav"):page.index("</nav>")]
    linked = re.findall(r'<a href="(?:index|page-(\d+))\.html">([^<]+)</a>', nav)
    assert [text for _, text in linked] == ["previous", "1", "3", "4", "5", "7", "8", "9", "12", "next"]
    assert "<b>6</b>" in nav


def test_the_report_outlines_kept_subjects_apart_and_counts_them(tmp_path):
    """A subject kept by --keep_largest is outlined in its own colour and counted beside the
    removed instances; metadata written before instances had `kept` reads as none kept."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from pipeline.report import KEPT_OUTLINE, OUTLINE, outlined_thumbnail, read_report_content
    from transforms.metadata import INSTANCE_TYPE, SCHEMA
    from transforms.select import encode_rle

    def instance(box, removed, kept):
        mask = np.zeros((40, 60), bool)
        mask[box[1]:box[3], box[0]:box[2]] = True
        return {"label": "person", "label_id": 1, "score": 0.9, "bbox": [float(v) for v in box],
                "mask": encode_rle(mask), "area": int(mask.sum()), "removed": removed, "kept": kept,
                "frame": 0}

    passer_by, subject, unchosen = (instance((2, 20, 12, 38), True, False), instance((25, 2, 55, 38), False, True),
                                    instance((14, 2, 22, 10), False, False))
    thumb = np.asarray(outlined_thumbnail(Image.new("RGB", (60, 40), "grey"), [passer_by, subject, unchosen]))
    assert (thumb[20:38, 2] == OUTLINE).all(axis=1).any()
    assert (thumb[10:30, 25] == KEPT_OUTLINE).all(axis=1).all()
    assert (thumb[4:8, 14] == (128, 128, 128)).all()  # neither removed nor kept: no outline

    metadata = tmp_path / "out" / "metadata"
    metadata.mkdir(parents=True)
    row = {"image_uri": "/in/a.png", "output_uri": "/out/a.png", "status": "cleaned", "error": None,
           "width": 60, "height": 40, "instances": [passer_by, subject, unchosen], "removed_fraction": 0.1,
           "segmenter": "s", "inpainter": "i", "notes": []}
    pq.write_table(pa.Table.from_pylist([row, {**row, "image_uri": "/in/b.png", "status": "unchanged",
                                               "instances": [subject]}], SCHEMA), metadata / "part-1-00000-of-00002.parquet")
    old_instance = pa.struct([field for field in INSTANCE_TYPE if field.name != "kept"])
    old_schema = pa.schema([pa.field("instances", pa.list_(old_instance)) if field.name == "instances" else field
                            for field in SCHEMA])
    pq.write_table(pa.Table.from_pylist([{**row, "image_uri": "/in/c.png"}], old_schema),
                   metadata / "part-1-00001-of-00002.parquet")
    content = read_report_content(str(tmp_path / "out"), max_images=None)
    assert content.removed_per_class == {"person": 2} and content.kept_per_class == {"person": 2}


def test_the_cleaned_thumbnail_is_of_the_frame_shown_where_the_writer_merged_repeated_frames(
        tmp_path, tiny_inpaint_weights, monkeypatch):
    """An animation holding a still moment repeats a frame (gifsicle and ImageMagick write them);
    PIL's writer merges the repeat, so the cleaned file has a frame fewer before the one shown."""
    import numpy as np
    from PIL import GifImagePlugin, Image

    from pipeline.report import output_frame
    from transforms.read import read_bytes

    height, width, box = 40, 48, (5, 5, 25, 25)
    still, red, blue = (Image.fromarray(np.full((height, width, 3), colour, np.uint8)).quantize(8)
                        for colour in ((90, 160, 90), (200, 30, 30), (30, 30, 200)))
    images, masks, output = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    with monkeypatch.context() as patched:  # PIL itself would merge the repeat as it writes it
        unmerged = GifImagePlugin._getbbox
        patched.setattr(GifImagePlugin, "_getbbox", lambda previous, frame: (unmerged(previous, frame)[0],
                                                                              (0, 0) + frame.size))
        still.save(images / "held.gif", save_all=True, append_images=[still, red, blue], duration=100, loop=0)

    def mask(hole, transparent_pixel=False):  # a transparent pixel removes nothing, but keeps frames apart
        rgba = np.zeros((height, width, 4), np.uint8)
        rgba[..., 3] = 255
        rgba[hole[1]:hole[3], hole[0]:hole[2]] = 255
        rgba[0, 0, 3] = 0 if transparent_pixel else 255
        return Image.fromarray(rgba)

    frame_masks = [mask((0, 0, 0, 0)), mask((0, 0, 0, 0), transparent_pixel=True), mask(box), mask((0, 0, 0, 0))]
    frame_masks[0].save(masks / "held.png", save_all=True, append_images=frame_masks[1:])
    run_pipeline(["--input", f"{images}/*", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights, "--report"])

    index = (output / "report" / "index.html").read_text()
    assert "missing" not in index and "(frame 3 shown)" in index
    after = np.asarray(Image.open(output / "report" / "thumbs" / "000000-after.jpg"), float)
    assert np.abs(after[30:, 30:].reshape(-1, 3).mean(axis=0) - (200, 30, 30)).max() < 8  # red, not blue
    assert Image.open(output / "images" / "held.gif").n_frames == 3  # the repeat merged
    source, written = read_bytes(str(images / "held.gif")), read_bytes(str(output / "images" / "held.gif"))
    assert [output_frame(source, written, frame) for frame in range(4)] == [0, 1, 1, 2]


def test_the_report_shows_the_images_within_the_runs_pixel_limit(masks_corpus, tmp_path, tiny_inpaint_weights,
                                                                  monkeypatch):
    """A run given a --max_image_pixels above the default cleans scans and long animations the
    report must show too: the run's limit is the report's, in place of PIL's own bomb limit."""
    from PIL import Image

    import pipeline.report

    images, masks, _ = masks_corpus  # 64x48 = 3,072, 56x40 = 2,240 and 32x32 = 1,024 pixels
    output = tmp_path / "out"
    limits, write_report_of_run = [], pipeline.report.write_report

    def write_report_recording_its_limit(*args, **kwargs):
        limits.append(kwargs["max_pixels"])
        return write_report_of_run(*args, **kwargs)

    monkeypatch.setattr(pipeline.report, "write_report", write_report_recording_its_limit)
    run_pipeline(["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks, "--output", output,
                  "--inpaint_weights", tiny_inpaint_weights, "--max_image_pixels", 400_000_000, "--report"])
    assert limits == [400_000_000]

    monkeypatch.setattr(pipeline.report, "write_report", write_report_of_run)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # PIL alone would refuse all three as bombs
    pipeline.report.main([str(output), "--max_image_pixels", "2500"])
    index = (output / "report" / "index.html").read_text()
    assert index.count('class="item"') == 2 and index.count('class="item missing"') == 1
    assert "a.png: image declares 64x48 = 3,072 pixels, over the limit of 2,500" in index


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")
def test_a_report_of_only_errors_says_that_nothing_was_removed_and_fits_the_window(tmp_path):
    """A deep bucket path does not push its error out of the window (the table wraps, not the page)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.metadata import SCHEMA

    metadata = tmp_path / "out" / "metadata"
    metadata.mkdir(parents=True)
    deep = "gs://bucket/" + "/".join(f"scans_{year}_from_the_family_archive" for year in range(1990, 2000)) + "/a.png"
    row = {"image_uri": deep, "output_uri": None, "status": "error", "error": "decode: ValueError: empty file",
           "width": None, "height": None, "instances": [], "removed_fraction": 0.0, "segmenter": "s",
           "inpainter": "i", "notes": []}
    pq.write_table(pa.Table.from_pylist([row], SCHEMA), metadata / "part-1-00000-of-00001.parquet")
    index = write_report(str(tmp_path / "out"))
    page = open(index).read()
    assert "<p>None: nothing was removed.</p>" in page and "<table><tr><th>class</th>" not in page
    assert f"<td>{deep}</td><td>decode: ValueError: empty file</td>" in page
    assert "<title>bg-obj-remover report</title>" in page and "<nav" not in page  # one page: no page links

    measured = os.path.join(os.path.dirname(index), "measured.html")  # the page, reporting its own width
    with open(measured, "w") as f:
        f.write(page.replace("</body>", "<script>document.body.dataset.scrolls = "
                             "document.documentElement.scrollWidth > innerWidth</script></body>"))
    assert 'data-scrolls="false"' in _rendered_dom(measured, tmp_path)

    pq.write_table(pa.Table.from_pylist([], SCHEMA), metadata / "part-1-00000-of-00001.parquet")
    assert "<p>The run recorded no image.</p>" in open(write_report(str(tmp_path / "out"))).read()


def test_images_a_stopped_run_wrote_are_shown_after_a_skip_existing_rerun(masks_corpus, tmp_path, tiny_inpaint_weights):
    """A run stopped before its metadata was written leaves its images; the rerun that finishes
    with --skip_existing has them as `skipped` rows, whose images the report still shows."""
    import numpy as np
    from PIL import Image

    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    args = ["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks, "--output", output,
            "--inpaint_weights", tiny_inpaint_weights]
    run_pipeline(args)
    shutil.rmtree(output / "metadata")  # stopped before its end: images written, no metadata
    run_pipeline(args + ["--skip_existing", "--report"])

    index = (output / "report" / "index.html").read_text()
    assert "skipped: 3" in index and index.count('class="item"') == 3 and "missing" not in index
    assert f"{images / 'a.png'} — skipped, written by an earlier run, which recorded nothing of it" in index
    after, written, source = (np.asarray(Image.open(path), float)[8:24, 10:30] for path in (  # a.png's hole
        output / "report" / "thumbs" / "000000-after.jpg", output / "images" / "a.png", images / "a.png"))
    assert np.abs(after - written).mean() < np.abs(after - source).mean() / 4  # the image written, not the input
