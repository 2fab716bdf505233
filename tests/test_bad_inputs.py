"""Issue 8: a messy archive never fails the job; every input is one row; nothing escapes --output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.bad_input_corpus import build_cases
from tests.pipeline_helpers import load_rgb, output_files, read_rows, run_pipeline
from transforms.user_masks import mask_path, read_user_mask


def _write_corpus(root):
    images, masks = root / "in", root / "masks"
    cases = build_cases()
    for case in cases:
        path = images / case.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.data)
        if case.mask is not None:
            mask = (masks / case.relative).with_suffix(".png")
            mask.parent.mkdir(parents=True, exist_ok=True)
            mask.write_bytes(case.mask)
    return images, masks, cases


def _all_files(root) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def test_every_bad_input_becomes_a_row_with_the_right_status(tmp_path, tiny_inpaint_weights):
    images, masks, cases = _write_corpus(tmp_path)
    output = tmp_path / "out"
    before = _all_files(tmp_path)
    run_pipeline(["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights, "--dilate", "1",
                  "--write_masks"])
    rows = read_rows(output)
    assert len(rows) == len(cases)
    for case in cases:
        row = rows[str(images / case.relative)]
        assert row["status"] == case.expected, (case.relative, row["error"])
        if case.expected == "error":
            assert case.error_contains in row["error"], (case.relative, row["error"])
            assert row["output_uri"] is None
        else:
            assert row["error"] is None
            written = output / "images" / (case.written_as or case.relative)
            assert row["output_uri"] == str(written) and written.is_file()
            assert load_rgb(written).shape == (row["height"], row["width"], 3)
            input_format = Image.open(images / case.relative).format
            # An MPO's pictures: all of them, bar previews.
            expected_format = "PNG" if case.written_as else case.written_format or input_format
            assert Image.open(written).format == expected_format, case.relative
            # --write_masks gives back the user's mask, upright, under its own name.
            written_mask = mask_path(str(output / "masks"), case.relative)
            np.testing.assert_array_equal(
                np.asarray(Image.open(written_mask)) == 255,
                read_user_mask(mask_path(str(masks), case.relative), row["width"], row["height"]))
        if case.note_contains:
            assert any(case.note_contains in note for note in row["notes"]), row["notes"]
    new_files = _all_files(tmp_path) - before
    assert all(f.startswith(str(output) + os.sep) for f in new_files), "wrote outside --output"
    assert not [f for f in new_files if f.endswith(".partial") or "beam-temp" in f]


def test_written_images_are_upright_and_keep_alpha_and_16_bits(tmp_path, tiny_inpaint_weights):
    images, masks, _ = _write_corpus(tmp_path)
    output = tmp_path / "out"
    run_pipeline(["--input", f"{images}/r*", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights, "--dilate", "1"])
    rotated = Image.open(output / "images" / "rotated.jpg")
    assert rotated.size == (20, 40)  # stored 40x20 with orientation 6: written upright
    written, original = Image.open(output / "images" / "rgba.png"), Image.open(images / "rgba.png")
    assert written.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(written)[:, :, 3], np.asarray(original)[:, :, 3])
    for name, channels in [("rgb16.png", 3), ("rgba16.tif", 4)]:
        written, original = (cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
                             for folder in (output / "images", images))
        assert written.dtype == np.uint16 and written.shape == (30, 30, channels)
        np.testing.assert_array_equal(written[:, :6], original[:, :6])  # the hole, dilated, starts at x = 6
        assert (written[10:20, 10:20, :3] != original[10:20, 10:20, :3]).any()  # and was filled
        if channels == 4:
            np.testing.assert_array_equal(written[..., 3], original[..., 3])


@pytest.mark.parametrize("path,root,expected", [
    ("gs://bucket/in/../../etc/passwd.png", "gs://bucket/in/", "etc/passwd.png"),
    ("gs://bucket/in/a/./../b.jpg", "gs://bucket/in/", "a/b.jpg"),
    ("/data/in/..hidden/x.png", "/data/in/", "..hidden/x.png"),
    ("/elsewhere/x.png", "/data/in/", "elsewhere/x.png"),
])
def test_object_names_with_dot_dot_stay_under_the_output(path, root, expected):
    """GCS object names may contain `..` segments; the output path must stay under --output."""
    from transforms.read import safe_relative_path
    from transforms.write import output_path

    relative = safe_relative_path(path, root)
    assert relative == expected
    target = output_path("/out", relative)
    assert os.path.normpath(target).startswith("/out/images/")


def test_pattern_with_dot_dot_writes_under_output(tmp_path, tiny_inpaint_weights):
    images, masks = tmp_path / "in", tmp_path / "masks"
    (images / "sub").mkdir(parents=True)
    masks.mkdir()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(images / "x.png")
    Image.new("L", (16, 16)).save(masks / "x.png")
    output = tmp_path / "out"
    run_pipeline(["--input", f"{images}/sub/../*.png", "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights])
    (row,) = read_rows(output).values()
    assert row["status"] == "unchanged", row["error"]
    assert row["output_uri"] == str(output / "images" / "x.png")
    new_files = _all_files(tmp_path) - _all_files(images) - _all_files(masks)
    assert new_files and all(f.startswith(str(output) + os.sep) for f in new_files)


def test_tfrecord_record_without_the_image_key_is_an_error_row(tmp_path, tiny_inpaint_weights):
    import io
    import tensorflow as tf

    def example(features):
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(buffer, "PNG")
    shard = tmp_path / "shard-00000.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        writer.write(example({"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
                              "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"red.jpg"]))}))
        writer.write(example({"image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"empty"]))}))
        writer.write(example({"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()]))}))
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("red", "shard-00000.tfrecord-000002"):
        Image.new("L", (20, 20)).save(masks / f"{name}.png")
    output = tmp_path / "out"
    run_pipeline(["--input_tfrecords", str(shard), "--segmenter", "masks", "--masks", masks,
                  "--output", output, "--inpaint_weights", tiny_inpaint_weights])
    rows = read_rows(output)
    assert len(rows) == 3
    assert rows[f"{shard}#0"]["output_uri"] == str(output / "images" / "red.png")
    assert rows[f"{shard}#1"]["error"] == ("read: record has no 'image/encoded' bytes feature "
                                           "(its bytes features: 'image/filename')")
    assert rows[f"{shard}#2"]["output_uri"] == str(output / "images" / "shard-00000.tfrecord-000002.png")
    assert sorted(output_files(output)) == ["red.png", "shard-00000.tfrecord-000002.png"]


def _pipeline_command(images, masks, output, weights, *extra):
    return [sys.executable, "run_pipeline.py", "--input", f"{images}/*.png", "--segmenter", "masks",
            "--masks", str(masks), "--output", str(output), "--inpaint_weights", weights, *extra]


def test_killed_run_resumed_with_skip_existing_matches_an_uninterrupted_run(tmp_path, tiny_inpaint_weights):
    from tests.conftest import rectangle_mask, textured_image

    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    count = 40
    for i in range(count):
        Image.fromarray(textured_image(96, 128, i)).save(images / f"{i:03d}.png")
        Image.fromarray(rectangle_mask(96, 128, (10 + i, 20, 60 + i, 70))).save(masks / f"{i:03d}.png")
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    complete = tmp_path / "complete"
    subprocess.run(_pipeline_command(images, masks, complete, tiny_inpaint_weights),
                   cwd=project, check=True, capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_pipeline_command(images, masks, interrupted, tiny_inpaint_weights),
                               cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        # Names only: a temporary file listed here may be renamed before it could be read.
        written = [f for _, _, files in os.walk(interrupted / "images") for f in files if not f.startswith(".")]
        if len(written) >= 3:
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before_kill = len([f for f in output_files(interrupted) if not os.path.basename(f).startswith(".")])
    if done_before_kill >= count:
        pytest.skip("the run finished before it could be killed")
    assert not (interrupted / "metadata").exists() or not list((interrupted / "metadata").glob("part-*"))

    subprocess.run(_pipeline_command(images, masks, interrupted, tiny_inpaint_weights, "--skip_existing"),
                   cwd=project, check=True, capture_output=True, timeout=600)
    assert output_files(interrupted) == output_files(complete)  # no temporary files left either
    rows = read_rows(interrupted)
    assert len(rows) == count
    statuses = [r["status"] for r in rows.values()]
    assert statuses.count("skipped") == done_before_kill and statuses.count("cleaned") == count - done_before_kill


class _Payload:
    """Pickles to a call that would create a marker file if anything unpickled it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("flag", ["--inpaint_weights", "--seg_checkpoint"])
