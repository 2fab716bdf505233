"""Finding the inputs: `**/` and folders, the output folder left out, TFRecord ids that collide."""
from __future__ import annotations

import io
import logging
import os
import posixpath
import re
import subprocess
import sys

import numpy as np
import pytest

from apache_beam.io.filesystem import FileMetadata, FileSystem
from PIL import Image

from tests.pipeline_helpers import load_rgb, output_files, read_rows, run_pipeline


def _image(path, colour, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _empty_masks(masks, *relatives, size=(12, 10)):
    for relative in relatives:
        _image(masks / relative, (0, 0, 0), size)


def _masks_run(input_pattern, masks, output, weights, *extra):
    run_pipeline(["--input", input_pattern, "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", weights, *extra])
    return read_rows(output)


def test_globstar_also_matches_files_directly_in_the_folder(tmp_path, tiny_inpaint_weights):
    images, masks = tmp_path / "in", tmp_path / "masks"
    for i, relative in enumerate(["img0.png", "img2.png", "sub/img1.png", "sub/deeper/img3.png"]):
        _image(images / relative, (40 * i, 0, 0))
    _empty_masks(masks, "img0.png", "img2.png", "sub/img1.png", "sub/deeper/img3.png")
    rows = _masks_run(f"{images}/**/*.png", masks, tmp_path / "out", tiny_inpaint_weights)
    assert sorted(rows) == sorted(str(images / r) for r in
                                  ["img0.png", "img2.png", "sub/img1.png", "sub/deeper/img3.png"])
    assert sorted(output_files(tmp_path / "out")) == ["img0.png", "img2.png", "sub/deeper/img3.png",
                                                      "sub/img1.png"]


def test_each_globstar_may_match_no_folder(tmp_path):
    from transforms.read import match_input_files

    files = ["a/x/p.png", "a/x/q.jpg", "a/k/x/p.png", "a/x/m/p.png", "a/k/j/x/m/n/p.png",
             "a/y/p.png", "a/p.png", "a/xx/p.png"]
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")

    def matched(pattern):
        return sorted(m.path[len(str(tmp_path)) + 1:] for m in match_input_files(f"{tmp_path}/{pattern}"))

    assert matched("a/**/x/**/*.png") == ["a/k/j/x/m/n/p.png", "a/k/x/p.png", "a/x/m/p.png", "a/x/p.png"]
    assert matched("a/**/*.png") == sorted(f for f in files if f.endswith(".png"))
    assert matched("a/*.png") == ["a/p.png"]  # no `**/`: Beam's own matching
    assert matched("a/x**/p.png") == ["a/x/m/p.png", "a/x/p.png", "a/xx/p.png"]  # not a whole segment


def test_a_folder_means_every_file_under_it(tmp_path, tiny_inpaint_weights):
    images, masks = tmp_path / "in", tmp_path / "masks"
    _image(images / "top.png", (200, 0, 0))
    _image(images / "sub/nested.png", (0, 200, 0))
    _empty_masks(masks, "top.png", "sub/nested.png")
    for i, folder in enumerate([str(images), f"{images}/"]):
        output = tmp_path / f"out{i}"
        rows = _masks_run(folder, masks, output, tiny_inpaint_weights)
        assert {uri: row["status"] for uri, row in rows.items()} == {
            str(images / "top.png"): "unchanged", str(images / "sub/nested.png"): "unchanged"}, folder
        assert sorted(output_files(output)) == ["sub/nested.png", "top.png"]


class _ObjectStore(FileSystem):
    """A bucket in memory, listed by name prefix as GCS is (no folders)."""
    objects: set[str] = set()

    @classmethod
    def scheme(cls):
        return "teststore"

    def has_dirs(self):
        return False

    def _list(self, prefix):
        return (FileMetadata(path, 0) for path in sorted(self.objects) if path.startswith(prefix))

    def exists(self, path):
        return path in self.objects

    def metadata(self, path):
        return FileMetadata(path, 0)

    def _unused(self, *args, **kwargs):
        raise NotImplementedError

    copy = create = delete = join = last_updated = mkdirs = open = rename = size = split = _unused


def test_globstar_and_folders_on_an_object_store():
    from transforms.read import folder_as_pattern, match_input_files, pattern_root

    _ObjectStore.objects = {"teststore://b/in/top.png", "teststore://b/in/sub/nested.png",
                            "teststore://b/input.png", "teststore://b/in.png"}

    def matched(pattern):
        return sorted(m.path for m in match_input_files(pattern))

    assert matched("teststore://b/in/**/*.png") == ["teststore://b/in/sub/nested.png", "teststore://b/in/top.png"]
    for folder in ("teststore://b/in", "teststore://b/in/"):
        pattern = folder_as_pattern(folder)
        assert pattern == "teststore://b/in/**" and pattern_root(pattern) == "teststore://b/in/"
        assert matched(pattern) == ["teststore://b/in/sub/nested.png", "teststore://b/in/top.png"]
    assert folder_as_pattern("teststore://b/in.png") == "teststore://b/in.png"
    assert folder_as_pattern("teststore://b/missing") == "teststore://b/missing"


def test_an_output_folder_inside_the_input_tree_is_never_read(tmp_path, tiny_inpaint_weights, caplog,
                                                               monkeypatch):
    tree, masks = tmp_path / "tree", tmp_path / "masks"
    _image(tree / "a.png", (200, 0, 0))
    _image(tree / "sub/b.png", (0, 200, 0))
    _empty_masks(masks, "a.png", "sub/b.png")
    output = tree / "out"
    first = _masks_run(f"{tree}/**", masks, output, tiny_inpaint_weights, "--report", "--write_masks")
    assert sorted(first) == [str(tree / "a.png"), str(tree / "sub/b.png")]
    with caplog.at_level(logging.INFO, logger="transforms.read"):
        second = _masks_run(f"{tree}/**", masks, output, tiny_inpaint_weights, "--report", "--write_masks")
    assert {uri: row["status"] for uri, row in second.items()} == {uri: "unchanged" for uri in first}
    assert sorted(output_files(output)) == ["a.png", "sub/b.png"]
    excluded = [r.getMessage() for r in caplog.records if "outputs of a run" in r.getMessage()]
    assert len(excluded) == 1 and int(excluded[0].split()[0]) >= 5, excluded  # 2 images, 2 masks, ...

    from transforms.read import _MatchFiles
    monkeypatch.chdir(tree)  # the output given relative, the pattern absolute: still left out
    assert sorted(m.path for m in _MatchFiles("./out/").process(f"{tree}/**")) == sorted(first)


def test_inputs_in_a_folder_of_the_output_root_are_read(tmp_path, tiny_inpaint_weights):
    """Only what runs write (images/, masks/, metadata/, report/) is left out, not the rest of --output."""
    root, masks = tmp_path / "job", tmp_path / "masks"
    _image(root / "raw/a.png", (200, 0, 0))
    _empty_masks(masks, "a.png")
    for _ in range(2):
        rows = _masks_run(str(root / "raw"), masks, root, tiny_inpaint_weights)
        assert {uri: row["status"] for uri, row in rows.items()} == {str(root / "raw/a.png"): "unchanged"}


def test_local_inputs_are_named_by_absolute_path_whatever_the_spelling(tmp_path, tiny_inpaint_weights,
                                                                       monkeypatch):
    """A row names its file wherever the metadata is read, and --skip_existing finds the earlier
    rows of a rerun that spells the same folder another way."""
    tree, masks = tmp_path / "tree", tmp_path / "masks"
    _image(tree / "a.png", (200, 0, 0))
    _image(tree / "b.png", (0, 200, 0))
    _empty_masks(masks, "a.png", "b.png")
    monkeypatch.chdir(tmp_path)
    first = _masks_run("tree", masks, "out", tiny_inpaint_weights)
    assert sorted(first) == [str(tree / "a.png"), str(tree / "b.png")]
    assert first[str(tree / "a.png")]["output_uri"] == str(tmp_path / "out" / "images" / "a.png")

    (tmp_path / "out").rename(tmp_path / "moved")
    monkeypatch.chdir(tree)
    rerun = _masks_run("./", masks, tmp_path / "moved", tiny_inpaint_weights, "--skip_existing")
    for uri, row in rerun.items():
        assert row["status"] == "unchanged" and row["width"] == 12
        assert row["output_uri"] == str(tmp_path / "moved" / "images" / posixpath.basename(uri))


def _example(image_id: str | None, rgb) -> bytes:
    import tensorflow as tf

    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), rgb).save(buffer, "PNG")
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()]))}
    if image_id is not None:
        feature["image/filename"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_id.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shard(path, records, compression: str | None = None):
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), compression) as writer:
        for image_id, rgb in records:
            writer.write(_example(image_id, rgb))


