"""Full-resolution inference: windows, batching, bit-exact compositing, loading from URIs."""
from __future__ import annotations

import numpy as np
import pytest

MODEL_SIZE = 32


def fake_model(output: str):
    """A model that shows what the Inpainter did: `constant` predicts 0.25, `masked_input` its masked input."""
    import keras

    image = keras.Input((MODEL_SIZE, MODEL_SIZE, 3), name="image")
    mask = keras.Input((MODEL_SIZE, MODEL_SIZE, 3), name="mask")
    masked = keras.layers.Multiply()([image, mask])
    if output == "constant":
        masked = keras.layers.Rescaling(0.0, offset=0.25)(masked)
    return keras.Model([image, mask], masked, name=output)


def textured(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def holes_at(height, width, *boxes):
    hole = np.zeros((height, width), bool)
    for top, left, bottom, right in boxes:
        hole[top:bottom, left:right] = True
    return hole


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    import keras

    from models.pconv import build_pconv_unet

    keras.utils.set_random_seed(0)
    model = build_pconv_unet(image_size=MODEL_SIZE, width_multiplier=1 / 16, depth=5)
    path = tmp_path_factory.mktemp("inpainter") / "tiny_pconv.keras"
    model.save(path)
    return str(path)


def count_model_calls(monkeypatch, inpainter):
    """(canvas side, batch length) of every forward pass, whichever canvas-sized model runs it."""
    import keras

    calls = []
    predict_on_batch = keras.Model.predict_on_batch

    def counting(model, inputs):
        calls.append((int(inputs[0].shape[1]), len(inputs[0])))
        return predict_on_batch(model, inputs)

    monkeypatch.setattr(keras.Model, "predict_on_batch", counting)
    return calls


@pytest.mark.parametrize("strategy", ["crop", "resize"])
def test_fills_every_hole_pixel_and_keeps_all_others_bit_exact(strategy):
    from models.pconv import Inpainter

    image = textured(75, 130)
    hole = holes_at(75, 130, (5, 4, 20, 30), (40, 90, 70, 126), (60, 10, 62, 11))
    [result] = Inpainter(fake_model("constant"), strategy=strategy, blend="none").inpaint([image], [hole])
    assert result.dtype == np.uint8 and result.shape == image.shape
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert (result[hole] == 64).all()  # 0.25 * 255, rounded


@pytest.mark.parametrize("strategy,height,width,box", [
    ("crop", 150, 97, (40, 30, 60, 55)),   # window larger than the model: shrunk
    ("crop", 20, 28, (5, 6, 12, 19)),      # image smaller than the model: enlarged
    ("resize", 150, 97, (40, 30, 60, 55)),
    ("resize", 20, 28, (5, 6, 12, 19)),
])
def test_hole_content_never_reaches_the_model_as_known(strategy, height, width, box):
    """Hole pixels are white, the rest black: any resampled pixel touched by white must be masked."""
    from models.pconv import Inpainter

    hole = holes_at(height, width, box)
    image = np.repeat(hole[:, :, None] * np.uint8(255), 3, axis=2)
    [result] = Inpainter(fake_model("masked_input"), strategy=strategy).inpaint([image], [hole])
    assert not result.any()


def test_a_window_resized_to_no_hole_free_pixel_gives_the_model_the_mean_of_its_known_pixels():
    """Specks in every 2 x 2 footprint of a photo halved by `resize`, and a hole over all but one
    column shrunk by `crop`, leave no resized pixel free of the hole: the model then sees the mean
    of each footprint's known pixels (never the removed object's white), not an empty window it
    paints black."""
    from models.pconv import Inpainter

    colour = np.array([90, 150, 210], np.uint8)
    specks = np.zeros((2 * MODEL_SIZE, 2 * MODEL_SIZE), bool)
    specks[::2, ::2] = True
    all_but_a_column = np.ones((40, 50), bool)
    all_but_a_column[:, 0] = False
    for strategy, hole in (("resize", specks), ("crop", all_but_a_column)):
        image = np.where(hole[:, :, None], np.uint8(255), colour)
        [result] = Inpainter(fake_model("masked_input"), strategy=strategy, blend="none").inpaint([image], [hole])
        np.testing.assert_array_equal(result[~hole], image[~hole])
        # crop: 40 x 50 shrunk to 3 x 4 (the hole is 49 px deep), so only its first column is known;
        # pixels up to 5 columns in take that column's prediction unmixed.
        filled = result[hole] if strategy == "resize" else result[:, 1:6].reshape(-1, 3)
        assert (filled == colour).all(), (strategy, np.unique(filled, axis=0))


def test_original_strategy_needs_images_at_model_size():
    from models.pconv import Inpainter

    inpainter = Inpainter(fake_model("constant"), strategy="original", blend="none")
    image, hole = textured(MODEL_SIZE, MODEL_SIZE), holes_at(MODEL_SIZE, MODEL_SIZE, (3, 3, 9, 20))
    [result] = inpainter.inpaint([image], [hole])
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert (result[hole] == 64).all()
    with pytest.raises(ValueError, match="strategy 'original' needs 32x32"):
        inpainter.inpaint([textured(40, 32)], [holes_at(40, 32, (1, 1, 4, 4))])


def test_crop_windows_give_each_hole_context_and_merge_neighbours():
    from models.pconv.inpainter import crop_windows

    height, width = 300, 400
    far_apart = holes_at(height, width, (10, 10, 30, 50), (200, 300, 290, 390))
    windows = crop_windows(0, far_apart, margin=0.5, min_side=64)
    assert len(windows) == 2
    first, second = sorted(windows, key=lambda w: w.top)
    assert (first.top, first.left, first.bottom, first.right) == (0, 0, 80, 80)  # 40 * 2 = 80, at the corner
    assert (second.bottom - second.top, second.right - second.left) == (180, 180)  # 90 * 2, then clamped
    assert (second.bottom, second.right) == (height, width)
    for window, hole_area in zip((first, second), (20 * 40, 90 * 90)):
        pasted = np.zeros_like(far_apart)
        pasted[window.top:window.bottom, window.left:window.right] = window.paste
        assert pasted.sum() == hole_area and not (pasted & ~far_apart).any()  # its own hole only

    close = holes_at(height, width, (100, 100, 110, 110), (100, 140, 110, 150))
    [merged] = crop_windows(0, close, margin=0.5, min_side=64)
    np.testing.assert_array_equal(merged.paste, close[merged.top:merged.bottom, merged.left:merged.right])
    assert merged.bottom - merged.top == merged.right - merged.left == 100  # 50 wide, plus 25 each side


def test_image_without_holes_is_returned_unchanged_without_running_the_model(monkeypatch):
    from models.pconv import Inpainter

    inpainter = Inpainter(fake_model("constant"))
    calls = count_model_calls(monkeypatch, inpainter)
    image = textured(50, 60)
    [result] = inpainter.inpaint([image], [np.zeros((50, 60), bool)])
    np.testing.assert_array_equal(result, image)
    assert calls == []


def test_windows_of_all_images_go_through_the_model_in_chunks(monkeypatch, tiny_model_file):
    from models.pconv import Inpainter

    images = [textured(120, 150, seed) for seed in range(3)]
    holes = [holes_at(120, 150, (5, 5, 20, 20), (90, 120, 110, 140)),  # two windows
             holes_at(120, 150, (50, 50, 70, 90)),                     # one window
             np.zeros((120, 150), bool)]                               # none
    chunked = Inpainter.load(tiny_model_file, batch_size=2, self_ensemble=1)  # one pass: countable calls
    calls = count_model_calls(monkeypatch, chunked)
    results = chunked.inpaint(images, holes)
    # Windows are grouped by canvas (the model size times a power of two); each group is one
    # fixed-shape batch, padded, of `batch_size` rows at model size and a quarter as many (at
    # least one) at twice its side: here 3 windows on 2 canvases.
    assert [n for _, n in calls] == [2, 1] and calls[0][0] == 32 and calls[1][0] == 64
    one_by_one = Inpainter.load(tiny_model_file, batch_size=1, self_ensemble=1).inpaint(images, holes)
    for image, hole, result, single in zip(images, holes, results, one_by_one):
        np.testing.assert_array_equal(result[~hole], image[~hole])
        assert np.abs(result.astype(int) - single.astype(int)).max() <= 1  # batch size changes no window
    # How windows are grouped into calls (Beam batches, resumed runs) never changes the bytes.
    separately = [chunked.inpaint([image], [hole])[0] for image, hole in zip(images, holes)]
    for result, alone in zip(results, separately):
        np.testing.assert_array_equal(result, alone)


def test_loads_from_a_path_or_an_fsspec_uri_and_names_the_weights(tmp_path, tiny_model_file):
    import fsspec
    import keras

    from models.pconv import Inpainter
    from models.uri import sha256_of

    with open(tiny_model_file, "rb") as source, fsspec.open("memory://models/tiny_pconv.keras", "wb") as target:
        target.write(source.read())
    from_path = Inpainter.load(tiny_model_file)
    from_uri = Inpainter.load("memory://models/tiny_pconv.keras", cache_dir=str(tmp_path / "cache"))
    # The default strategy, 2-way self-ensemble and Poisson blend are part of the name: they change
    # the output bytes.
    assert from_path.identity == from_uri.identity == f"pconv_unet-32@{sha256_of(tiny_model_file)[:12]}+crop+mirror2+poisson"
    assert any((tmp_path / "cache").rglob("tiny_pconv.keras"))
    in_memory = Inpainter(keras.saving.load_model(tiny_model_file, compile=False))
    assert in_memory.identity == "pconv_unet-32+crop+mirror2+poisson"
    assert Inpainter(in_memory.model, strategy="resize").identity == "pconv_unet-32+resize+mirror2+poisson"

    image, hole = textured(90, 70, seed=4), holes_at(90, 70, (30, 20, 60, 45))
    results = [inpainter.inpaint([image], [hole])[0] for inpainter in (from_path, from_uri, in_memory)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[0][~hole], image[~hole])


def test_unusable_model_files_and_inputs_are_clear_errors(tmp_path, tiny_model_file):
    import keras

    from models.pconv import Inpainter, load_inpainting_model
    from models.uri import ModelFileError

    with pytest.raises(ModelFileError, match="not found"):
        load_inpainting_model(str(tmp_path / "missing.keras"))
    not_keras = tmp_path / "weights.h5"
    not_keras.write_bytes(b"\x00")
    with pytest.raises(ModelFileError, match="must be a .keras file"):
        load_inpainting_model(str(not_keras))
    inputs = keras.Input((8,))
    with pytest.raises(ModelFileError, match="expected \\[image, mask\\]"):
        Inpainter(keras.Model(inputs, inputs * 2))
    # [image, mask] in, but no image of their shape out: refused on loading, not on the first image.
    image, mask = (keras.Input((MODEL_SIZE, MODEL_SIZE, 3)) for _ in range(2))
    joined = keras.layers.Add()([image, mask])
    for output in (keras.layers.Conv2D(1, 3, padding="same")(joined), keras.layers.AveragePooling2D(2)(joined),
                   keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(joined))):
        other = tmp_path / "other.keras"
        keras.Model([image, mask], output).save(other)
        with pytest.raises(ModelFileError, match="expected one image of its inputs' shape"):
            load_inpainting_model(str(other))
    with pytest.raises(ValueError, match="strategy must be one of"):
        Inpainter(fake_model("constant"), strategy="tile")

    inpainter = Inpainter.load(tiny_model_file)
    image = textured(40, 40)
    with pytest.raises(ValueError, match="expected uint8"):
        inpainter.inpaint([image.astype(np.float32)], [holes_at(40, 40, (1, 1, 5, 5))])
    with pytest.raises(ValueError, match="expected bool"):
        inpainter.inpaint([image], [holes_at(40, 30, (1, 1, 5, 5))])


