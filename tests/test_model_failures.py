"""A model failing on one image makes only that image an error row, in words, counted once."""
from __future__ import annotations

import logging
import pickle
import sys
import traceback

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.graph import MAX_ERROR_CHARS, error_text
from pipeline.run import summarize
from tests.conftest import rectangle_mask, textured_image
from tests.pipeline_helpers import read_rows, run_pipeline


def _dead_letter(fail) -> tuple:
    """The exception part of a RunInference dead letter, made as Beam makes it."""
    try:
        fail()
    except Exception as e:  # noqa: BLE001
        return type(e), repr(e), traceback.format_exception(*sys.exc_info())
    raise AssertionError("fail() did not raise")


def _chained():
    try:
        {}["key"]
    except KeyError as e:
        raise ValueError("no mask\nfor this image") from e


def test_error_text_is_the_type_and_message_without_the_traceback():
    resized = error_text(_dead_letter(lambda: cv2.resize(np.zeros((2, 2, 3), np.uint8), None, fx=0, fy=0)))
    assert resized.startswith("error: OpenCV(") and resized.endswith("in function 'resize'")
    assert error_text(_dead_letter(_chained)) == "ValueError: no mask for this image"
    assert error_text(_dead_letter(lambda: 1 / 0)) == "ZeroDivisionError: division by zero"

    def bare():
        raise RuntimeError
    assert error_text(_dead_letter(bare)) == "RuntimeError"

    def long():
        raise OSError("x" * 5000)
    text = error_text(_dead_letter(long))
    assert text.startswith("OSError: xxx") and text.endswith("...") and len(text) == MAX_ERROR_CHARS


def test_one_at_a_time_handlers_share_the_model_and_batch_single_images(tiny_segmenter, tiny_inpaint_weights):
    from transforms.inpaint import InpaintModelHandler
    from transforms.segment import SegmentationModelHandler
    config, checkpoint = tiny_segmenter
    for handler in (SegmentationModelHandler(config, checkpoint, max_batch_size=4),
                    InpaintModelHandler(tiny_inpaint_weights, max_batch_size=4)):
        single = handler.one_at_a_time()
        assert single.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}
        assert handler.batch_elements_kwargs()["max_batch_size"] == 4
        # Each RunInference unpickles its own copy of its handler.
        batched, alone = pickle.loads(pickle.dumps(handler)), pickle.loads(pickle.dumps(single))
        model = batched.load_model()
        assert alone.load_model() is model


def _model_loads(caplog, prefix: str) -> int:
    return sum(record.getMessage().startswith(prefix) for record in caplog.records)


# The second case shares each model across processes, as on GPU workers.
@pytest.mark.parametrize("sharing", [[], ["--model_copies", "1"]], ids=["per-process", "model_copies"])
def test_segmenter_failing_on_one_image_of_a_batch_fails_only_that_image(
        tmp_path, tiny_segmenter, tiny_inpaint_weights, monkeypatch, caplog, sharing):
    from models.segmentation import maskrcnn
    # Without its padding, the segmenter fails on a 2x2000 strip inside mmdet's resize.
    monkeypatch.setattr(maskrcnn, "_pad_to_aspect", lambda image, max_aspect: image)
    images = tmp_path / "in"
    images.mkdir()
    sizes = {"img0.png": (64, 80), "img1.png": (80, 64), "img2.png": (48, 48),
             "one.png": (1, 1), "wide.png": (2, 2000)}
    for seed, (name, (height, width)) in enumerate(sizes.items()):
        Image.fromarray(textured_image(height, width, seed)).save(images / name)
    config, checkpoint = tiny_segmenter
    caplog.set_level(logging.INFO)
    result = run_pipeline(["--input", f"{images}/*.png", "--output", tmp_path / "out",
                           "--seg_config", config, "--seg_checkpoint", checkpoint,
                           "--inpaint_weights", tiny_inpaint_weights, "--classes", "all",
                           "--min_score", "0.05", "--dilate", "1", "--seg_batch_size", "8"] + sharing)
    rows = read_rows(tmp_path / "out")
    assert set(rows) == {str(images / name) for name in sizes}
    wide = rows.pop(str(images / "wide.png"))
    assert all(row["status"] in ("cleaned", "unchanged") for row in rows.values()), rows
    assert any("segment failed on a batch of" in r.getMessage() for r in caplog.records), \
        "the strip was alone in its batch: the test would not exercise the retry"
    assert wide["status"] == "error"
    assert wide["error"].startswith("segment: error: OpenCV(")
    assert wide["error"].endswith("in function 'resize'") and "inv_scale_x > 0" in wide["error"]
    assert "Traceback" not in wide["error"] and "\n" not in wide["error"]
    totals = summarize(result)
    assert totals["images_read"] == 5 and totals["errors"] == 1
    assert totals.get("images_cleaned", 0) + totals.get("images_unchanged", 0) == 4
    # The traceback is in the worker's log instead.
    assert any(r.levelno == logging.WARNING and "Traceback" in r.getMessage() for r in caplog.records)
    # One load in the launcher (it checks the files) and one for both RunInference stages.
    assert _model_loads(caplog, "Mask R-CNN ") == 2


def test_inpainter_failing_on_one_image_of_a_batch_fails_only_that_image(
        masks_corpus, tmp_path, tiny_inpaint_weights, monkeypatch, caplog):
    from models.pconv import Inpainter
    images, masks, specs = masks_corpus
    poisoned = (24, 40)
    Image.fromarray(textured_image(*poisoned, 7)).save(images / "poisoned.png")
    Image.fromarray(rectangle_mask(*poisoned, (4, 4, 12, 12))).save(masks / "poisoned.png")
    inpaint = Inpainter.inpaint

    def inpaint_but_not_poisoned(self, images, holes):
        if any(image.shape[:2] == poisoned for image in images):
            raise ValueError("cannot inpaint a 40x24 image")
        return inpaint(self, images, holes)
    monkeypatch.setattr(Inpainter, "inpaint", inpaint_but_not_poisoned)
    caplog.set_level(logging.INFO)
    result = run_pipeline(["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
                           "--output", tmp_path / "out", "--inpaint_weights", tiny_inpaint_weights])
    rows = read_rows(tmp_path / "out")
    poisoned_row = rows.pop(str(images / "poisoned.png"))
    assert {uri.split("/in/")[1]: row["status"] for uri, row in rows.items()} == {
        "a.png": "cleaned", "sub/b.jpg": "cleaned", "sub/c.png": "unchanged"}
    assert any("inpaint failed on a batch of" in r.getMessage() for r in caplog.records)
    assert poisoned_row["error"] == "inpaint: ValueError: cannot inpaint a 40x24 image"
    totals = summarize(result)
    assert (totals["images_read"], totals["errors"], totals["images_cleaned"],
            totals["images_unchanged"]) == (4, 1, 2, 1)
    assert _model_loads(caplog, "inpainting model ") == 2