def test_tfrecord_ids_that_give_one_output_name_never_overwrite_each_other(tmp_path, tiny_inpaint_weights):
    shards = tmp_path / "shards"
    shard0, shard1 = shards / "part-0.tfrecord", shards / "part-1.tfrecord"
    first_cat = (200, 0, 0)
    # Within one shard `cat.jpg` and `cat.png` both give cat.png; shard 1 repeats `cat.jpg`.
    _write_shard(shard0, [("dog.jpg", (0, 0, 200)), ("cat.jpg", first_cat), ("cat.png", (0, 200, 0))])
    _write_shard(shard1, [("cat.jpg", (90, 90, 90)), ("bird.jpg", (9, 9, 9))])
    masks = tmp_path / "masks"
    _empty_masks(masks, "cat.png", "dog.png", "bird.png")
    output = tmp_path / "out"
    run_pipeline(["--input_tfrecords", f"{shards}/*.tfrecord", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights])
    rows = read_rows(output)
    assert len(rows) == 5
    winner = rows[f"{shard0}#1"]
    assert winner["status"] == "unchanged" and winner["output_uri"] == str(output / "images" / "cat.png")
    for loser in (f"{shard0}#2", f"{shard1}#0"):
        assert rows[loser]["status"] == "error" and rows[loser]["output_uri"] is None
        assert f"{shard0}#1" in rows[loser]["error"] and "unique" in rows[loser]["error"], rows[loser]["error"]
    assert rows[f"{shard0}#0"]["status"] == rows[f"{shard1}#1"]["status"] == "unchanged"
    assert sorted(output_files(output)) == ["bird.png", "cat.png", "dog.png"]
    np.testing.assert_array_equal(load_rgb(output / "images" / "cat.png")[0, 0], first_cat)