def test_thin_holes_keep_full_resolution_and_deep_holes_are_shrunk_to_what_the_model_learned(tiny_model_file):
    from models.pconv import Inpainter

    inpainter = Inpainter.load(tiny_model_file, max_side=1024)  # size 32: up to 4 px deep runs unscaled
    thin = np.zeros((200, 300), bool)
    thin[50:53, 20:280] = True  # a 3 px line across the photo: 1.5 px deep
    (line,) = inpainter._windows(0, textured(200, 300), thin)
    assert line.scale == 1.0 and inpainter._canvas_side(line) > MODEL_SIZE
    deep = holes_at(200, 300, (60, 100, 140, 180))  # 80 px square: 40 px deep
    (square,) = inpainter._windows(0, textured(200, 300), deep)
    assert square.scale == pytest.approx(MODEL_SIZE / 8 / 40, rel=0.05)
    assert inpainter._canvas_side(square) == MODEL_SIZE


def test_a_hole_at_the_image_border_is_as_deep_as_its_distance_from_the_photo(tiny_model_file):
    """Past the image border the model sees padding, a hole, not photo: a 40 px band along the
    border is 40 px deep (twice a 40 px band inside the photo) and is shrunk as much."""
    from models.pconv import Inpainter

    inpainter = Inpainter.load(tiny_model_file, max_side=1024)  # size 32: holes up to 4 px deep run unscaled
    at_border = holes_at(200, 300, (0, 0, 200, 40))
    inside = holes_at(200, 300, (0, 130, 200, 170))
    (border_window,) = inpainter._windows(0, textured(200, 300), at_border)
    (inside_window,) = inpainter._windows(0, textured(200, 300), inside)
    assert border_window.scale == pytest.approx(MODEL_SIZE / 8 / 40, rel=0.06)
    assert inside_window.scale == pytest.approx(MODEL_SIZE / 8 / 20, rel=0.06)
    # A hole over the whole image has no photo to measure from: as deep as the image is long.
    (everything,) = inpainter._windows(0, textured(20, 30), np.ones((20, 30), bool))
    assert everything.scale == pytest.approx(MODEL_SIZE / 8 / 30)
    [result] = inpainter.inpaint([textured(20, 30)], [np.ones((20, 30), bool)])
    assert result.shape == (20, 30, 3)


