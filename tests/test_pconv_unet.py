"""The PConv U-Net: the paper's architecture, BatchNorm that trains (or stays frozen), saving, learning."""
from __future__ import annotations

import numpy as np
import pytest

from tests.keras_checks import (assert_config_round_trip, assert_saved_model_round_trip,
                                assert_weights_round_trip, predict, train_steps)

SMALL = dict(image_size=32, width_multiplier=1 / 8, depth=5)


def pconv_layers(model, prefix):
    from models.pconv import PartialConv2D

    return [layer for layer in model.layers
            if isinstance(layer, PartialConv2D) and layer.name.startswith(prefix)]


def batch(size=32, count=2, seed=0):
    """Images in [0, 1] with a random rectangular hole each; mask 1 = known, 3 channels."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(size=(count, size, size, 3)).astype(np.float32)
    mask = np.ones_like(image)
    for sample in mask:
        top, left = rng.integers(0, size // 2, 2)
        sample[top:top + size // 3, left:left + size // 3] = 0.0
    return image, mask


@pytest.mark.parametrize("image_size", [256, 512])
def test_full_size_model_is_the_papers_architecture(image_size):
    import keras

    from models.pconv import build_pconv_unet

    model = build_pconv_unet(image_size=image_size)
    encoder, decoder = pconv_layers(model, "encoder_"), pconv_layers(model, "decoder_")
    assert [layer.kernel_size[0] for layer in encoder] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert [layer.filters for layer in encoder] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(layer.strides == (2, 2) for layer in encoder)
    assert [layer.kernel_size[0] for layer in decoder] == [3] * 8
    assert [layer.filters for layer in decoder] == [512, 512, 512, 512, 256, 128, 64, 3]
    batch_norms = [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms == [f"encoder_{i}_bn" for i in range(2, 9)] + [f"decoder_{i}_bn" for i in range(1, 8)]
    # The last decoder level sees the upsampled features and the input image, mask included.
    assert tuple(model.get_layer("decoder_8_concat").output.shape) == (None, image_size, image_size, 64 + 3)
    assert [tuple(tensor.shape) for tensor in model.inputs] == [(None, image_size, image_size, 3)] * 2
    assert tuple(model.output.shape) == (None, image_size, image_size, 3)


def test_width_multiplier_and_depth_make_a_small_model():
    from models.pconv import build_pconv_unet

    model = build_pconv_unet(**SMALL)
    assert [layer.filters for layer in pconv_layers(model, "encoder_")] == [8, 16, 32, 64, 64]
    assert [layer.filters for layer in pconv_layers(model, "decoder_")] == [64, 32, 16, 8, 3]
    image, mask = batch()
    assert predict(model, [image, mask]).shape == (2, 32, 32, 3)


@pytest.mark.parametrize("image_size,depth", [(48, 5), (100, 3), (16, 5)])
def test_rejects_a_size_the_encoder_cannot_halve(image_size, depth):
    from models.pconv import build_pconv_unet

    with pytest.raises(ValueError, match=f"multiple of 2\\*\\*depth = {2 ** depth}"):
        build_pconv_unet(image_size=image_size, depth=depth)


@pytest.mark.parametrize("depth", [0, 9])
def test_rejects_a_depth_outside_the_paper(depth):
    from models.pconv import build_pconv_unet

    with pytest.raises(ValueError, match="depth must be between 1 and 8"):
        build_pconv_unet(image_size=512, depth=depth)


def test_prediction_ignores_the_pixels_under_the_hole():
    import keras

    from models.pconv import build_pconv_unet

    keras.utils.set_random_seed(1)
    model = build_pconv_unet(**SMALL)
    image, mask = batch(seed=1)
    scribbled = np.where(mask == 0, np.random.default_rng(2).uniform(size=image.shape), image).astype(np.float32)
    np.testing.assert_array_equal(predict(model, [scribbled, mask]), predict(model, [image, mask]))


def test_composite_takes_known_pixels_from_the_image_and_holes_from_the_prediction():
    import keras

    from models.pconv import composite

    image, mask = batch(seed=4)
    prediction = np.random.default_rng(5).uniform(-0.2, 1.2, image.shape).astype(np.float32)
    result = keras.ops.convert_to_numpy(composite(image, mask, prediction))
    np.testing.assert_array_equal(result[mask == 1], image[mask == 1])
    np.testing.assert_array_equal(result[mask == 0], prediction[mask == 0])


def moving_statistics(model, prefix):
    import keras

    return {layer.name: [np.array(w) for w in (layer.moving_mean, layer.moving_variance, layer.gamma)]
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith(prefix)}


def changed(before, after):
    return {name for name in before if any(not np.array_equal(b, a) for b, a in zip(before[name], after[name]))}


def test_training_updates_batch_norm_and_frozen_encoder_batch_norm_stays_put():
    import keras

    from models.pconv import build_pconv_unet, set_encoder_bn_frozen

    keras.utils.set_random_seed(2)
    model = build_pconv_unet(**SMALL)
    image, mask = batch(seed=2)
    encoder, decoder = moving_statistics(model, "encoder_"), moving_statistics(model, "decoder_")
    train_steps(model, [image, mask], image, "mae", steps=1)
    assert changed(encoder, moving_statistics(model, "encoder_")) == set(encoder)
    assert changed(decoder, moving_statistics(model, "decoder_")) == set(decoder)

    set_encoder_bn_frozen(model, True)
    encoder, decoder = moving_statistics(model, "encoder_"), moving_statistics(model, "decoder_")
    train_steps(model, [image, mask], image, "mae", steps=1)
    assert changed(encoder, moving_statistics(model, "encoder_")) == set()
    assert changed(decoder, moving_statistics(model, "decoder_")) == set(decoder)

    set_encoder_bn_frozen(model, False)
    train_steps(model, [image, mask], image, "mae", steps=1)
    assert changed(encoder, moving_statistics(model, "encoder_")) == set(encoder)


def test_frozen_batch_norm_normalises_with_moving_statistics_in_training_mode():
    import keras

    from models.pconv import build_pconv_unet, set_encoder_bn_frozen

    model = build_pconv_unet(**SMALL)
    batch_norm = model.get_layer("encoder_2_bn")
    features = np.random.default_rng(6).normal(3.0, 2.0, (2, 8, 8, batch_norm.gamma.shape[0])).astype(np.float32)

    def run(training):
        return keras.ops.convert_to_numpy(batch_norm(features, training=training))

    assert not np.allclose(run(True), run(False))
    set_encoder_bn_frozen(model, True)
    assert not batch_norm.trainable
    np.testing.assert_array_equal(run(True), run(False))


def test_freezing_needs_a_pconv_unet():
    import keras

    from models.pconv import set_encoder_bn_frozen

    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="no encoder BatchNormalization"):
        set_encoder_bn_frozen(keras.Model(inputs, keras.layers.Dense(2)(inputs)), True)


def test_config_round_trip_rebuilds_the_same_architecture():
    import keras

    from models.pconv import build_pconv_unet

    model = build_pconv_unet(**SMALL)
    clone = keras.Model.from_config(model.get_config())
    assert [layer.get_config() for layer in clone.layers] == [layer.get_config() for layer in model.layers]
    assert_config_round_trip(model.get_layer("decoder_2_pconv"))


def test_saving_and_loading_give_identical_outputs(tmp_path):
    import keras

    from models.pconv import build_pconv_unet, load_inpainting_model

    keras.utils.set_random_seed(7)
    model = build_pconv_unet(**SMALL)
    image, mask = batch(seed=7)
    train_steps(model, [image, mask], image, "mae", steps=1)  # moving statistics must round-trip too
    _, path = assert_saved_model_round_trip(model, [image, mask], tmp_path)
    loaded, fetched = load_inpainting_model(path)
    assert fetched.path == path and len(fetched.sha256) == 64
    np.testing.assert_array_equal(predict(loaded, [image, mask]), predict(model, [image, mask]))
    assert_weights_round_trip(model, build_pconv_unet(**SMALL), [image, mask], tmp_path)


def test_small_model_overfits_one_image_and_mask():
    import keras

    from models.pconv import InpaintingLoss, build_pconv_unet

    keras.utils.set_random_seed(8)
    model = build_pconv_unet(**SMALL)
    loss = InpaintingLoss()
    ys, xs = np.mgrid[0:32, 0:32] / 31.0
    image = np.stack([xs, ys, 0.5 + 0.5 * np.sin(6 * xs)], axis=-1)[None].astype(np.float32)
    mask = np.ones_like(image)
    mask[:, 10:22, 8:20] = 0.0

    def loss_on_image_and_mask(image_and_mask, prediction):
        return loss(image_and_mask[..., :3], prediction, image_and_mask[..., 3:])[0]

    losses = train_steps(model, [image, mask], np.concatenate([image, mask], axis=-1),
                         loss_on_image_and_mask, steps=40, learning_rate=3e-3, traced=True)
    assert losses[-1] < 0.2 * losses[0], losses