def test_skip_existing_writes_again_a_name_a_newly_added_shard_wins(tmp_path, tiny_inpaint_weights):
    """A shard added since the last run, sorting first, takes an output name over a record that
    wrote it then: skipped, the new winner's row named the old one's image as its output."""
    shards, masks, output = tmp_path / "shards", tmp_path / "masks", tmp_path / "out"
    _empty_masks(masks, "cat.png")
    args = ["--input_tfrecords", f"{shards}/*.tfrecord", "--segmenter", "masks", "--masks", masks,
            "--output", output, "--inpaint_weights", tiny_inpaint_weights, "--skip_existing"]
    _write_shard(shards / "part-1.tfrecord", [("cat.jpg", (200, 0, 0))])
    run_pipeline(args)
    _write_shard(shards / "part-0.tfrecord", [("cat.jpg", (0, 0, 200))])
    run_pipeline(args)
    rows = read_rows(output)
    assert rows[f"{shards}/part-0.tfrecord#0"]["status"] == "unchanged"
    assert rows[f"{shards}/part-1.tfrecord#0"]["status"] == "error"
    np.testing.assert_array_equal(load_rgb(output / "images" / "cat.png")[0, 0], (0, 0, 200))


def test_records_without_ids_in_shards_of_one_name_in_two_folders_are_named_apart(tmp_path):
    """`train/data.tfrecord` and `val/data.tfrecord`: named by the shard's name alone, their first
    records both claimed `data.tfrecord-000000.png`, and one was an error row, `ids must be unique`."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.read import ReadTFRecordImages

    for split in ("train", "val"):
        _write_shard(tmp_path / "data" / split / "data.tfrecord", [(None, (1, 2, 3))])
    with beam.Pipeline() as pipeline:
        infos = pipeline | ReadTFRecordImages(str(tmp_path / "data")) | beam.MapTuple(lambda info, _: info)
        assert_that(infos | beam.Map(lambda info: (info.relative_path, info.error)), equal_to(
            [("train/data.tfrecord-000000.png", None), ("val/data.tfrecord-000000.png", None)]))


def test_reading_a_tfrecord_shard_leaves_tensorflow_device_settings_open(tmp_path):
    """On a GPU worker the reader runs before the inpainter loads: had it started TensorFlow's
    runtime, models/runtime.py could no longer switch on memory growth, and TensorFlow would take
    the whole GPU from Mask R-CNN. (Device settings are checked on the CPU, which every machine has.)"""
    shard = tmp_path / "part-0.tfrecord"
    _write_shard(shard, [("cat.jpg", (1, 2, 3))])
    code = ("import tensorflow as tf\n"
            "from transforms.read import RecordParser\n"
            f"records = list(RecordParser('image/encoded', 'image/filename').records({str(shard)!r}))\n"
            "assert [info.relative_path for _, info, _, _ in records] == ['cat.png'], records\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "print(len(tf.config.list_logical_devices('CPU')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "2"


def test_a_corrupt_shard_is_an_error_row_that_says_from_where(tmp_path):
    """Records before a corrupt stretch are read; the row for the rest says which record it
    follows, or that the shard is unreadable from its first record."""
    from apache_beam.io.filesystem import FileMetadata

    from transforms.read import RecordParser, _ReadTFRecordShard

    whole = tmp_path / "whole.tfrecord"
    _write_shard(whole, [("a.png", (0, 0, 0)), ("b.png", (9, 9, 9))])
    data = whole.read_bytes()
    cut, garbage = tmp_path / "cut.tfrecord", tmp_path / "garbage.tfrecord"
    cut.write_bytes(data[:len(data) - 5])  # the second record's tail is lost
    garbage.write_bytes(b"not a TFRecord file at all")
    read = _ReadTFRecordShard(RecordParser("image/encoded", "image/filename"))

    def errors(path):
        infos = [info for info, _ in read.process(FileMetadata(str(path), path.stat().st_size), {})]
        return [(info.image_uri, info.error.split(":")[1].strip()) for info in infos if info.error]
    assert errors(cut) == [(f"{cut}#1", "TFRecord shard unreadable after record 0")]
    assert errors(garbage) == [(f"{garbage}#0", "TFRecord shard unreadable from its first record")]


def test_a_corrupt_shard_tail_counts_among_the_images_read(tmp_path, tiny_inpaint_weights):
    """The run's summary: `images_read` 1 and `errors` 2 for a shard whose second record is cut."""
    from pipeline.run import summarize

    shard, masks = tmp_path / "cut.tfrecord", tmp_path / "masks"
    _write_shard(shard, [("a.png", (0, 0, 0)), ("b.png", (9, 9, 9))])
    shard.write_bytes(shard.read_bytes()[:-5])
    masks.mkdir()  # no mask for a.png: an error row too
    totals = summarize(run_pipeline(["--input_tfrecords", shard, "--segmenter", "masks", "--masks", masks,
                                     "--output", tmp_path / "out", "--inpaint_weights", tiny_inpaint_weights]))
    assert len(read_rows(tmp_path / "out")) == totals["images_read"] == totals["errors"] == 2