def test_self_ensemble_averages_the_fills_of_the_mirror_images(tiny_model_file):
    from models.pconv import Inpainter, load_inpainting_model

    model, _ = load_inpainting_model(tiny_model_file)
    image = textured(70, 90, seed=4)
    hole = holes_at(70, 90, (10, 12, 30, 40), (45, 60, 60, 85))
    single = Inpainter(model, self_ensemble=1)
    ensemble = Inpainter(model, self_ensemble=2)
    [plain] = single.inpaint([image], [hole])
    [mirrored] = single.inpaint([image[:, ::-1].copy()], [hole[:, ::-1].copy()])
    [averaged] = ensemble.inpaint([image], [hole])
    np.testing.assert_array_equal(averaged[~hole], image[~hole])
    # Each hole pixel is the mean of the two single fills (each already rounded, hence the 1).
    low = np.minimum(plain, mirrored[:, ::-1]).astype(int)
    high = np.maximum(plain, mirrored[:, ::-1]).astype(int)
    assert ((averaged.astype(int) >= low - 1) & (averaged.astype(int) <= high + 1)).all()
    assert (averaged[hole] != plain[hole]).any()
    # The random U-Net is not mirror-symmetric, but the 2-way ensemble is, exactly.
    assert not np.array_equal(mirrored[:, ::-1], plain)
    [of_mirror] = ensemble.inpaint([image[:, ::-1].copy()], [hole[:, ::-1].copy()])
    np.testing.assert_array_equal(of_mirror[:, ::-1], averaged)
    [four_way] = Inpainter(model, self_ensemble=4).inpaint([image[::-1].copy()], [hole[::-1].copy()])
    np.testing.assert_array_equal(four_way[::-1], Inpainter(model, self_ensemble=4).inpaint([image], [hole])[0])
    with pytest.raises(ValueError, match="self_ensemble"):
        Inpainter(model, self_ensemble=3)


