"""The paper's loss (section 3.4), checked term by term against numpy."""
from __future__ import annotations

import logging

import numpy as np
import pytest

WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0, "style_comp": 120.0, "tv": 0.1}


def as_numpy(terms):
    import keras

    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in terms.items()}


def example(size=32, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(size=(2, size, size, 3)).astype(np.float32)
    prediction = np.clip(truth + rng.normal(0, 0.2, truth.shape), -0.1, 1.1).astype(np.float32)
    mask = np.ones_like(truth)
    mask[0, 5:15, 8:20] = 0.0
    mask[1, 20:30, 1:9] = 0.0
    mask[1, 2, 2] = 0.0
    return truth, prediction, mask


def numpy_tv(comp, mask):
    """Sum of |neighbour differences| with both pixels in the hole dilated by one pixel, / elements."""
    hole = mask.min(axis=-1) == 0
    batch, height, width, _ = comp.shape
    region = np.zeros_like(hole)
    for b in range(batch):
        for y, x in zip(*np.nonzero(hole[b])):
            region[b, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = True
    total = 0.0
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                if x + 1 < width and region[b, y, x] and region[b, y, x + 1]:
                    total += np.abs(comp[b, y, x + 1] - comp[b, y, x]).sum()
                if y + 1 < height and region[b, y, x] and region[b, y + 1, x]:
                    total += np.abs(comp[b, y + 1, x] - comp[b, y, x]).sum()
    return total / comp.size


def test_pixel_terms_match_numpy_and_are_weighted_as_in_the_paper():
    from models.pconv import InpaintingLoss

    truth, prediction, mask = example()
    loss = InpaintingLoss()
    total, terms = loss(truth, prediction, mask)
    terms = as_numpy(terms)
    assert not loss.uses_vgg
    assert set(terms) == {"valid", "hole", "tv"}
    comp = mask * truth + (1 - mask) * prediction
    np.testing.assert_allclose(terms["valid"], np.abs(mask * (prediction - truth)).mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["hole"], np.abs((1 - mask) * (prediction - truth)).mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["tv"], numpy_tv(comp, mask), rtol=1e-5)
    np.testing.assert_allclose(float(total), sum(WEIGHTS[name] * terms[name] for name in terms), rtol=1e-5)


def test_without_vgg_weights_says_so_once_in_the_log(caplog):
    from models.pconv import InpaintingLoss

    truth, prediction, mask = example()
    with caplog.at_level(logging.WARNING):
        loss = InpaintingLoss()
        for _ in range(3):
            loss(truth, prediction, mask)
    warnings = [record for record in caplog.records if "pixel terms only" in record.getMessage()]
    assert len(warnings) == 1


def test_structural_term_is_one_minus_the_reported_ssim_of_the_composite():
    from models.pconv import InpaintingLoss
    from models.pconv.metrics import ssim

    truth, prediction, mask = example(size=40, seed=3)
    total, terms = InpaintingLoss(ssim_weight=2.5)(truth, prediction, mask)
    terms = as_numpy(terms)
    comp = mask * truth + (1 - mask) * prediction
    # The metric that validation and evaluation report, so training optimises what is scored.
    np.testing.assert_allclose(terms["ssim"], 1.0 - ssim(comp, truth).mean(), rtol=1e-4)
    assert terms["ssim"] > 0.01
    weights = WEIGHTS | {"ssim": 2.5}
    np.testing.assert_allclose(float(total), sum(weights[name] * terms[name] for name in terms), rtol=1e-5)
    _, perfect = InpaintingLoss(ssim_weight=2.5)(truth, truth, mask)
    assert abs(as_numpy(perfect)["ssim"]) < 1e-6
    with pytest.raises(ValueError, match="ssim_weight"):
        InpaintingLoss(ssim_weight=-1.0)


@pytest.fixture(scope="module")
def random_vgg(tmp_path_factory):
    """A random-initialised Keras VGG16 (no top) saved to a file: exercises the user-weights path."""
    import keras

    keras.utils.set_random_seed(11)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("vgg") / "vgg16_notop.weights.h5")
    vgg.save_weights(path)
    return vgg, path


def gram(features):
    batch, height, width, channels = features.shape
    flat = features.reshape(batch, height * width, channels).astype(np.float64)
    return np.einsum("bnc,bnd->bcd", flat, flat) / (channels * height * width)


@pytest.mark.parametrize("preprocessing", ["torch", "caffe"])
def test_perceptual_and_style_terms_compare_output_and_composite_with_the_ground_truth(random_vgg, preprocessing):
    import keras

    from models.pconv import InpaintingLoss

    vgg, path = random_vgg
    loss = InpaintingLoss(vgg_weights=path, vgg_preprocessing=preprocessing)
    assert loss.uses_vgg
    np.testing.assert_array_equal(np.array(loss.vgg_features.get_layer("block3_conv3").kernel),
                                  np.array(vgg.get_layer("block3_conv3").kernel))
    truth, prediction, mask = example(seed=1)
    comp = mask * truth + (1 - mask) * prediction
    total, terms = loss(truth, prediction, mask)
    terms = as_numpy(terms)

    layers = ["block1_pool", "block2_pool", "block3_pool"]
    reference = keras.Model(vgg.input, [vgg.get_layer(name).output for name in layers])

    def features(images):
        normalised = keras.applications.imagenet_utils.preprocess_input(
            images.astype(np.float32) * 255.0, mode=preprocessing)  # the numpy implementation
        return [keras.ops.convert_to_numpy(f).astype(np.float64) for f in reference(normalised, training=False)]

    out, com, gt = features(prediction), features(comp), features(truth)
    perceptual = sum(np.abs(o - g).mean() + np.abs(c - g).mean() for o, c, g in zip(out, com, gt))
    style_out = sum(np.abs(gram(o) - gram(g)).mean() for o, g in zip(out, gt))
    style_comp = sum(np.abs(gram(c) - gram(g)).mean() for c, g in zip(com, gt))
    assert set(terms) == set(WEIGHTS)
    np.testing.assert_allclose(terms["perceptual"], perceptual, rtol=1e-4)
    np.testing.assert_allclose(terms["style_out"], style_out, rtol=1e-4)
    np.testing.assert_allclose(terms["style_comp"], style_comp, rtol=1e-4)
    assert terms["style_out"] != pytest.approx(terms["style_comp"])
    np.testing.assert_allclose(float(total), sum(WEIGHTS[name] * terms[name] for name in terms), rtol=1e-5)


def test_perfect_prediction_leaves_only_the_smoothness_term(random_vgg):
    from models.pconv import InpaintingLoss

    truth, _, mask = example(seed=2)
    _, terms = InpaintingLoss(vgg_weights=random_vgg[1])(truth, truth, mask)
    terms = as_numpy(terms)
    assert {name: value for name, value in terms.items() if name != "tv"} == dict.fromkeys(
        ["valid", "hole", "perceptual", "style_out", "style_comp"], 0.0)
    np.testing.assert_allclose(terms["tv"], numpy_tv(truth, mask), rtol=1e-5)


def test_unusable_vgg_file_is_a_clear_error(tmp_path):
    from models.pconv import InpaintingLoss
    from models.uri import ModelFileError

    with pytest.raises(ModelFileError, match="not found"):
        InpaintingLoss(vgg_weights=str(tmp_path / "missing.h5"))
    bogus = tmp_path / "vgg16.txt"
    bogus.write_text("not weights")
    with pytest.raises(ModelFileError, match="cannot load VGG16 weights"):
        InpaintingLoss(vgg_weights=str(bogus))
    with pytest.raises(ValueError, match="vgg_preprocessing must be one of"):
        InpaintingLoss(vgg_preprocessing="tf")