def test_a_gzip_compressed_shard_is_read_by_its_extension(tmp_path):
    """TensorFlow's `TFRecordWriter(path, "GZIP")` and Beam's `WriteToTFRecord` write `.gz` shards;
    read raw, each was one error row, `corrupt TFRecord file`."""
    from transforms.read import RecordParser

    shard = tmp_path / "part-0.tfrecord.gz"
    _write_shard(shard, [("cat.jpg", (1, 2, 3)), ("dog.jpg", (4, 5, 6))], "GZIP")
    records = list(RecordParser("image/encoded", "image/filename").records(str(shard)))
    assert [(info.relative_path, info.error) for _, info, _, _ in records] == [("cat.png", None), ("dog.png", None)]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(records[1][2])))[0, 0], (4, 5, 6))


def test_only_an_image_extension_leaves_an_id_for_its_output_name(tmp_path):
    """A video's frames `frame.0001`, `frame.0002` all claimed `frame.png`: one was written, the
    others were error rows, `ids must be unique`."""
    from transforms.read import RecordParser

    shard = tmp_path / "part-0.tfrecord"
    ids = ["frame.0001", "frame.0002", "2019.06.01", "cat.JPG", "scan.tiff", "IMG_1.heic", "a.b/c"]
    _write_shard(shard, [(image_id, (1, 2, 3)) for image_id in ids])
    records = RecordParser("image/encoded", "image/filename").records(str(shard))
    assert [info.relative_path for _, info, _, _ in records] == [
        "frame.0001.png", "frame.0002.png", "2019.06.01.png", "cat.png", "scan.png", "IMG_1.png", "a.b/c.png"]


