"""Shared checks for Keras layers and models (in the spirit of keras-hub's TestCase helpers).

Plain functions so that a test module, or a subprocess running another Keras backend, can use
them. Also holds the independent numpy reference of the partial convolution.
"""
from __future__ import annotations

import os

import numpy as np


def reference_partial_conv(image, mask, kernel, bias, stride):
    """NVIDIA PartialConv2d(multi_channel=True) by plain loops, for one (H, W, C_in) image.

    Returns (output (H', W', F), mask_out (H', W', F)).
    """
    kh, kw, in_channels, filters = kernel.shape
    pad_h, pad_w = (kh - 1) // 2, (kw - 1) // 2
    padded_image = np.pad(image * mask, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    padded_mask = np.pad(mask, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    out_h = (image.shape[0] + 2 * pad_h - kh) // stride + 1
    out_w = (image.shape[1] + 2 * pad_w - kw) // stride + 1
    output = np.zeros((out_h, out_w, filters), np.float64)
    mask_out = np.zeros((out_h, out_w, filters), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            known = padded_mask[rows, cols].sum()
            if known == 0:
                continue
            window = padded_image[rows, cols].astype(np.float64)
            for f in range(filters):
                output[i, j, f] = (window * kernel[..., f]).sum() * (kh * kw * in_channels) / known + bias[f]
            mask_out[i, j] = 1.0
    return output, mask_out


def random_partial_conv_case(seed: int, kernel_size: int, height: int = 13, width: int = 16,
                             in_channels: int = 3, filters: int = 4):
    """Inputs with per-channel holes and a large fully masked block, a non-zero bias."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (height, width, in_channels)).astype(np.float32)
    mask = (rng.uniform(size=(height, width, in_channels)) > 0.3).astype(np.float32)
    mask[2:11, 3:13] = 0.0  # wider than a 7x7 window: some outputs see no known pixel at all
    kernel = rng.normal(0, 0.2, (kernel_size, kernel_size, in_channels, filters)).astype(np.float32)
    bias = rng.uniform(0.5, 1.5, filters).astype(np.float32)
    return image, mask, kernel, bias


def use_full_float32_precision():
    """Turns off TF32 convolutions (the default on recent NVIDIA GPUs), so parity checks can be tight."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_tensor_float_32_execution(False)
    elif keras.backend.backend() == "torch":
        import torch
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def partial_conv_layer_output(kernel, bias, image, mask, stride):
    """Runs models.pconv.PartialConv2D with the given weights on one image, on the current backend."""
    import keras

    from models.pconv import PartialConv2D

    use_full_float32_precision()
    layer = PartialConv2D(kernel.shape[-1], kernel.shape[0], strides=stride)
    layer.build([(None, *image.shape), (None, *mask.shape)])
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    output, mask_out = layer([image[None], mask[None]])
    return keras.ops.convert_to_numpy(output)[0], keras.ops.convert_to_numpy(mask_out)[0]


def assert_config_round_trip(layer):
    """get_config -> from_config, and the registered-name path that `.keras` files use, agree."""
    import keras

    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


def predict(model, inputs) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(inputs, training=False))


def assert_saved_model_round_trip(model, inputs, directory):
    """`.keras` save then safe-mode load gives the same outputs; returns (loaded model, path)."""
    import keras

    path = os.path.join(str(directory), f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_array_equal(predict(loaded, inputs), predict(model, inputs))
    return loaded, path


def assert_weights_round_trip(model, fresh_model, inputs, directory):
    """Weights saved from `model` and loaded into an identically built `fresh_model` give the same outputs."""
    path = os.path.join(str(directory), f"{model.name}.weights.h5")
    model.save_weights(path)
    assert not np.array_equal(predict(fresh_model, inputs), predict(model, inputs)), \
        "the fresh model already matches: the check would prove nothing"
    fresh_model.load_weights(path)
    np.testing.assert_array_equal(predict(fresh_model, inputs), predict(model, inputs))


def train_steps(model, inputs, targets, loss, steps: int, learning_rate: float = 1e-3,
                traced: bool = False) -> list[float]:
    """Compiles `model` and runs `steps` training steps on one batch; returns the loss of each step.

    Eager by default: tracing the step costs more than a few eager steps of a small model.
    """
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, run_eagerly=not traced)
    return [float(model.train_on_batch(inputs, targets)) for _ in range(steps)]
