"""The whole job on DirectRunner in masks mode (user-supplied masks, the offline path)."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from tests.bad_input_corpus import exif_rotated_jpeg, xpm_image
from tests.conftest import rectangle_mask, textured_image
from tests.pipeline_helpers import load_rgb, output_files, read_rows, run_pipeline
from transforms.metadata import STAGING_FOLDER


def _args(images, masks, output, weights, *extra):
    return ["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
            "--output", output, "--inpaint_weights", weights, "--dilate", "2", *extra]


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_masks_mode_cleans_and_accounts_for_every_image(masks_corpus, tmp_path, tiny_inpaint_weights, mode):
    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights,
                       "--direct_running_mode", mode, "--direct_num_workers", "2"))

    rows = read_rows(output)
    assert len(rows) == len(specs)
    for relative, (h, w, box) in specs.items():
        row = rows[str(images / relative)]
        assert (row["width"], row["height"]) == (w, h)
        assert row["status"] == ("cleaned" if box else "unchanged"), row
        assert row["error"] is None
        assert row["output_uri"] == str(output / "images" / relative)
        assert os.path.isfile(row["output_uri"])
        assert row["segmenter"] == "user-masks" and row["inpainter"].startswith("pconv_unet")
        if box:
            (instance,) = row["instances"]
            assert instance["removed"] and instance["label"] == "mask"
            decoded = coco_mask.decode(instance["mask"])
            assert decoded.shape == (h, w)
            x0, y0, x1, y1 = box
            assert decoded[y0:y1, x0:x1].all() and decoded.sum() == (x1 - x0) * (y1 - y0)
            assert instance["bbox"] == [x0, y0, x1, y1]
            # dilation by 2 px grows the removed share beyond the box itself
            assert row["removed_fraction"] > (x1 - x0) * (y1 - y0) / (h * w)
        else:
            assert row["instances"] == [] and row["removed_fraction"] == 0.0


def test_pixels_outside_the_dilated_hole_are_unchanged(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    h, w, (x0, y0, x1, y1) = specs["a.png"]
    before, after = load_rgb(images / "a.png"), load_rgb(output / "images" / "a.png")
    outside = np.ones((h, w), bool)
    outside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = False
    np.testing.assert_array_equal(after[outside], before[outside])
    assert not np.array_equal(after[y0:y1, x0:x1], before[y0:y1, x0:x1])
    # an image with nothing to remove is written pixel-identical
    np.testing.assert_array_equal(load_rgb(output / "images" / "sub/c.png"), load_rgb(images / "sub/c.png"))


def test_self_ensemble_and_blend_options_reach_the_inpainter_and_name_it(masks_corpus, tmp_path,
                                                                         tiny_inpaint_weights):
    from models.pconv import Inpainter
    from transforms.select import dilate

    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--inpaint_self_ensemble", "4",
                       "--inpaint_blend", "none"))
    row = read_rows(output)[str(images / "a.png")]
    assert row["inpainter"].endswith("+crop+mirror4")
    # Byte for byte what such an Inpainter gives for the same dilated hole; not the defaults.
    before, after = load_rgb(images / "a.png"), load_rgb(output / "images" / "a.png")
    hole = dilate(coco_mask.decode(row["instances"][0]["mask"]), 2)
    for settings, same in (({"self_ensemble": 4, "blend": "none"}, True), ({"self_ensemble": 4}, False),
                           ({}, False)):
        [cleaned] = Inpainter.load(tiny_inpaint_weights, **settings).inpaint([before], [hole])
        assert np.array_equal(cleaned, after) is same


def test_inpaint_strategy_is_named_in_the_metadata(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--inpaint_strategy", "resize"))
    assert {row["inpainter"].split("@")[1].split("+", 1)[1]
            for row in read_rows(output).values()} == {"resize+mirror2+poisson"}


def test_rerun_gives_identical_files_and_skip_existing_skips(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, specs = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    first, first_rows = output_files(output), read_rows(output)
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    assert output_files(output) == first
    assert read_rows(output) == first_rows  # the first run's shards were replaced, not added to
    assert sorted(first) == sorted(specs)

    os.remove(output / "images" / "a.png")
    killed_run_temporary = output / "metadata" / STAGING_FOLDER / "beam-temp-part-0123" / "4567.parquet"
    killed_run_temporary.parent.mkdir(parents=True)
    killed_run_temporary.write_bytes(b"PAR1")
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--skip_existing"))
    assert [name[:5] for name in os.listdir(output / "metadata")] == ["part-"]  # swept
    rows = read_rows(output)
    assert output_files(output) == first
    redone = str(images / "a.png")
    assert rows[redone] == first_rows[redone]
    for uri, row in rows.items():
        if uri != redone:  # skipped, with everything the first run found about it
            kept = "kept from the previous run (--skip_existing)"
            assert row == {**first_rows[uri], "notes": first_rows[uri]["notes"] + [kept]}
    leftovers = [f for _, _, files in os.walk(output) for f in files if f.endswith(".partial")]
    assert leftovers == []

    for shard in (output / "metadata").glob("part-*.parquet"):
        os.remove(shard)
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--skip_existing"))
    for row in read_rows(output).values():  # no earlier row to keep: nothing is known of them
        assert row["status"] == "skipped" and row["output_uri"] is not None
        assert row["width"] is None and row["removed_fraction"] is None and row["instances"] == []


def test_skip_existing_keeps_rows_an_earlier_version_wrote_without_kept(masks_corpus, tmp_path, tiny_inpaint_weights):
    """Instances had no `kept` before --keep_largest: an archive's earlier metadata still carries over."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    first_rows = read_rows(output)
    for shard in (output / "metadata").glob("part-*.parquet"):
        table = pq.read_table(shard)
        instance = table.schema.field("instances").type.value_type
        earlier = pa.list_(pa.struct([field for field in instance if field.name != "kept"]))
        pq.write_table(table.set_column(table.schema.get_field_index("instances"), "instances",
                                        table["instances"].cast(earlier)), shard)
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--skip_existing"))
    rows = read_rows(output)
    assert rows.keys() == first_rows.keys()
    for uri, row in rows.items():
        first = first_rows[uri]
        assert [{**x, "kept": False} for x in row["instances"]] == first["instances"]
        assert all(x["kept"] is None for x in row["instances"]) and row["status"] == first["status"]


