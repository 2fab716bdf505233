"""Partial convolution (Liu et al. 2018, eq. 1-2), as NVIDIA's `PartialConv2d(multi_channel=True)`.

Written with `keras.ops` only so the same layer runs on the TensorFlow and torch backends.
"""
from __future__ import annotations

import keras
from keras import ops


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair


@keras.saving.register_keras_serializable(package="pconv")
class PartialConv2D(keras.layers.Layer):
    """`y, m_out = layer([x, m])`: a convolution that only sees known pixels (m = 1) and renormalises.

    `m` has the shape of `x` and is binary (1 = known, 0 = hole). For each output position, with S
    the number of known inputs in the kh x kw x C_in window: y = conv(x * m) * (kh * kw * C_in) / S
    + bias and m_out = 1 where S > 0; y = 0 and m_out = 0 where S == 0. Padding is symmetric,
    (k - 1) // 2 zeros on each side (unlike Keras 'same', which pads asymmetrically for even
    strides and so shifts the mask against the image).
    """

    def __init__(self, filters: int, kernel_size, strides=1, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"filters must be positive, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.padding = tuple((k - 1) // 2 for k in self.kernel_size)

    def build(self, input_shape):
        image_shape, mask_shape = input_shape
        if tuple(image_shape[1:]) != tuple(mask_shape[1:]):
            raise ValueError(f"{self.name}: mask shape {mask_shape} must equal image shape {image_shape}")
        in_channels = image_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known")
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, in_channels, self.filters),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer=self.bias_initializer,
            regularizer=self.bias_regularizer) if self.use_bias else None
        self.window_size = float(self.kernel_size[0] * self.kernel_size[1] * in_channels)

    def _pad(self, tensor):
        pad_h, pad_w = self.padding
        return ops.pad(tensor, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])

    def call(self, inputs):
        image, mask = inputs
        mask = ops.cast(mask, self.compute_dtype)
        raw = ops.conv(self._pad(image * mask), self.kernel, strides=self.strides, padding="valid")
        # The mask is the same sum for every filter: sum the channels first, then one 1-channel conv.
        ones = ops.ones((*self.kernel_size, 1, 1), dtype=self.compute_dtype)
        known = ops.conv(self._pad(ops.sum(mask, axis=-1, keepdims=True)), ones,
                         strides=self.strides, padding="valid")
        # Masks are binary, so S is a whole count: comparing with 0.5 is S > 0, robust to the
        # rounding of fast convolution algorithms (Winograd, TF32) that may turn an empty sum into 1e-7.
        updated = ops.cast(known > 0.5, self.compute_dtype)
        # S >= 1 wherever a pixel is known (the rest is zeroed below), so clamping at 1 equals the
        # paper's S + 1e-8 there, and cannot underflow to a division by zero in float16.
        output = raw * (self.window_size / ops.maximum(known, 1.0))
        if self.use_bias:
            output = output + self.bias
        return output * updated, ops.repeat(updated, self.filters, axis=-1)

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0]
        spatial = [
            None if size is None else (size + 2 * pad - k) // s + 1
            for size, pad, k, s in zip(image_shape[1:3], self.padding, self.kernel_size, self.strides)]
        shape = (image_shape[0], *spatial, self.filters)
        return shape, shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config
