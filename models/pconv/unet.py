"""The PConv U-Net of Liu et al. 2018 (section 3.3), sized by `image_size`, `width_multiplier`, `depth`."""
from __future__ import annotations

import keras
from keras import ops

from models.pconv.layers import PartialConv2D

# Encoder level i (1-based) of the paper's 512x512 network. Each decoder level outputs as many
# channels as the skip connection it is concatenated with, and the last one outputs RGB.
ENCODER_KERNELS = (7, 5, 5, 3, 3, 3, 3, 3)
ENCODER_FILTERS = (64, 128, 256, 512, 512, 512, 512, 512)
DECODER_KERNEL = 3
MAX_DEPTH = len(ENCODER_KERNELS)
ENCODER_PREFIX = "encoder_"


def _scaled(filters: int, width_multiplier: float) -> int:
    return max(1, int(round(filters * width_multiplier)))


def build_pconv_unet(image_size: int = 512, width_multiplier: float = 1.0, depth: int = 8,
                     name: str = "pconv_unet") -> keras.Model:
    """Functional model `[image, mask] -> prediction`, all (image_size, image_size, 3) float32.

    `image` is in [0, 1], `mask` is 1 for known and 0 for hole pixels. The output is the raw
    prediction for every pixel; `composite` puts the known pixels back. `depth` < 8 drops the
    innermost levels, and `width_multiplier` scales every layer but the RGB output: both only
    exist to make small models (tests, quick experiments).
    """
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be between 1 and {MAX_DEPTH}, got {depth}")
    if image_size < 2 ** depth or image_size % 2 ** depth:
        raise ValueError(
            f"image_size {image_size} must be a multiple of 2**depth = {2 ** depth}: each of the "
            f"{depth} encoder levels halves it")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")

    image = keras.Input((image_size, image_size, 3), name="image")
    mask = keras.Input((image_size, image_size, 3), name="mask")

    features, feature_mask = image, mask
    skips = [(image, mask)]
    for level in range(1, depth + 1):
        prefix = f"{ENCODER_PREFIX}{level}"
        has_bn = level > 1
        features, feature_mask = PartialConv2D(
            _scaled(ENCODER_FILTERS[level - 1], width_multiplier), ENCODER_KERNELS[level - 1],
            strides=2, use_bias=not has_bn, name=f"{prefix}_pconv")([features, feature_mask])
        if has_bn:
            features = keras.layers.BatchNormalization(name=f"{prefix}_bn")(features)
        features = keras.layers.ReLU(name=f"{prefix}_relu")(features)
        skips.append((features, feature_mask))

    skips.pop()  # the bottleneck is the decoder's input, not a skip connection
    for level in range(1, depth + 1):
        prefix = f"decoder_{level}"
        skip_features, skip_mask = skips.pop()
        is_last = level == depth
        features = keras.layers.UpSampling2D(2, name=f"{prefix}_upsample")(features)
        feature_mask = keras.layers.UpSampling2D(2, name=f"{prefix}_upsample_mask")(feature_mask)
        features = keras.layers.Concatenate(name=f"{prefix}_concat")([features, skip_features])
        feature_mask = keras.layers.Concatenate(name=f"{prefix}_concat_mask")([feature_mask, skip_mask])
        filters = 3 if is_last else _scaled(ENCODER_FILTERS[depth - level - 1], width_multiplier)
        features, feature_mask = PartialConv2D(
            filters, DECODER_KERNEL, use_bias=is_last, name=f"{prefix}_pconv")([features, feature_mask])
        if not is_last:  # the paper: LeakyReLU *between* decoder layers, the output stays linear
            features = keras.layers.BatchNormalization(name=f"{prefix}_bn")(features)
            features = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_leaky_relu")(features)

    return keras.Model([image, mask], features, name=name)


def encoder_batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith(ENCODER_PREFIX)]


def set_encoder_bn_frozen(model: keras.Model, frozen: bool) -> None:
    """Freezes (or unfreezes) the encoder BatchNorms for the paper's fine-tune stage.

    In Keras 3 a BatchNormalization with `trainable=False` normalises with its moving statistics
    and leaves them untouched even when called with `training=True`. Recompile the model (or
    rebuild the training step) afterwards: trainable weights are collected when training starts.
    """
    layers = encoder_batch_norms(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no encoder BatchNormalization layers "
                         f"(named {ENCODER_PREFIX}*): is it a PConv U-Net from build_pconv_unet?")
    for layer in layers:
        layer.trainable = not frozen


def composite(image, mask, prediction):
    """`mask * image + (1 - mask) * prediction`: known pixels from the input, holes from the model."""
    mask = ops.cast(mask, "float32")
    return mask * ops.cast(image, "float32") + (1.0 - mask) * ops.cast(prediction, "float32")