def test_a_failed_run_leaves_the_previous_metadata(masks_corpus, tmp_path, tiny_inpaint_weights,
                                                   monkeypatch):
    from transforms.write import WriteImage

    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    shards = {p.name: p.read_bytes() for p in (output / "metadata").glob("part-*.parquet")}

    def fail(self, element):
        raise OSError("disk full")
    monkeypatch.setattr(WriteImage, "process", fail)
    with pytest.raises(Exception, match="disk full"):
        run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    assert {p.name: p.read_bytes() for p in (output / "metadata").glob("part-*.parquet")} == shards


def test_names_that_are_not_utf8_are_cleaned_their_metadata_paths_with_those_bytes_escaped(
        tmp_path, tiny_inpaint_weights):
    """An old archive's Latin-1 names: their lone surrogates failed the whole job in Beam's coders."""
    images, masks, output = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    frames = [Image.fromarray(textured_image(24, 32, seed)) for seed in range(2)]
    for stem, extension, extra in ((b"caf\xe9", b".png", {}),
                                   (b"anim\xe9", b".gif", {"save_all": True, "append_images": frames[1:]})):
        frames[0].save(os.fsdecode(bytes(images) + b"/" + stem + extension), **extra)
        Image.fromarray(rectangle_mask(24, 32, (4, 4, 12, 12))).save(os.fsdecode(bytes(masks) + b"/" + stem + b".png"))
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    rows = read_rows(output)
    assert {uri: (row["status"], row["output_uri"]) for uri, row in rows.items()} == {
        f"{images}/caf\\xe9.png": ("cleaned", f"{output}/images/caf\\xe9.png"),
        f"{images}/anim\\xe9.gif": ("cleaned", f"{output}/images/anim\\xe9.gif")}
    assert sorted(os.listdir(bytes(output / "images"))) == [b"anim\xe9.gif", b"caf\xe9.png"]