def test_an_integer_id_names_its_record(tmp_path):
    """`--tfrecord_id_key image/id` on an int64 feature named each record `<shard>-<offset>` instead."""
    import tensorflow as tf

    from transforms.read import RecordParser

    shard = tmp_path / "part-0.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for image_id in (397133, 0):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"pixels"])),
                "image/id": tf.train.Feature(int64_list=tf.train.Int64List(value=[image_id]))})).SerializeToString())
    records = list(RecordParser("image/encoded", "image/id").records(str(shard)))
    assert [(info.relative_path, image_id) for _, info, _, image_id in records] == [("397133.png", "397133"), ("0.png", "0")]


def test_system_files_and_sidecars_beside_photos_are_not_read(tmp_path, tiny_inpaint_weights, caplog):
    """A real archive's folders hold .DS_Store, Thumbs.db, macOS's ._ companions and editors'
    sidecars: each would be an error row, `not an image file`."""
    import pipeline.run
    from pipeline.options import RemoverOptions

    tree, masks = tmp_path / "tree", tmp_path / "masks"
    _image(tree / "a.png", (200, 0, 0))
    _empty_masks(masks, "a.png")
    never = [".DS_Store", "Thumbs.db", "sub/desktop.ini", "._a.png", "a.xmp", "sub/IMG_0001.AAE"]
    for relative in never:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_bytes(b"\x00\x05\x16\x07 not an image")
    with caplog.at_level(logging.INFO, logger="transforms.read"):
        rows = _masks_run(str(tree), masks, tmp_path / "out", tiny_inpaint_weights)
    assert list(rows) == [str(tree / "a.png")]
    assert any(r.getMessage().startswith(f"{len(never)} files matching ") and "system files or sidecars"
               in r.getMessage() for r in caplog.records)

    (tree / "a.png").unlink()
    options = RemoverOptions(["--input", str(tree), "--output", str(tmp_path / "out2"), "--segmenter", "masks",
                              "--masks", str(masks)])
    with pytest.raises(pipeline.run.UsageError, match=re.escape(
            f"no file matches --input {tree} but 6 system files or sidecars (.DS_Store, ._*, .xmp, ...)")):
        pipeline.run._require_matching_input(options)


