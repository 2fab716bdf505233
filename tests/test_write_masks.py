"""--write_masks: which rows get a mask, what it holds, and a mask that cannot be written."""
from __future__ import annotations

import numpy as np
from PIL import Image

from transforms.records import CLEANED, ERROR, UNCHANGED, ImageInfo
from transforms.select import encode_rle
from transforms.user_masks import read_user_mask
from transforms.write_masks import WriteRemovedMask


def _instance(mask: np.ndarray, removed: bool) -> dict:
    return {"label": "person", "label_id": 1, "score": 0.9, "bbox": [0.0, 0.0, 1.0, 1.0],
            "mask": encode_rle(mask), "area": int(mask.sum()), "removed": removed}


def _info(name: str, status: str, instances=(), error=None) -> ImageInfo:
    return ImageInfo(image_uri=f"/in/{name}", relative_path=name, width=6, height=4,
                     instances=tuple(instances), status=status, error=error)


def _write(output, info):
    [result] = list(WriteRemovedMask(str(output)).process(info))
    return result


def test_the_union_of_removed_instances_only(tmp_path):
    kept, removed_a, removed_b = (np.zeros((4, 6), bool) for _ in range(3))
    kept[0, :] = True
    removed_a[1:3, 1] = True
    removed_b[2:, 4:] = True
    info = _info("sub/a.jpg", CLEANED, [_instance(kept, False), _instance(removed_a, True),
                                        _instance(removed_b, True)])
    assert _write(tmp_path, info) == info
    written = np.asarray(Image.open(tmp_path / "masks" / "sub" / "a.png"))
    assert written.dtype == np.uint8 and set(np.unique(written)) == {0, 255}
    np.testing.assert_array_equal(written == 255, removed_a | removed_b)
    # Masks mode reads it back as the same region.
    np.testing.assert_array_equal(read_user_mask(str(tmp_path / "masks" / "sub" / "a.png"), 6, 4),
                                  removed_a | removed_b)


def test_unchanged_images_get_an_empty_mask_to_draw_on(tmp_path):
    _write(tmp_path, _info("b.png", UNCHANGED))
    assert not np.asarray(Image.open(tmp_path / "masks" / "b.png")).any()


def test_errors_get_a_mask_only_when_instances_were_chosen(tmp_path):
    everything = np.ones((4, 6), bool)
    _write(tmp_path, _info("whole.jpg", ERROR, [_instance(everything, True)],
                           error="select: the instances to remove cover the whole image"))
    assert np.asarray(Image.open(tmp_path / "masks" / "whole.png")).all()
    _write(tmp_path, _info("corrupt.jpg", ERROR, error="decode: truncated"))
    assert not (tmp_path / "masks" / "corrupt.png").exists()


def test_a_mask_that_cannot_be_written_is_a_note_not_a_lost_row(tmp_path):
    (tmp_path / "masks").write_text("a file where the folder should be")
    info = _info("c.jpg", UNCHANGED)
    result = _write(tmp_path, info)
    assert result.status == UNCHANGED
    assert len(result.notes) == 1 and result.notes[0].startswith("mask not written: ")


def test_skip_existing_redoes_an_image_whose_mask_is_missing(masks_corpus, tmp_path, tiny_inpaint_weights):
    """A run killed between an image and its mask, or one whose mask could not be written, is
    finished by --skip_existing: the image is done only once its mask is written too."""
    from tests.pipeline_helpers import output_files, read_rows, run_pipeline

    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    args = ["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks, "--output", output,
            "--inpaint_weights", tiny_inpaint_weights, "--write_masks"]
    run_pipeline(args)
    first_images, first_mask = output_files(output), (output / "masks" / "sub" / "b.png").read_bytes()
    (output / "masks" / "sub" / "b.png").unlink()
    run_pipeline(args + ["--skip_existing"])
    assert (output / "masks" / "sub" / "b.png").read_bytes() == first_mask
    assert output_files(output) == first_images
    statuses = {uri.split("/in/")[1]: row["status"] for uri, row in read_rows(output).items()}
    assert statuses == {"a.png": "cleaned", "sub/b.jpg": "cleaned", "sub/c.png": "unchanged"}
    notes = {uri.split("/in/")[1]: row["notes"] for uri, row in read_rows(output).items()}
    assert notes["sub/b.jpg"] == [] and notes["a.png"] == ["kept from the previous run (--skip_existing)"]


def test_a_multi_frame_image_gets_a_mask_frame_per_frame_or_a_note_why_not(tmp_path):
    removed = np.zeros((4, 6), bool)
    removed[1:3, 2:4] = True
    info = _info("anim.gif", CLEANED, [{**_instance(removed, True), "frame": 1}]).replace(
        frames=3, frame_sizes=((4, 6),) * 3)
    assert _write(tmp_path, info) == info
    path = str(tmp_path / "masks" / "anim.png")
    for frame in range(3):  # masks mode reads each frame's back
        np.testing.assert_array_equal(read_user_mask(path, 6, 4, frame, 3), 
                                      removed if frame == 1 else np.zeros_like(removed))

    # A page of another size, even one with nothing removed, cannot be a frame of an animated PNG.
    pages = info.replace(relative_path="pages.tif", frame_sizes=((4, 6), (4, 6), (8, 10)))
    assert _write(tmp_path, pages).notes == (
        "mask not written: ValueError: its frames differ in size, which an animated PNG cannot hold",)