def test_missing_or_wrong_size_mask_is_an_error_row(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    os.remove(masks / "sub" / "b.png")
    from PIL import Image
    Image.new("L", (5, 5)).save(masks / "a.png")
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    rows = read_rows(output)
    assert rows[str(images / "sub/b.jpg")]["status"] == "error"
    assert "no mask file" in rows[str(images / "sub/b.jpg")]["error"]
    assert rows[str(images / "a.png")]["status"] == "error"
    assert "5x5" in rows[str(images / "a.png")]["error"]
    assert rows[str(images / "sub/c.png")]["status"] == "unchanged"
    assert rows[str(images / "a.png")]["output_uri"] is None


def test_a_hole_over_the_whole_image_is_an_error_row_not_a_black_image(masks_corpus, tmp_path,
                                                                       tiny_inpaint_weights):
    """Nothing is left to fill it from: written, it would be a black picture called `cleaned`."""
    images, masks, specs = masks_corpus
    height, width, _ = specs["a.png"]
    Image.fromarray(rectangle_mask(height, width, (0, 0, width, height))).save(masks / "a.png")
    Image.fromarray(rectangle_mask(40, 56, (1, 1, 55, 39))).save(masks / "sub" / "b.png")  # 1 px rim
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights))  # --dilate 2 covers the rim
    rows = read_rows(output)
    for name, dilated in (("a.png", ""), ("sub/b.jpg", " grown by --dilate 2 px")):
        row = rows[str(images / name)]
        assert row["status"] == "error" and row["output_uri"] is None, row
        assert row["error"] == (f"select: the instances to remove{dilated} cover the whole image: "
                                "no pixel is left to fill them from")
        assert row["removed_fraction"] == 1.0 and row["instances"][0]["removed"]
    assert sorted(output_files(output)) == ["sub/c.png"]


def test_usage_errors_fail_before_any_work(tmp_path, tiny_inpaint_weights):
    (tmp_path / "x.png").write_bytes(b"")  # --input matches: each case stops at its own mistake
    with pytest.raises(SystemExit, match="--masks folder not found"):
        run_pipeline(["--input", str(tmp_path / "*.png"), "--output", tmp_path / "o",
                      "--segmenter", "masks", "--masks", tmp_path / "nope",
                      "--inpaint_weights", tiny_inpaint_weights])
    with pytest.raises(SystemExit, match="exactly one of --input"):
        run_pipeline(["--output", tmp_path / "o", "--segmenter", "masks", "--masks", tmp_path])
    with pytest.raises(SystemExit, match="inpainting weights"):
        run_pipeline(["--input", str(tmp_path / "*.png"), "--output", tmp_path / "o",
                      "--segmenter", "masks", "--masks", tmp_path,
                      "--inpaint_weights", tmp_path / "missing.keras"])
    assert not (tmp_path / "o").exists()


def test_unchanged_files_are_copied_unwritable_formats_become_png_and_alpha_masks_count_drawn_pixels(
        tmp_path, tiny_inpaint_weights):
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    (images / "rotated.jpg").write_bytes(exif_rotated_jpeg(20, 40))  # nothing to remove
    Image.new("L", (20, 40)).save(masks / "rotated.png")
    (images / "icon.xpm").write_bytes(xpm_image(12, 16))
    Image.fromarray(rectangle_mask(12, 16, (4, 3, 12, 9))).save(masks / "icon.png")
    Image.fromarray(textured_image(32, 32, 1)).save(images / "drawn.png")
    drawn = np.zeros((32, 32, 4), np.uint8)
    drawn[:, :, 3] = 255  # an opaque black background: not part of the hole
    drawn[8:16, 8:16] = 255
    Image.fromarray(drawn, "RGBA").save(masks / "drawn.png")
    output = tmp_path / "out"
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--dilate", "0"))
    rows = {os.path.basename(uri): row for uri, row in read_rows(output).items()}

    assert rows["rotated.jpg"]["status"] == "unchanged"
    assert (output / "images" / "rotated.jpg").read_bytes() == (images / "rotated.jpg").read_bytes()
    assert rows["icon.xpm"]["status"] == "cleaned"
    assert rows["icon.xpm"]["output_uri"] == str(output / "images" / "icon.xpm.png")
    assert "PIL cannot write XPM: written as PNG to icon.xpm.png" in rows["icon.xpm"]["notes"]
    assert sorted(output_files(output)) == ["drawn.png", "icon.xpm.png", "rotated.jpg"]
    assert rows["drawn.png"]["status"] == "cleaned"
    assert rows["drawn.png"]["removed_fraction"] == 64 / (32 * 32)

    first_rows = rows
    run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--skip_existing"))
    rows = {os.path.basename(uri): row for uri, row in read_rows(output).items()}
    # every image skipped, so each keeps the first run's row
    assert {name: row["status"] for name, row in rows.items()} == {
        name: row["status"] for name, row in first_rows.items()}
    assert all(row["notes"][-1] == "kept from the previous run (--skip_existing)" for row in rows.values())
    assert rows["icon.xpm"]["output_uri"] == str(output / "images" / "icon.xpm.png")