def test_each_sidecar_goes_with_its_own_image():
    from transforms.read import sidecars_by_image

    images = ["/p/a.jpg", "/p/IMG_1.HEIC", "/p/c.jpg", "/p/c.png", "/p/sub/a.jpg", "/p/d.JPG", "/p/e.jpg",
              "/p/f.JPG", "/p/f.jpg", "/p/g.jpg"]
    sidecars = ["/p/a.jpg.xmp", "/p/a.xmp", "/p/IMG_1.AAE", "/p/img_1.xmp", "/p/c.xmp", "/p/c.png.xmp",
                "/p/sub/b.xmp", "/p/D.JPG.XMP", "/p/a.jpg.json", "/p/IMG_1.HEIC.supplemental-metadata.json",
                "/p/e.json", "/p/metadata.json", "/p/f.JPG.xmp", "/p/f.jpg.xmp", "/p/F.Jpg.xmp", "/p/g.xmp",
                "/p/h.xmp"]
    assert sidecars_by_image(images, sidecars, others=["/p/G.CR2", "/p/h.png"]) == {
        "/p/a.jpg": ("/p/a.jpg.json", "/p/a.jpg.xmp", "/p/a.xmp"),  # its own name's, and its stem's
        "/p/IMG_1.HEIC": ("/p/IMG_1.AAE", "/p/IMG_1.HEIC.supplemental-metadata.json", "/p/img_1.xmp"),  # any case
        "/p/c.png": ("/p/c.png.xmp",),  # c.xmp may describe c.jpg or c.png: neither's
        "/p/d.JPG": ("/p/D.JPG.XMP",),  # sub/b.xmp: no image of that name in its folder; Takeout's
        # JSON goes by the whole name only (e.json is not e.jpg's), an album's metadata.json is nobody's
        "/p/f.JPG": ("/p/f.JPG.xmp",), "/p/f.jpg": ("/p/f.jpg.xmp",)}  # its own case first; F.Jpg.xmp: either's
    # g.xmp describes the raw beside g.jpg that the pattern left out; h.xmp is the unmatched h.png's


@pytest.mark.parametrize("pattern", ["{tree}", "{tree}/**/*g"])  # the second matches no sidecar itself
def test_sidecars_are_written_beside_their_images_less_the_removed_persons_regions(
        tmp_path, tiny_inpaint_weights, pattern):
    from tests.bad_input_corpus import REGIONS_XMP, left_mask_png

    tree, masks, output = tmp_path / "tree", tmp_path / "masks", tmp_path / "out"
    _image(tree / "a.jpg", (120, 90, 60), size=(40, 20))
    (masks / "a.png").parent.mkdir(parents=True)
    (masks / "a.png").write_bytes(left_mask_png(40, 20))  # where REGIONS_XMP puts Alice
    (tree / "a.jpg.xmp").write_bytes(REGIONS_XMP)
    _image(tree / "b.png", (0, 200, 0))
    _empty_masks(masks, "b.png")
    (tree / "b.xmp").write_bytes(REGIONS_XMP)  # b has nothing removed: its sidecar stays as it was
    _image(tree / "sub/IMG_1.png", (0, 0, 200), size=(40, 20))
    (masks / "sub").mkdir()
    (masks / "sub/IMG_1.png").write_bytes(left_mask_png(40, 20))
    (tree / "sub/IMG_1.AAE").write_bytes(b"<plist>edits</plist>")
    _image(tree / "c.png", (9, 9, 9))
    _image(tree / "c.jpg", (9, 9, 9))
    _empty_masks(masks, "c.png", "c.jpg")
    (tree / "c.xmp").write_bytes(REGIONS_XMP)  # c.png's or c.jpg's?
    _image(tree / "d.jpg", (9, 9, 9))
    _empty_masks(masks, "d.png")
    (tree / "d.CR2").write_bytes(b"II*\x00 a raw")  # the second pattern leaves it out: d.xmp is still its
    (tree / "d.xmp").write_bytes(REGIONS_XMP)
    rows = _masks_run(pattern.format(tree=tree), masks, output, tiny_inpaint_weights)
    expected = {"a.jpg": "cleaned", "b.png": "unchanged", "IMG_1.png": "cleaned", "c.png": "unchanged",
                "c.jpg": "unchanged", "d.jpg": "unchanged"}
    if pattern == "{tree}":
        expected["d.CR2"] = "error"  # a camera raw file
    assert {posixpath.basename(uri): row["status"] for uri, row in rows.items()} == expected
    written = output_files(output)
    assert sorted(written) == ["a.jpg", "a.jpg.xmp", "b.png", "b.xmp", "c.jpg", "c.png", "d.jpg", "sub/IMG_1.AAE",
                               "sub/IMG_1.png"]
    assert b"Alice" not in written["a.jpg.xmp"] and written["a.jpg.xmp"].count(b"Bob") == 3
    assert written["b.xmp"] == REGIONS_XMP and written["sub/IMG_1.AAE"] == b"<plist>edits</plist>"
    assert ("2 XMP face or person regions of what was removed dropped from its sidecar a.jpg.xmp, with the names "
            "only they gave") in rows[str(tree / "a.jpg")]["notes"]