@pytest.mark.parametrize("kind", ["pickle_with_code", "corrupt", "unreachable"])
def test_bad_model_files_stop_the_run_before_any_image_and_execute_nothing(
        tmp_path, tiny_inpaint_weights, tiny_segmenter, flag, kind):
    import pickle

    import torch

    marker = tmp_path / "pwned"
    suffix = ".keras" if flag == "--inpaint_weights" else ".pth"
    bad = tmp_path / f"model{suffix}"
    if kind == "pickle_with_code":
        if suffix == ".pth":
            torch.save({"state_dict": _Payload(marker)}, bad)
        else:
            bad.write_bytes(pickle.dumps(_Payload(marker)))
        uri = str(bad)
    elif kind == "corrupt":
        bad.write_bytes(b"\x50\x4b\x03\x04 not really a zip nor a checkpoint")
        uri = str(bad)
    else:
        uri = f"https://127.0.0.1:9/models/model{suffix}"  # nothing listens on the discard port
    images = tmp_path / "in"
    images.mkdir()
    Image.new("RGB", (16, 16)).save(images / "x.png")
    config, checkpoint = tiny_segmenter
    models = {"--inpaint_weights": tiny_inpaint_weights, "--seg_checkpoint": checkpoint}
    models[flag] = uri
    with pytest.raises(SystemExit) as stopped:
        run_pipeline(["--input", f"{images}/*.png", "--output", tmp_path / "out", "--classes", "all",
                      "--seg_config", config, "--seg_checkpoint", models["--seg_checkpoint"],
                      "--inpaint_weights", models["--inpaint_weights"]])
    message = str(stopped.value)
    assert ("inpainting weights" if flag == "--inpaint_weights" else "segmentation model") in message
    if kind == "unreachable":
        assert "local path" in message
    assert not marker.exists(), "unpickling ran the payload"
    assert not (tmp_path / "out").exists()