def test_poisson_blend_is_applied_to_the_fill_and_named(tiny_model_file):
    from models.pconv import Inpainter, load_inpainting_model
    from models.pconv.blend import poisson_blend

    model, _ = load_inpainting_model(tiny_model_file)
    image = textured(70, 90, seed=5)
    hole = holes_at(70, 90, (10, 12, 30, 40), (45, 60, 70, 90))
    pasted = Inpainter(model, blend="none")
    blended = Inpainter(model, blend="poisson")
    assert pasted.identity == "pconv_unet-32+crop+mirror2"
    assert blended.identity == "pconv_unet-32+crop+mirror2+poisson"
    [raw] = pasted.inpaint([image], [hole])
    [result] = blended.inpaint([image], [hole])
    np.testing.assert_array_equal(result[~hole], image[~hole])
    expected = np.rint(poisson_blend(image, hole, raw.astype(np.float32) / 255.0) * 255.0)
    # The blend of the (already rounded) pasted fill: equal up to that rounding.
    assert np.abs(result[hole].astype(int) - expected[hole]).max() <= 1
    assert (result[hole] != raw[hole]).mean() > 0.5
    with pytest.raises(ValueError, match="blend"):
        Inpainter(model, blend="gaussian")


def test_concurrent_callers_sharing_one_inpainter_get_the_bytes_of_sequential_calls(tiny_model_file):
    """Beam's worker threads share one Inpainter (RunInference shares the model), and all of them
    hand their CPU work to one thread pool: no caller may see another's windows or fills."""
    from concurrent.futures import ThreadPoolExecutor

    from models.pconv import Inpainter

    inpainter = Inpainter.load(tiny_model_file, batch_size=2)
    calls = [([textured(60 + 7 * i, 80, seed=i), textured(50, 70 + 5 * i, seed=10 + i)],
              [holes_at(60 + 7 * i, 80, (5, 5, 20, 30 + i)), holes_at(50, 70 + 5 * i, (20, 10, 40, 40), (2, 50, 9, 60))])
             for i in range(6)]
    sequential = [inpainter.inpaint(images, holes) for images, holes in calls]
    with ThreadPoolExecutor(max_workers=6) as callers:
        concurrent = list(callers.map(lambda call: inpainter.inpaint(*call), calls))
    for expected, got in zip(sequential, concurrent):
        for expected_image, got_image in zip(expected, got):
            np.testing.assert_array_equal(got_image, expected_image)