def test_misspelt_flags_and_shell_expanded_globs_stop_the_launcher(masks_corpus, tmp_path,
                                                                   tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--clases", "spoon",
                           "--min-score", "0.9"))
    message = str(stopped.value)
    assert "--clases spoon (did you mean --classes?)" in message
    assert "--min-score 0.9 (did you mean --min_score?)" in message
    # what `--input in/*` becomes once the shell has expanded it
    with pytest.raises(SystemExit, match=r"unexpected argument .*sub.*: .*quote the pattern"):
        run_pipeline(["--input", images / "a.png", images / "sub", "--segmenter", "masks",
                      "--masks", masks, "--output", output, "--inpaint_weights", tiny_inpaint_weights])
    assert not output.exists()


@pytest.mark.parametrize("flag,value", [("--max_batch_megabytes", "-5"), ("--max_image_pixels", "0"),
                                        ("--model_copies", "0"), ("--seg_cpu_threads", "-1")])
def test_nonsense_limits_stop_the_launcher(masks_corpus, tmp_path, tiny_inpaint_weights, flag, value):
    images, masks, _ = masks_corpus
    with pytest.raises(SystemExit, match=f"{flag} {value}: must be >= 1"):
        run_pipeline(_args(images, masks, tmp_path / "out", tiny_inpaint_weights, flag, value))
    assert not (tmp_path / "out").exists()


def test_an_output_folder_named_like_a_pattern_is_refused_before_any_work(masks_corpus, tmp_path, tiny_inpaint_weights):
    """Beam's Parquet sink would read it as a pattern and fail once every image was written."""
    images, masks, _ = masks_corpus
    output = tmp_path / "out [v1]"
    with pytest.raises(SystemExit, match=re.escape(f"--output {output}: a folder whose path holds [ ] cannot take")):
        run_pipeline(_args(images, masks, output, tiny_inpaint_weights))
    assert not output.exists()


@pytest.mark.parametrize("extra,message", [
    (["--keep_largest", "-1"], "--keep_largest -1: must be >= 0 (0 keeps none)"),
    (["--keep_larger_than", "1.5"], "--keep_larger_than 1.5: a share of the image above 0 and below 1"),
    # 0 keeps every instance chosen: nothing would be removed, whatever was meant.
    (["--keep_larger_than", "0"], "--keep_larger_than 0: a share of the image above 0 and below 1 (0 "
                                  "would keep every instance chosen, removing nothing; leave it out to keep none)"),
    (["--keep_larger_than", "-0"], "--keep_larger_than -0: a share"),
    (["--keep_larger_than", "nan"], "--keep_larger_than nan: a share"),
    (["--keep_largest", "1"], "a class's own --min_score choose among the instances a detector finds"),
    (["--min_score", "0.5,car=0.9"], "a class's own --min_score choose among the instances a detector finds"),
    (["--min_score", "1.2"], "--min_score: '1.2': a score lies within [0, 1]"),
])
def test_subjects_to_keep_and_min_scores_are_checked_by_the_launcher(masks_corpus, tmp_path, tiny_inpaint_weights, extra, message):
    images, masks, _ = masks_corpus
    with pytest.raises(SystemExit, match=re.escape(message)):
        run_pipeline(_args(images, masks, tmp_path / "out", tiny_inpaint_weights, *extra))
    assert not (tmp_path / "out").exists()


