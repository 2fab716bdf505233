"""Finding the inputs: `**/` and folders, the output folder left out, TFRecord ids that collide."""
from __future__ import annotations

from PIL import Image

from tests.pipeline_helpers import output_files, read_rows, run_pipeline


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