def test_device_cpu_keeps_keras_on_torch_off_its_default_device(tiny_model_file):
    """Keras on torch puts weights and inputs on CUDA whenever torch sees a GPU, whatever
    --device says. torch's `meta` device stands in for that GPU here: tensors there have no
    values, so the fill only succeeds where `device="cpu"` keeps the model on the CPU."""
    import os
    import subprocess
    import sys

    script = """
import sys
import numpy as np
from models.pconv import Inpainter
image, hole = np.full((40, 50, 3), 90, np.uint8), np.zeros((40, 50), bool)
hole[10:20, 10:30] = True
[filled] = Inpainter.load(sys.argv[1], device="cpu").inpaint([image], [hole])
assert (filled[~hole] == 90).all()
try:
    Inpainter.load(sys.argv[1]).inpaint([image], [hole])
except Exception:
    print("default device: meta")
"""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="torch", KERAS_TORCH_DEVICE="meta", PYTHONPATH=repo)
    done = subprocess.run([sys.executable, "-c", script, tiny_model_file], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("default device: meta")  # the stand-in GPU is Keras's default


def peak_over_photo_bytes(inpainter, image, hole) -> float:
    """Peak memory traced during `inpainter.inpaint([image], [hole])`, over the image's bytes;
    checks the photo outside the hole is kept."""
    import tracemalloc

    inpainter.inpaint([image[:60, :60]], [hole[:60, :60]])  # first-call set-up is not working memory
    tracemalloc.start()
    try:
        [result] = inpainter.inpaint([image], [hole])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(result[~hole], image[~hole])
    return peak / image.nbytes


@pytest.mark.parametrize("strategy", ["crop", "resize"])
def test_working_memory_grows_with_the_holes_not_the_photo(strategy):
    """A 3 MP photo with two small holes: besides the output copy, `crop` keeps buffers of the
    windows' size (it kept two float fills of the whole photo, mirrored copies of it, and blended
    on the box spanning both holes, in all 28x the photo's bytes); `resize` needs one float copy
    of the photo at a time (4x its bytes)."""
    from models.pconv import Inpainter

    height, width = 1500, 2000
    hole = holes_at(height, width, (7, 11, 40, 50), (1401, 1853, 1450, 1900))
    ratio = peak_over_photo_bytes(Inpainter(fake_model("masked_input"), strategy=strategy), textured(height, width), hole)
    assert ratio < {"crop": 1.2, "resize": 4.5}[strategy], f"peak {ratio:.2f}x the photo's bytes"


@pytest.mark.parametrize("people,blend,limit", [(1, "poisson", 3.0), (5, "none", 3.3)])
def test_working_memory_of_removed_people_is_a_few_times_the_photo(people, blend, limit):
    """Person-sized holes in a 6 MP photo (one 1300x500, 11 %; five 1000x500, 42 %): their windows
    are most of the photo. The window's fill was enlarged to the window in float32 (and its photo
    converted, and its distances found, on all of it): 6x the photo's bytes for one person, 14x
    for five; then one float channel of the window at a time, 3.5x for five. Now besides the output
    copy and the float fill of the holes, bands of rows of the window."""
    from models.pconv import Inpainter

    height, width = 2000, 3000
    boxes = [(350, 1250, 1650, 1750)] if people == 1 else [(500, 75 + k * 575, 1500, 575 + k * 575) for k in range(5)]
    ratio = peak_over_photo_bytes(Inpainter(fake_model("masked_input"), blend=blend), textured(height, width),
                                  holes_at(height, width, *boxes))
    assert ratio < limit, f"peak {ratio:.2f}x the photo's bytes"


@pytest.mark.parametrize("flip", [(False, True), (True, False), (True, True)])
def test_windows_of_a_mirror_image_are_chosen_as_on_that_image(flip):
    """The ensemble's mirrored passes never mirror the photo: their windows must be those the
    mirror image itself would get (placement rounds, so not always the mirrored windows)."""
    from models.pconv.inpainter import crop_windows

    rng = np.random.default_rng(3)
    for _ in range(20):
        hole = np.zeros((151, 204), bool)
        for _ in range(rng.integers(1, 12)):
            y, x = rng.integers(0, 151), rng.integers(0, 204)
            hole[y:y + rng.integers(1, 40), x:x + rng.integers(1, 40)] = True
        mirrored = np.ascontiguousarray(hole[::-1 if flip[0] else 1, ::-1 if flip[1] else 1])
        expected = crop_windows(0, mirrored, margin=0.5, min_side=48)
        got = crop_windows(0, hole, margin=0.5, min_side=48, flip=flip)
        assert [(w.top, w.left, w.bottom, w.right) for w in got] == \
            [(w.top, w.left, w.bottom, w.right) for w in expected]
        for window, reference in zip(got, expected):
            np.testing.assert_array_equal(window.paste, reference.paste)


def test_windows_and_blend_boxes_enlarged_at_the_holes_only_match_whole_enlargements(monkeypatch, tiny_model_file):
    """Above WHOLE_RESIZE_PIXELS a window's fill and a reduced blend's correction are enlarged
    at the holes' pixels only (`bilinear_at`, float64), not whole by OpenCV (float32 coefficients):
    the bytes may move by one level where a value sits on a rounding edge, nowhere more."""
    import keras

    import models.pconv.blend as blend
    import models.pconv.inpainter as inpainter_module

    image = textured(500, 700)
    hole = holes_at(500, 700, (40, 150, 460, 500), (10, 600, 60, 690))  # 147,000 pixels: a reduced blend
    inpainter = inpainter_module.Inpainter(keras.saving.load_model(tiny_model_file, compile=False))
    [whole] = inpainter.inpaint([image], [hole])
    for module in (inpainter_module, blend):
        monkeypatch.setattr(module, "WHOLE_RESIZE_PIXELS", 0)
    [at_holes] = inpainter.inpaint([image], [hole])
    difference = np.abs(at_holes.astype(int) - whole)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    np.testing.assert_array_equal(at_holes[~hole], image[~hole])


@pytest.mark.parametrize("strategy", ["crop", "resize"])
def test_windows_and_blend_boxes_shrunk_a_band_at_a_time_give_the_same_bytes(monkeypatch, tiny_model_file, strategy):
    """Above WHOLE_RESIZE_PIXELS a window's photo and hole (and a reduced blend's box) are shrunk a
    band of rows at a time (`area_shrunk`), not from their whole float copies: the same bytes."""
    import keras

    import models.pconv.hole_grid as hole_grid
    from models.pconv import Inpainter

    image = textured(500, 700)
    hole = holes_at(500, 700, (40, 150, 460, 500), (10, 600, 60, 690))  # 147,000 pixels: a reduced blend
    inpainter = Inpainter(keras.saving.load_model(tiny_model_file, compile=False), strategy=strategy, self_ensemble=4)
    [whole] = inpainter.inpaint([image], [hole])
    monkeypatch.setattr(hole_grid, "WHOLE_RESIZE_PIXELS", 0)
    monkeypatch.setattr(hole_grid, "BAND_PIXELS", 5000)
    [by_bands] = inpainter.inpaint([image], [hole])
    np.testing.assert_array_equal(by_bands, whole)
