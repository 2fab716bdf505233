"""The evaluation command: pairing, mask handling and a tiny end-to-end run of all three methods."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from models.pconv import build_pconv_unet
from models.pconv import evaluate

BANDS = ("00-10", "30-40")


def _save_mask(path, hole_fraction_rows: float, size=32):
    mask = np.zeros((size, size), np.uint8)
    mask[: int(round(size * hole_fraction_rows))] = 255  # white = hole
    Image.fromarray(mask).save(path)


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    images, masks = root / "images", root / "masks"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        ramp = np.linspace(0, 255, 36)[None, :, None] * rng.uniform(0.3, 1.0, 3)
        Image.fromarray(np.broadcast_to(ramp, (24, 36, 3)).astype(np.uint8)).save(images / f"img{i}.png")
    for band, fraction in zip(BANDS, (0.0625, 0.34375)):
        (masks / band).mkdir(parents=True)
        for j in range(3):
            _save_mask(masks / band / f"{j}.png", fraction)
    model = build_pconv_unet(32, width_multiplier=0.125, depth=4, name="tiny_pconv")
    model.save(root / "tiny.keras")
    return root


def test_pairing_is_seeded_and_gives_every_image_every_band():
    groups = {"00-10": ["a0", "a1", "a2", "a3"], "10-20": ["b0", "b1"]}
    images = ["x", "y", "z"]
    pairs = evaluate.pair_images_with_masks(images, groups, seed=0)
    assert pairs == evaluate.pair_images_with_masks(images, groups, seed=0)
    for band in groups:
        assert sorted(p.image for p in pairs if p.band == band) == images
        assert all(p.mask in groups[band] for p in pairs if p.band == band)
    assert len({p.mask for p in pairs if p.band == "00-10"}) == 3, "distinct masks while they last"
    assert any(evaluate.pair_images_with_masks(images, groups, seed=s) != pairs for s in range(1, 5))


def test_masks_are_resized_to_the_photo_and_flat_folders_grouped_by_ratio(tmp_path):
    _save_mask(tmp_path / "small.png", 0.0625)
    _save_mask(tmp_path / "large.png", 0.5)
    hole = evaluate.read_hole(str(tmp_path / "large.png"), "white", (20, 30))
    assert hole.shape == (20, 30) and hole.mean() == pytest.approx(0.5)
    assert evaluate.read_hole(str(tmp_path / "large.png"), "black").mean() == pytest.approx(0.5)
    groups = evaluate.mask_groups(str(tmp_path))
    assert {band: [os.path.basename(p) for p in files] for band, files in groups.items()} == {
        "00-10": ["small.png"], "50-60": ["large.png"]}


def test_evaluation_scores_all_methods_per_band(eval_data, tmp_path, capsys):
    out = tmp_path / "out"
    evaluate.main(["--weights", str(eval_data / "tiny.keras"), "--images", str(eval_data / "images"),
                   "--masks", str(eval_data / "masks"), "--limit", "2", "--output_dir", str(out)])
    with open(out / "per_band.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["band"], r["method"]) for r in rows] == [(b, m) for b in BANDS for m in ("pconv", "telea", "ns")]
    assert all(r["count"] == "2" for r in rows)
    for row in rows:
        assert 0 <= float(row["l1"]) < 0.5 and -1 <= float(row["ssim"]) <= 1
    by = {(r["band"], r["method"]): r for r in rows}
    for method in ("pconv", "telea", "ns"):  # bigger holes, bigger error
        assert float(by["30-40", method]["l1"]) > float(by["00-10", method]["l1"])

    with open(out / "per_pair.csv") as f:
        pairs = list(csv.DictReader(f))
    assert len(pairs) == 2 * len(BANDS) * 3
    assert {p["image"] for p in pairs} == {"img0.png", "img1.png"}
    assert all(0.3 < float(p["hole_ratio"]) < 0.4 for p in pairs if p["band"] == "30-40")
    with Image.open(out / "per_band.png") as chart:
        assert chart.size[0] > 500
    summary = json.loads((out / "summary.json").read_text())
    assert summary["photos"] == 2 and summary["methods"]["pconv"]["model"].startswith("tiny_pconv-32@")
    printed = capsys.readouterr().out
    assert "telea" in printed and "30-40" in printed
    won = evaluate.bands_won([{k: float(v) if k in ("psnr", "ssim") else v for k, v in r.items()} for r in rows])
    assert f"in {len(won)} of 2 bands" in printed
    with open(out / "paired.csv") as f:
        paired = list(csv.DictReader(f))
    assert [(r["band"], r["versus"], r["pairs"]) for r in paired] == [
        (b, m, "2") for b in BANDS for m in ("telea", "ns")]
    assert "30-40 vs ns" in printed

    table = (out / "per_band.md").read_text().splitlines()
    assert table[0] == ("| band | PConvUNet PSNR | TELEA PSNR | NS PSNR | PConvUNet SSIM | TELEA SSIM "
                        "| NS SSIM |")
    assert len(table) == 2 + len(BANDS) and table[2].startswith("| 00-10 % | ")
    cells = table[3].strip("|").split("|")
    psnr_cells = [c.strip() for c in cells[1:4]]
    best = max(float(by["30-40", m]["psnr"]) for m in ("pconv", "telea", "ns"))
    assert [c.startswith("**") for c in psnr_cells] == [
        f"{float(by['30-40', m]['psnr']):.2f}" == f"{best:.2f}" for m in ("pconv", "telea", "ns")]


def test_bands_won_needs_both_metrics_against_every_other_method():
    rows = [{"band": "00-10", "method": "pconv", "psnr": 30.0, "ssim": 0.95},
            {"band": "00-10", "method": "telea", "psnr": 29.0, "ssim": 0.94},
            {"band": "00-10", "method": "ns", "psnr": 29.5, "ssim": 0.96},
            {"band": "10-20", "method": "pconv", "psnr": 26.0, "ssim": 0.90},
            {"band": "10-20", "method": "telea", "psnr": 25.0, "ssim": 0.89},
            {"band": "10-20", "method": "ns", "psnr": 25.5, "ssim": 0.88}]
    assert evaluate.bands_won(rows) == ["10-20"]
    assert "| 00-10 % | **30.00** | 29.00 | 29.50 | 0.9500 | 0.9400 | **0.9600** |" in evaluate.markdown_table(rows)


def test_paired_gains_compare_each_pair_with_itself():
    def pair(method, image, psnr, ssim):
        return {"method": method, "band": "00-10", "image": image, "mask": "00-10/1.png", "psnr": psnr, "ssim": ssim}

    per_pair = [pair("pconv", "a", 30.0, 0.90), pair("ns", "a", 29.0, 0.91),
                pair("pconv", "b", 20.0, 0.80), pair("ns", "b", 19.0, 0.77),
                pair("pconv", "c", 25.0, 0.85), pair("ns", "c", 23.0, 0.84)]
    [row] = evaluate.paired_gains(per_pair)
    assert (row["band"], row["versus"], row["pairs"]) == ("00-10", "ns", 3)
    assert row["psnr_gain"] == pytest.approx(4 / 3) and row["psnr_pairs_won"] == 1.0
    assert row["ssim_gain"] == pytest.approx(0.01) and row["ssim_pairs_won"] == pytest.approx(2 / 3)
    assert row["ssim_gain_se"] == pytest.approx(np.std([-0.01, 0.03, 0.01], ddof=1) / np.sqrt(3))


def test_missing_checkpoint_names_the_way_out(eval_data, tmp_path):
    with pytest.raises(SystemExit, match="--methods telea ns"):
        evaluate.main(["--weights", str(tmp_path / "absent.keras"), "--images", str(eval_data / "images"),
                       "--masks", str(eval_data / "masks"), "--output_dir", str(tmp_path)])
    evaluate.main(["--weights", str(tmp_path / "absent.keras"), "--methods", "telea", "--images",
                   str(eval_data / "images"), "--masks", str(eval_data / "masks"), "--output_dir", str(tmp_path)])
    with open(tmp_path / "per_band.csv") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"telea"}
    # A file that is not a model: a message, not a ModelFileError traceback.
    with pytest.raises(SystemExit, match="^--weights: inpainting model .*img0.png' must be a .keras file"):
        evaluate.main(["--weights", str(eval_data / "images" / "img0.png"), "--images", str(eval_data / "images"),
                       "--masks", str(eval_data / "masks"), "--output_dir", str(tmp_path)])


def test_a_checkpoint_named_by_uri_reports_its_training(eval_data, tmp_path):
    """summary.json left out how a file:// (or gs://) checkpoint was trained."""
    from models.pconv.train import TrainConfig, export_model

    model = build_pconv_unet(32, width_multiplier=0.125, depth=4, name="tiny_pconv")
    export_model(model, TrainConfig(image_size=32, width_multiplier=0.125, depth=4), str(tmp_path / "run.keras"),
                 {"steps": 7, "loss": {"vgg": False}, "config": {"image_size": 32}})
    out = tmp_path / "out"
    evaluate.main(["--weights", f"file://{tmp_path}/run.keras", "--methods", "pconv", "--images",
                   str(eval_data / "images"), "--masks", str(eval_data / "masks"), "--limit", "1",
                   "--output_dir", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["pconv"]["training"] == {"vgg": False, "steps": 7, "image_size": 32}


def test_degenerate_pairs_and_bad_photos_are_skipped_and_counted(eval_data, tmp_path, caplog, monkeypatch):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for name in ("img0.png", "img1.png"):
        (images / name).write_bytes((eval_data / "images" / name).read_bytes())
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    Image.fromarray(np.full((5, 6, 3), 128, np.uint8)).save(images / "tiny.png")  # under SSIM's window
    _save_mask(masks / "none.png", 0.0)           # no hole pixels at all
    _save_mask(masks / "speck.png", 1 / 64, 64)   # one row of 64: gone at 24 px high
    _save_mask(masks / "third.png", 0.34375)
    _save_mask(masks / "most.png", 0.75)          # beyond the last band
    (masks / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    clock = iter(range(1000))  # each method's call over the one chunk of pairs takes 1 s
    monkeypatch.setattr(evaluate.time, "perf_counter", lambda: next(clock))
    evaluate.main(["--methods", "telea", "ns", "--images", str(images), "--masks", str(masks),
                   "--output_dir", str(out)])
    text = (out / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    summary = json.loads(text)
    assert summary["photos"] == 2
    assert summary["skipped"] == {"unreadable_photos": 1, "photos_smaller_than_ssim_window": 1,
                                  "pairs_with_unreadable_masks": 0, "pairs_without_hole_pixels": 2}
    assert all(np.isfinite(row[k]) for row in summary["per_band"] for k in ("l1", "psnr", "ssim"))
    assert {row["band"] for row in summary["per_band"]} == {"30-40"}
    # Per pair scored (2 photos x 30-40), not per pair listed (2 more that had no hole to fill).
    assert summary["seconds_per_pair"] == {"telea": 0.5, "ns": 0.5}
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "broken.jpg" in warnings and "tiny.png" in warnings and "no hole pixels" in warnings
    # Grouped by hole ratio: an unreadable mask stopped the run with a traceback, one over 60 % was
    # left out without a word.
    assert f"skipping unreadable mask: cannot read {masks / 'broken.png'}" in warnings
    assert f"skipping 1 masks in {masks} with holes over 60% of the image, beyond the last band" in warnings


def test_a_pair_whose_mask_does_not_read_is_skipped_and_counted(eval_data, tmp_path, caplog):
    """A broken mask in a band folder stopped the evaluation with a traceback at its first pair."""
    masks = tmp_path / "masks" / "30-40"
    masks.mkdir(parents=True)
    _save_mask(masks / "good.png", 0.34375)
    (masks / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    evaluate.main(["--methods", "telea", "--images", str(eval_data / "images"), "--masks", str(tmp_path / "masks"),
                   "--limit", "2", "--output_dir", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"]["pairs_with_unreadable_masks"] == 1
    assert summary["per_band"][0]["count"] == 1  # the other photo's pair, with good.png
    assert any(f"unreadable mask: cannot read {masks / 'broken.png'}" in r.getMessage() for r in caplog.records)


def test_a_rerun_without_pconv_leaves_no_earlier_paired_gains(eval_data, tmp_path):
    """paired.csv of an earlier evaluation into the same folder stayed beside the new scores."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "paired.csv").write_text("band,versus,pairs\n00-10,telea,3\n")
    evaluate.main(["--methods", "telea", "ns", "--images", str(eval_data / "images"), "--masks",
                   str(eval_data / "masks"), "--limit", "1", "--output_dir", str(out)])
    assert sorted(os.listdir(out)) == ["per_band.csv", "per_band.md", "per_band.png", "per_pair.csv",
                                       "summary.json"]


def test_tiff_and_heic_photos_and_tiff_masks_are_scored(tmp_path, caplog):
    """The evaluation read only what OpenCV reads of JPEG, PNG, BMP and WebP: a scanned archive's
    TIFFs and a phone's HEICs were not even listed."""
    images, masks = tmp_path / "images", tmp_path / "masks" / "30-40"
    images.mkdir()
    masks.mkdir(parents=True)
    ramp = np.broadcast_to(np.linspace(0, 255, 36)[None, :, None] * [1.0, 0.6, 0.3], (24, 36, 3)).astype(np.uint8)
    Image.fromarray(ramp).save(images / "scan.tif", compression="tiff_lzw")
    grey16 = np.broadcast_to(np.linspace(0, 65535, 36).astype(np.uint16), (24, 36)).copy()
    Image.fromarray(grey16).save(images / "scan16.tiff")
    Image.fromarray(ramp).save(images / "phone.heic", quality=90)
    (images / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    hole = np.zeros((32, 32), bool)
    hole[:11] = True  # 11 of 32 rows: 34 %
    Image.fromarray(hole).save(masks / "m.tif", compression="group4")

    np.testing.assert_array_equal(evaluate.read_image(str(images / "scan.tif")), ramp)
    np.testing.assert_array_equal(evaluate.read_image(str(images / "scan16.tiff"))[..., 0], grey16 // 257)
    assert evaluate.read_hole(str(masks / "m.tif"), "white").mean() == pytest.approx(11 / 32)
    out = tmp_path / "out"
    evaluate.main(["--methods", "telea", "--images", str(images), "--masks", str(masks.parent),
                   "--output_dir", str(out)])
    with open(out / "per_pair.csv") as f:
        pairs = list(csv.DictReader(f))
    assert sorted(p["image"] for p in pairs) == ["phone.heic", "scan.tif", "scan16.tiff"]
    assert all(0.3 < float(p["hole_ratio"]) < 0.4 and float(p["psnr"]) > 20 for p in pairs)
    assert json.loads((out / "summary.json").read_text())["skipped"]["unreadable_photos"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"skipping unreadable photo: cannot read {images / 'broken.tif'}: Unknown image file format" in warnings[0]


def test_only_band_named_subfolders_are_bands(tmp_path):
    download = tmp_path / "mask" / "testing_mask_dataset"  # NVIDIA's download layout
    download.mkdir(parents=True)
    _save_mask(download / "a.png", 0.0625)
    _save_mask(download / "b.png", 0.5)
    groups = evaluate.mask_groups(str(tmp_path / "mask"))
    assert {band: [os.path.basename(p) for p in files] for band, files in groups.items()} == {
        "00-10": ["a.png"], "50-60": ["b.png"]}


def test_bad_folders_and_limits_exit_cleanly(eval_data, tmp_path, capsys):
    common = ["--methods", "telea", "--images", str(eval_data / "images"), "--output_dir", str(tmp_path / "o")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="mask folder not found"):
        evaluate.main([*common, "--masks", str(tmp_path / "absent")])
    with pytest.raises(SystemExit, match="no usable mask images in"):
        evaluate.main([*common, "--masks", str(tmp_path / "empty")])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit, match="^--output_dir: cannot make .*a-file: .*File exists"):
        evaluate.main([*common[:-1], str(tmp_path / "a-file"), "--masks", str(eval_data / "masks")])
    with pytest.raises(SystemExit) as exited:
        evaluate.main([*common, "--masks", str(eval_data / "masks"), "--limit", "-1"])
    assert exited.value.code == 2 and "--limit must be at least 1" in capsys.readouterr().err


def test_the_default_weights_are_found_from_any_working_directory():
    """`python -m models.pconv.evaluate` run outside the checkout's root still finds them."""
    assert os.path.isabs(evaluate.DEFAULT_WEIGHTS) and os.path.isfile(evaluate.DEFAULT_WEIGHTS)