def test_xmp_sidecars_that_are_utf16_malformed_of_turned_pages_or_of_an_image_not_written(
        tmp_path, tiny_inpaint_weights):
    """UTF-16 is cleaned as UTF-8 is, and written back in UTF-16; one that names regions but is not
    well-formed XML is not written (it could still name who was removed); a multi-page TIFF's,
    its pages turned upright, is written upright too; an image whose write fails gets none."""
    from tests.bad_input_corpus import REGIONS_XMP, left_mask_png

    tree, masks, output = tmp_path / "tree", tmp_path / "masks", tmp_path / "out"
    masks.mkdir()
    for name in ("wide", "broken", "failing"):
        _image(tree / f"{name}.jpg", (120, 90, 60), size=(40, 20))
        (masks / f"{name}.png").write_bytes(left_mask_png(40, 20))
    (tree / "wide.jpg.xmp").write_bytes(REGIONS_XMP.decode().encode("utf-16"))
    (tree / "broken.jpg.xmp").write_bytes(REGIONS_XMP.replace(b"</rdf:RDF>", b""))
    (tree / "failing.jpg.xmp").write_bytes(REGIONS_XMP)
    (output / "images/failing.jpg").mkdir(parents=True)  # where the image would go
    turned = Image.Exif()
    turned[0x0112] = 6
    pages = [Image.new("RGB", (40, 20), colour) for colour in ((200, 0, 0), (0, 200, 0))]
    pages[0].save(tree / "pages.tif", save_all=True, append_images=pages[1:], exif=turned)
    (tree / "pages.tif.xmp").write_bytes(REGIONS_XMP.replace(
        b"xmlns:dc=", b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc=').replace(
        b"<dc:rights>", b"<tiff:Orientation>6</tiff:Orientation><dc:rights>"))
    (masks / "pages.png").write_bytes(left_mask_png(20, 40))  # upright
    rows = _masks_run(str(tree), masks, output, tiny_inpaint_weights)
    notes = {posixpath.basename(uri): row["notes"] for uri, row in rows.items()}
    assert {posixpath.basename(uri): row["status"] for uri, row in rows.items()} == {
        "wide.jpg": "cleaned", "broken.jpg": "cleaned", "failing.jpg": "error", "pages.tif": "cleaned"}
    written = output_files(output)
    assert sorted(written) == ["broken.jpg", "pages.tif", "pages.tif.xmp", "wide.jpg", "wide.jpg.xmp"]
    wide = written["wide.jpg.xmp"].decode("utf-16")
    assert written["wide.jpg.xmp"].startswith(b"\xff\xfe") and "Alice" not in wide and wide.count("Bob") == 3
    assert "2 XMP face or person regions of what was removed dropped from its sidecar wide.jpg.xmp, with the " \
           "names only they gave" in notes["wide.jpg"]
    assert ("sidecar broken.jpg.xmp not written: ValueError: not well-formed XML, so the face and person regions "
            "of what was removed could not be taken out of it") in notes["broken.jpg"]
    assert b"<tiff:Orientation>1</tiff:Orientation>" in written["pages.tif.xmp"] and b"Alice" not in written["pages.tif.xmp"]
    assert rows[str(tree / "failing.jpg")]["notes"] == []


