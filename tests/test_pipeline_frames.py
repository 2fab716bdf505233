"""Multi-frame inputs (animations, multi-page TIFFs) through the whole job: every frame cleaned,
written back together as one file with one metadata row."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from pipeline.report import shown_frame
from pipeline.run import summarize
from tests.conftest import rectangle_mask, textured_image
from tests.pipeline_helpers import read_rows, run_pipeline

HEIGHT, WIDTH = 48, 64
DURATIONS = [100, 150, 120, 200]
BOXES = {1: (10, 8, 30, 24), 3: (30, 20, 50, 40)}  # frame: its hole; frames 0 and 2 keep all
PAGE_BOX = (20, 10, 40, 30)
# Carol's face, tagged by Windows Photo Gallery, where PAGE_BOX removes something from every page.
CAROL_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             b'<rdf:Description xmlns:MP="http://ns.microsoft.com/photo/1.2/" '
             b'xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" '
             b'xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#"><MP:RegionInfo rdf:parseType="Resource">'
             b'<MPRI:Regions><rdf:Bag><rdf:li MPReg:Rectangle="0.35, 0.25, 0.2, 0.3" MPReg:PersonDisplayName="Carol"/>'
             b'</rdf:Bag></MPRI:Regions></MP:RegionInfo></rdf:Description></rdf:RDF></x:xmpmeta>')


def _frames(count: int, first_seed: int) -> list[np.ndarray]:
    return [textured_image(HEIGHT, WIDTH, seed) for seed in range(first_seed, first_seed + count)]


def _save_all(path, frames: list[np.ndarray], **options) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], **options)


def _read_all(path) -> tuple[list[np.ndarray], Image.Image]:
    image = Image.open(path)
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(np.asarray(image.convert("RGB")))
    return frames, image


def _outside(box, grow: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow] = False
    return outside


def _args(images, masks, output, weights, *extra):
    return ["--input", f"{images}/*", "--segmenter", "masks", "--masks", masks, "--output", output,
            "--inpaint_weights", weights, "--dilate", "2", *extra]


@pytest.fixture
def animation_corpus(tmp_path):
    """An animated PNG whose mask (an animated PNG too) removes something from frames 1 and 3,
    and a 3-page TIFF whose one mask is every page's."""
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    animation = _frames(4, 10)
    _save_all(images / "anim.png", animation, duration=DURATIONS, loop=3)
    _save_all(masks / "anim.png", [rectangle_mask(HEIGHT, WIDTH, BOXES[i]) if i in BOXES
                                   else np.zeros((HEIGHT, WIDTH), np.uint8) for i in range(4)])
    pages = _frames(3, 20)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[700] = CAROL_XMP
    _save_all(images / "pages.tif", pages, compression="tiff_lzw", tiffinfo=tags)
    Image.fromarray(rectangle_mask(HEIGHT, WIDTH, PAGE_BOX)).save(masks / "pages.png")
    return images, masks, animation, pages


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])  # frames stored by one process, written by another
def test_every_frame_is_cleaned_and_written_back_together(animation_corpus, tmp_path, tiny_inpaint_weights, mode):
    images, masks, animation, pages = animation_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--write_masks", "--report",
                       "--direct_running_mode", mode, "--direct_num_workers", "2"))

    rows = read_rows(output)
    assert len(rows) == 2  # one row per file, not per frame
    row = rows[str(images / "anim.png")]
    assert row["status"] == "cleaned", row
    assert [instance["frame"] for instance in row["instances"]] == [1, 3]
    hole_pixels = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in BOXES.values())
    assert hole_pixels / (4 * HEIGHT * WIDTH) < row["removed_fraction"] < 0.5
    written, image = _read_all(row["output_uri"])
    assert len(written) == 4
    assert [image.seek(i) or image.info["duration"] for i in range(4)] == DURATIONS
    assert image.info["loop"] == 3
    for index, (before, after) in enumerate(zip(animation, written)):
        if index in BOXES:
            outside = _outside(BOXES[index], 2)
            np.testing.assert_array_equal(after[outside], before[outside])
            assert not np.array_equal(after[~outside], before[~outside])
        else:
            np.testing.assert_array_equal(after, before)

    # The report shows frame 1, the first one something was removed from.
    index = (output / "report" / "index.html").read_text()
    [stem] = re.findall(r'src="thumbs/([^"]+)-before.jpg"[^<]*<a[^>]*><img[^>]*></a><div class="caption">[^<]*anim\.png[^<]*'
                        r'\(frame 2 shown\)', index)
    shown = np.asarray(Image.open(output / "report" / "thumbs" / f"{stem}-before.jpg"), float)
    distances = [np.abs(shown - frame).mean() for frame in animation]
    assert np.argmin(distances) == 1, distances

    # The mask written for it has its frames, and masks mode reads it back frame by frame.
    written_masks, _ = _read_all(output / "masks" / "anim.png")
    assert [bool(mask.any()) for mask in written_masks] == [False, True, False, True]
    again = tmp_path / "again"
    run_pipeline(_args(images, output / "masks", again, tiny_inpaint_weights))
    assert [i["bbox"] for i in read_rows(again)[str(images / "anim.png")]["instances"]] == [
        list(map(float, BOXES[1])), list(map(float, BOXES[3]))]

    page_row = rows[str(images / "pages.tif")]
    assert page_row["status"] == "cleaned"
    assert [instance["frame"] for instance in page_row["instances"]] == [0, 1, 2]
    written_pages, tiff = _read_all(page_row["output_uri"])
    assert len(written_pages) == 3 and tiff.info["compression"] == "tiff_lzw"
    assert "1 XMP face or person region of what was removed dropped, with the names only they gave" in page_row["notes"]
    for index in range(3):  # no page names Carol any more
        tiff.seek(index)
        assert b"MP:RegionInfo" in tiff.tag_v2[700] and b"Carol" not in tiff.tag_v2[700]
    outside = _outside(PAGE_BOX, 2)
    for before, after in zip(pages, written_pages):
        np.testing.assert_array_equal(after[outside], before[outside])
        assert not np.array_equal(after[~outside], before[~outside])
    assert not os.path.exists(output / ".frames")  # the stored frames are gone


