"""The whole job with a (small, random-initialised) Mask R-CNN: classes and scores decide."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from pipeline.options import RemoverOptions
from pipeline.run import resolve_config
from tests.conftest import textured_image
from tests.pipeline_helpers import load_rgb, output_files, read_rows, run_pipeline
from tests.segmentation_fixtures import write_tiny_maskrcnn


def _corpus(tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    sizes = [(96, 128), (128, 96), (80, 80)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(textured_image(h, w, i)).save(images / f"{i}.png")
    return images, sizes


def test_mmdet_segmenter_rows_and_class_filter(tmp_path, tiny_segmenter, tiny_inpaint_weights):
    config, checkpoint = tiny_segmenter
    images, sizes = _corpus(tmp_path)
    common = ["--input", f"{images}/*.png", "--seg_config", config, "--seg_checkpoint", checkpoint,
              "--inpaint_weights", tiny_inpaint_weights, "--seg_batch_size", "2", "--dilate", "3"]
    run_pipeline(common + ["--output", tmp_path / "all", "--classes", "all", "--min_score", "0.05"])
    rows = read_rows(tmp_path / "all")
    assert len(rows) == len(sizes)
    labels_seen = set()
    for i, (h, w) in enumerate(sizes):
        row = rows[str(images / f"{i}.png")]
        assert row["segmenter"].startswith("tiny_maskrcnn@")
        for instance in row["instances"]:
            assert coco_mask.decode(instance["mask"]).shape == (h, w)
            # An empty mask (area 0) removes nothing and is never marked removed.
            assert instance["removed"] == (instance["score"] >= 0.05 and instance["area"] > 0)
            labels_seen.add(instance["label"])
        assert row["status"] == ("cleaned" if any(x["removed"] for x in row["instances"]) else "unchanged")
    assert labels_seen, "the random detector found nothing; the test would prove nothing"

    # Keep only one class that was seen: only its instances are removed, and images where
    # nothing of that class was found are written unchanged.
    chosen = sorted(labels_seen)[0]
    run_pipeline(common + ["--output", tmp_path / "one", "--classes", chosen, "--min_score", "0.05"])
    for uri, row in read_rows(tmp_path / "one").items():
        for instance in row["instances"]:
            assert instance["removed"] == (instance["label"] == chosen and instance["score"] >= 0.05
                                           and instance["area"] > 0)
        if not any(x["removed"] for x in row["instances"]):
            assert row["status"] == "unchanged"
            np.testing.assert_array_equal(load_rgb(row["output_uri"]), load_rgb(uri))

    # --keep_largest 1: of the instances chosen in each image, the largest stays.
    run_pipeline(common + ["--output", tmp_path / "subject", "--classes", "all", "--min_score", "0.05",
                           "--keep_largest", "1", "--report"])
    chosen_counts = []
    for uri, row in read_rows(tmp_path / "subject").items():
        candidates = [x for x in row["instances"] if x["score"] >= 0.05 and x["area"] > 0]
        kept = [x for x in row["instances"] if x["kept"]]
        assert len(kept) == min(1, len(candidates)) and all(x["area"] >= y["area"] for x in kept for y in candidates)
        assert not any(x["kept"] and x["removed"] for x in row["instances"])
        chosen_counts.append(len(candidates))
    assert max(chosen_counts) >= 2, "no image with one instance kept and another removed"
    report = (tmp_path / "subject" / "report" / "index.html").read_text()
    assert "<th>kept as subjects</th>" in report and report.count("; kept: ") == sum(c > 0 for c in chosen_counts)

    # A class's own --min_score: the class seen needs 0.99, the others 0.05.
    run_pipeline(common + ["--output", tmp_path / "strict", "--classes", "all", "--min_score", f"0.05,{chosen}=0.99"])
    for uri, row in read_rows(tmp_path / "strict").items():
        for instance in row["instances"]:
            needed = 0.99 if instance["label"] == chosen else 0.05
            assert instance["removed"] == (instance["score"] >= needed and instance["area"] > 0)


def test_a_min_score_for_a_class_not_removed_fails_before_any_work(tmp_path, tiny_segmenter, tiny_inpaint_weights):
    config, checkpoint = tiny_segmenter
    images, _ = _corpus(tmp_path)
    with pytest.raises(SystemExit, match="--min_score gives car, dog a score, but --classes person,cat does not remove them"):
        run_pipeline(["--input", f"{images}/*.png", "--seg_config", config, "--seg_checkpoint", checkpoint,
                      "--inpaint_weights", tiny_inpaint_weights, "--output", tmp_path / "out",
                      "--classes", "person,cat", "--min_score", "0.4,car=0.8,cat=0.6,dog=0.7"])
    assert not (tmp_path / "out").exists()


def test_a_supercategorys_min_score_holds_those_of_its_classes_that_are_removed(tmp_path, tiny_segmenter,
                                                                               tiny_inpaint_weights):
    config, checkpoint = tiny_segmenter
    images, _ = _corpus(tmp_path)
    resolved = resolve_config(RemoverOptions([
        "--input", f"{images}/*.png", "--seg_config", config, "--seg_checkpoint", checkpoint,
        "--inpaint_weights", tiny_inpaint_weights, "--output", str(tmp_path / "out"),
        "--classes", "all,-car", "--min_score", "0.5,vehicle=0.7,truck=0.9"]))
    # vehicle: bicycle, car, motorcycle, airplane, bus, train, truck and boat; car is not removed.
    assert dict(resolved.class_min_scores) == {2: 0.7, 4: 0.7, 5: 0.7, 6: 0.7, 7: 0.7, 8: 0.9, 9: 0.7}


def test_misspelt_class_fails_before_any_work(tmp_path, tiny_segmenter, tiny_inpaint_weights):
    config, checkpoint = tiny_segmenter
    images, _ = _corpus(tmp_path)
    with pytest.raises(SystemExit, match="unknown COCO class 'persn'; did you mean 'person'"):
        run_pipeline(["--input", f"{images}/*.png", "--output", tmp_path / "o",
                      "--seg_config", config, "--seg_checkpoint", checkpoint,
                      "--classes", "persn", "--inpaint_weights", tiny_inpaint_weights])
    with pytest.raises(SystemExit) as stopped:
        run_pipeline(["--input", f"{images}/*.png", "--output", tmp_path / "o",
                      "--seg_config", config, "--seg_checkpoint", checkpoint,
                      "--classes", "all,person", "--inpaint_weights", tiny_inpaint_weights])
    assert str(stopped.value) == ("bg-obj-remover: error: --classes: 'all,person': \"all\" cannot be "
                                  "combined with other classes, only followed by classes to leave out, "
                                  "each after a \"-\" (\"all,-person\")")
    # argparse alone would take '-person' for an option and say only 'expected one argument'.
    with pytest.raises(SystemExit, match='--classes: \'-person\': a "-" leaves a class out of "all", which '
                                         'comes first: "all,-person"'):
        run_pipeline(["--input", f"{images}/*.png", "--output", tmp_path / "o",
                      "--seg_config", config, "--seg_checkpoint", checkpoint,
                      "--classes", "-person", "--inpaint_weights", tiny_inpaint_weights])
    assert not (tmp_path / "o").exists()


def test_model_fine_tuned_on_its_own_classes(tmp_path, tiny_inpaint_weights):
    """The checkpoint's classes, not COCO's, name the instances and are what --classes takes."""
    classes = ("cat", "sign", "car")
    config, checkpoint = write_tiny_maskrcnn(str(tmp_path), classes=classes)
    images, _ = _corpus(tmp_path)
    common = ["--input", f"{images}/*.png", "--seg_config", config, "--seg_checkpoint", checkpoint,
              "--inpaint_weights", tiny_inpaint_weights, "--min_score", "0.05"]
    with pytest.raises(SystemExit, match=r"--classes: unknown class 'person'.*1 cat, 2 sign, 3 car"):
        run_pipeline(common + ["--output", tmp_path / "refused"])
    # Names and ids both; this random model finds only cars, so "sign" removes nothing.
    run_pipeline(common + ["--output", tmp_path / "out", "--classes", "sign,3"])
    instances = [x for row in read_rows(tmp_path / "out").values() for x in row["instances"]]
    assert instances and {x["label"] for x in instances} <= set(classes)
    for instance in instances:
        assert instance["label_id"] == classes.index(instance["label"]) + 1
        assert instance["removed"] == (instance["label"] in ("sign", "car") and instance["area"] > 0)
    assert any(x["removed"] for x in instances)


def test_mmdet_segmenter_under_multi_processing_direct_runner(tmp_path, tiny_segmenter, tiny_inpaint_weights):
    config, checkpoint = tiny_segmenter
    images, sizes = _corpus(tmp_path)
    output = tmp_path / "out"
    run_pipeline(["--input", f"{images}/*.png", "--seg_config", config, "--seg_checkpoint", checkpoint,
                  "--inpaint_weights", tiny_inpaint_weights, "--classes", "all", "--min_score", "0.05",
                  "--output", output, "--direct_running_mode", "multi_processing",
                  "--direct_num_workers", "2"])
    rows = read_rows(output)
    assert len(rows) == len(sizes)
    for i, (h, w) in enumerate(sizes):
        row = rows[str(images / f"{i}.png")]
        assert row["status"] in ("cleaned", "unchanged") and row["error"] is None
        assert load_rgb(row["output_uri"]).shape == (h, w, 3)
        assert all(coco_mask.decode(x["mask"]).shape == (h, w) for x in row["instances"])
    assert any(row["status"] == "cleaned" for row in rows.values())


def test_written_masks_run_again_in_masks_mode_give_the_same_images(tmp_path, tiny_segmenter,
                                                                     tiny_inpaint_weights):
    """--write_masks writes what --masks reads: the detector's choice, corrected or not, replays."""
    config, checkpoint = tiny_segmenter
    images, sizes = _corpus(tmp_path)
    common = ["--input", f"{images}/*.png", "--inpaint_weights", tiny_inpaint_weights, "--dilate", "3"]
    detected = tmp_path / "detected"
    run_pipeline(common + ["--seg_config", config, "--seg_checkpoint", checkpoint, "--classes", "all",
                           "--min_score", "0.05", "--output", detected, "--write_masks"])
    rows = read_rows(detected)
    for i, (h, w) in enumerate(sizes):
        row = rows[str(images / f"{i}.png")]
        removed = np.zeros((h, w), bool)
        for instance in row["instances"]:
            if instance["removed"]:
                removed |= coco_mask.decode(instance["mask"]).astype(bool)
        written = np.asarray(Image.open(detected / "masks" / f"{i}.png"))
        np.testing.assert_array_equal(written, removed.astype(np.uint8) * 255)
    assert any(row["status"] == "cleaned" for row in rows.values())

    replayed = tmp_path / "replayed"
    run_pipeline(common + ["--segmenter", "masks", "--masks", detected / "masks", "--output", replayed])
    assert output_files(replayed) == output_files(detected)
    assert {row["removed_fraction"] for row in read_rows(replayed).values()} == \
        {row["removed_fraction"] for row in rows.values()}