def test_classes_and_min_score_given_in_masks_mode_are_named_as_unused(masks_corpus, tmp_path, caplog):
    from pipeline.options import RemoverOptions
    from pipeline.run import resolve_config

    images, masks, _ = masks_corpus
    given = ["--input", f"{images}/**", "--segmenter", "masks", "--masks", str(masks), "--output", str(tmp_path / "o")]
    resolve_config(RemoverOptions(given))
    assert "not used with --segmenter masks" not in caplog.text
    resolve_config(RemoverOptions(given + ["--classes", "dog", "--min_score", "0.7"]))
    assert "--classes dog, --min_score 0.7: not used with --segmenter masks" in caplog.text


def test_input_that_matches_nothing_stops_the_launcher(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    typo = f"{images}/typo/**"
    with pytest.raises(SystemExit, match=re.escape(f"no file matches --input {typo}")):
        run_pipeline(["--input", typo, "--segmenter", "masks", "--masks", masks, "--output", output,
                      "--inpaint_weights", tiny_inpaint_weights])
    shards = f"{tmp_path}/records-*.tfrecord"
    with pytest.raises(SystemExit, match=re.escape(f"no file matches --input_tfrecords {shards}")):
        run_pipeline(["--input_tfrecords", shards, "--segmenter", "masks", "--masks", masks,
                      "--output", output, "--inpaint_weights", tiny_inpaint_weights])
    assert not output.exists()


def test_input_check_matches_as_the_job_does(tmp_path):
    from pipeline.options import RemoverOptions
    from pipeline.run import _require_matching_input

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.png").write_bytes(b"")
    for given in (f"{tmp_path}/a/**/b.png", f"{tmp_path}/**/a/**/b.png", f"{tmp_path}/a"):
        _require_matching_input(RemoverOptions(["--input", given]))  # `**/` may be no folder


def _tensorflow_sees_a_gpu() -> bool:
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.skipif(_tensorflow_sees_a_gpu(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_stops_a_local_run_before_any_work(masks_corpus, tmp_path, tiny_inpaint_weights):
    images, masks, _ = masks_corpus
    output = tmp_path / "out"
    with pytest.raises(SystemExit, match="--device cuda: .* sees no CUDA GPU on this machine"):
        run_pipeline(_args(images, masks, output, tiny_inpaint_weights, "--device", "cuda"))
    assert not output.exists()


def test_building_the_graph_reads_no_bytecode_of_the_projects_functions(masks_corpus, tmp_path,
                                                                        tiny_inpaint_weights, monkeypatch):
    """Beam infers an undeclared output type by reading the bytecode of a DoFn's `process` and
    of every function it calls: 0.4 s of each run's graph construction (50 ms per image writer),
    to conclude `Any` for every record the project's stages pass on."""
    import apache_beam as beam
    from apache_beam.typehints import trivial_inference

    from pipeline.graph import build_graph
    from pipeline.options import RemoverOptions
    from pipeline.run import resolve_config

    images, masks, _ = masks_corpus
    args = [str(a) for a in _args(images, masks, tmp_path / "out", tiny_inpaint_weights)] + ["--write_masks"]
    config = resolve_config(RemoverOptions(args))
    inferred = []
    infer_return_type = trivial_inference.infer_return_type

    def spy(function, *args, **kwargs):
        inferred.append(f"{function.__module__}.{function.__qualname__}")
        return infer_return_type(function, *args, **kwargs)

    monkeypatch.setattr(trivial_inference, "infer_return_type", spy)
    build_graph(beam.Pipeline(), config)
    assert inferred, "the spy saw nothing: Beam no longer infers output types this way"
    ours = [name for name in inferred if name.split(".")[0] in ("pipeline", "transforms", "models")]
    assert ours == [], ours