def test_a_failed_frame_fails_its_image_and_an_untouched_one_is_copied(tmp_path, tiny_inpaint_weights):
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _save_all(images / "wrong.gif", _frames(4, 30), duration=80, loop=0)
    _save_all(masks / "wrong.png", [rectangle_mask(HEIGHT, WIDTH, PAGE_BOX)] * 2)  # 2 frames for 4
    _save_all(images / "still.gif", _frames(3, 40), duration=80, loop=0)
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(masks / "still.png")
    output = tmp_path / "out"
    result = run_pipeline(_args(images, masks, output, tiny_inpaint_weights))

    counters = summarize(result)  # images, not frames
    assert (counters["errors"], counters["images_unchanged"], counters.get("images_cleaned", 0)) == (1, 1, 0)
    rows = read_rows(output)
    failed = rows[str(images / "wrong.gif")]
    assert failed["status"] == "error" and failed["output_uri"] is None
    assert failed["error"].startswith("mask: ValueError: ") and "has 2 frames, image has 4" in failed["error"]
    assert failed["error"].endswith("(frame 1 of 4)")
    assert not os.path.exists(output / "images" / "wrong.gif")  # no frame of it written
    untouched = rows[str(images / "still.gif")]
    assert untouched["status"] == "unchanged" and untouched["instances"] == []
    assert (output / "images" / "still.gif").read_bytes() == (images / "still.gif").read_bytes()


def test_the_report_shows_the_first_frame_something_was_removed_from():
    removed = {"removed": True}
    assert shown_frame([]) == 0
    assert shown_frame([{**removed, "frame": 2}, {"removed": False, "frame": 1}, {**removed, "frame": 3}]) == 2
    assert shown_frame([{**removed, "frame": None}]) == 0  # a row from before frames were counted


def test_a_tfrecord_animation_is_written_as_an_animated_png_of_all_its_frames(tmp_path, tiny_inpaint_weights):
    import io

    import tensorflow as tf

    def record(name: str, data: bytes) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
            "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()]))})
        ).SerializeToString()

    gifs = {}
    for name, seed in (("cleaned", 50), ("untouched", 60)):
        buffer = io.BytesIO()
        _save_all(buffer, _frames(3, seed), format="GIF", duration=[90, 60, 90], loop=0)
        gifs[name] = buffer.getvalue()
    shard = tmp_path / "shard.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for name, data in gifs.items():
            writer.write(record(f"{name}.gif", data))
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(rectangle_mask(HEIGHT, WIDTH, PAGE_BOX)).save(masks / "cleaned.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(masks / "untouched.png")
    output = tmp_path / "out"
    run_pipeline(["--input_tfrecords", shard, "--segmenter", "masks", "--masks", masks, "--output", output,
                  "--inpaint_weights", tiny_inpaint_weights, "--dilate", "2"])

    rows = read_rows(output)
    assert [rows[f"{shard}#{i}"]["status"] for i in range(2)] == ["cleaned", "unchanged"]
    outside = _outside(PAGE_BOX, 2)
    for name, data in gifs.items():
        inputs, _ = _read_all(io.BytesIO(data))
        written, image = _read_all(output / "images" / f"{name}.png")
        assert image.format == "PNG" and len(written) == 3
        assert [image.seek(i) or image.info["duration"] for i in range(3)] == [90, 60, 90]
        for before, after in zip(inputs, written):
            np.testing.assert_array_equal(after[outside], before[outside])
            assert np.array_equal(after, before) == (name == "untouched")


def test_only_frames_that_cannot_be_decoded_again_are_stored(tmp_path):
    """An archive's animations mostly have nothing to remove: their frames are not written out
    only to be deleted. A TFRecord record cannot be read again by its uri: all its frames wait."""
    from transforms.records import UNCHANGED, ImageInfo
    from transforms.write import WriteImage

    rgb = textured_image(HEIGHT, WIDTH, 1)
    unchanged = ImageInfo("/in/anim.gif", "anim.gif", width=WIDTH, height=HEIGHT, frame=1, frames=3,
                          status=UNCHANGED)
    for copy_unchanged, stored in ((True, False), (False, True)):
        write = WriteImage(str(tmp_path / str(copy_unchanged)), copy_unchanged)
        write.setup()
        [frame] = list(write.process((unchanged, rgb)))
        assert frame.tag == WriteImage.FRAME and frame.value.status == UNCHANGED
        assert (frame.value.output_uri is not None) == stored
        assert os.path.exists(tmp_path / str(copy_unchanged) / ".frames") == stored
    cleaned = unchanged.replace(status=None)
    [frame] = list(WriteImage(str(tmp_path / "cleaned"), copy_unchanged=True).process((cleaned, rgb)))
    assert frame.value.status == "cleaned" and os.path.isfile(frame.value.output_uri)