def test_skip_existing_redoes_an_image_until_its_sidecars_are_written(tmp_path):
    """A sidecar added since the image was written, or one a killed run or a failure left unwritten,
    is written by a --skip_existing run: the image is done only once its sidecars are."""
    from transforms.records import ImageInfo
    from transforms.skip_existing import SkipExisting

    (tmp_path / "images/sub").mkdir(parents=True)
    (tmp_path / "images/sub/a.jpg").write_bytes(b"written")
    info = ImageInfo("/in/sub/a.jpg", "sub/a.jpg", sidecars=("/in/sub/a.jpg.xmp", "/in/sub/A.AAE"))
    skip = SkipExisting(str(tmp_path))

    def skipped(info):
        """The output a skipped image keeps; None for one passed on, to be done again."""
        (outcome,) = skip.process((info, b""))
        return None if outcome == (info, b"") else outcome.value.output_uri
    assert skipped(info.replace(sidecars=())) == str(tmp_path / "images/sub/a.jpg")
    assert skipped(info) is None
    (tmp_path / "images/sub/a.jpg.xmp").write_bytes(b"<x/>")
    assert skipped(info) is None
    (tmp_path / "images/sub/A.AAE").write_bytes(b"<plist/>")
    assert skipped(info) == str(tmp_path / "images/sub/a.jpg")


def test_sidecars_on_an_object_store_are_found_in_one_listing(monkeypatch):
    """There a folder's listing is one of its whole subtree: the pattern's root is listed once."""
    from transforms.read import _beside_images, _matched_apart, sidecars_by_image

    _ObjectStore.objects = {"teststore://b/in/a.jpg", "teststore://b/in/a.jpg.xmp", "teststore://b/in/y/b.jpg",
                            "teststore://b/in/y/B.AAE", "teststore://b/in/y/z/c.xmp", "teststore://b/out.xmp",
                            "teststore://b/in/y/b.dng"}
    listed = []
    monkeypatch.setattr(_ObjectStore, "_list", lambda self, prefix: listed.append(prefix) or (
        FileMetadata(path, 0) for path in sorted(self.objects) if path.startswith(prefix)))
    pattern = "teststore://b/in/**/*.jpg"
    images, others, _ = _matched_apart(pattern, None)
    listed.clear()
    sidecars, unmatched = _beside_images(pattern, images, others)
    assert sidecars == ["teststore://b/in/a.jpg.xmp", "teststore://b/in/y/B.AAE"] and listed == ["teststore://b/in/"]
    assert unmatched == ["teststore://b/in/y/b.dng"]
    assert sidecars_by_image([m.path for m in images], sidecars, unmatched) == {
        "teststore://b/in/a.jpg": ("teststore://b/in/a.jpg.xmp",)}  # B.AAE may be the raw's


def test_sidecars_are_found_in_a_folder_whose_name_holds_glob_characters(tmp_path):
    from transforms.read import _beside_images, _matched_apart

    folder = tmp_path / "Photos [2019] *best?"
    _image(folder / "a.jpg", (1, 2, 3))
    (folder / "a.jpg.xmp").write_bytes(b"<x:xmpmeta/>")
    pattern = f"{tmp_path}/**/*.jpg"
    images, others, _ = _matched_apart(pattern, None)
    assert _beside_images(pattern, images, others) == ([str(folder / "a.jpg.xmp")], [])
