"""The inpainting loss of Liu et al. 2018, section 3.4.

L = L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv.
The perceptual and style terms need ImageNet VGG16 weights, which must come from the user: a
random VGG would give a loss that looks fine and trains nothing useful, so without weights the
loss keeps the pixel terms only and says so.

An optional structural term, w (1 - SSIM(composite, truth)), is not in the paper: without VGG the
pixel terms leave blotchy, noisy fills that L1 barely sees, and SSIM (as in Zhao et al. 2017,
"Loss Functions for Image Restoration with Neural Networks") penalises exactly that structure.
"""
from __future__ import annotations

import logging

import keras
from keras import ops

from models.uri import ModelFileError, fetch

logger = logging.getLogger(__name__)

TERM_WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0,
                "style_comp": 120.0, "tv": 0.1}
VGG_LAYERS = ("block1_pool", "block2_pool", "block3_pool")
VGG_PREPROCESSING = ("torch", "caffe")
VGG_HINT = ("Give VGG16 ImageNet weights in the Keras VGG16 layout without the top, as a local path "
            "or URI: torchvision's weights converted to that layout (what the paper used) with "
            "vgg_preprocessing='torch', or Keras's own "
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 with vgg_preprocessing='caffe'.")


def load_vgg16_features(weights_uri: str, cache_dir: str | None = None) -> keras.Model:
    """Frozen VGG16 returning pool1, pool2, pool3 features of ImageNet-preprocessed images."""
    fetched = fetch(weights_uri, cache_dir=cache_dir, hint=VGG_HINT)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    try:
        vgg.load_weights(fetched.path)
    except (ValueError, OSError, KeyError) as e:
        raise ModelFileError(
            f"cannot load VGG16 weights from {weights_uri!r}: {type(e).__name__}: {e}. {VGG_HINT}") from e
    features = keras.Model(vgg.input, [vgg.get_layer(name).output for name in VGG_LAYERS],
                           name="vgg16_pool123")
    features.trainable = False
    logger.info("perceptual/style loss on VGG16 %s from %s (sha256 %s)",
                "/".join(VGG_LAYERS), weights_uri, fetched.short_id)
    return features


def _l1(a, b):
    return ops.mean(ops.abs(a - b))


def gram_matrix(features):
    """(B, H, W, C) -> (B, C, C) Gram matrices normalised by C*H*W, per sample."""
    _, height, width, channels = features.shape
    flat = ops.reshape(features, (-1, height * width, channels))
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat) / float(channels * height * width)


SSIM_WINDOW = 7  # the uniform window of models.pconv.metrics.ssim (skimage's default)


def structural_dissimilarity(images, truth):
    """1 - mean SSIM, the metrics module's definition (7x7 uniform window, sample covariance,
    channels apart, no padded border) written with differentiable ops."""
    # All five local means in one separable box filter (7x1 then 1x7): a third of the train step
    # time of five 7x7 pools on CPU.
    stacked = ops.concatenate([images, truth, images * images, truth * truth, images * truth], axis=-1)
    means = ops.average_pool(stacked, pool_size=(SSIM_WINDOW, 1), strides=1, padding="valid")
    means = ops.average_pool(means, pool_size=(1, SSIM_WINDOW), strides=1, padding="valid")
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = ops.split(means, 5, axis=-1)
    covariance_norm = SSIM_WINDOW ** 2 / (SSIM_WINDOW ** 2 - 1)
    var_x = covariance_norm * (mean_xx - mean_x * mean_x)
    var_y = covariance_norm * (mean_yy - mean_y * mean_y)
    cov = covariance_norm * (mean_xy - mean_x * mean_y)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)
                / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2)))
    return 1.0 - ops.mean(ssim_map)


def total_variation_on_hole_border(composite_image, mask):
    """L1 differences between neighbours that both lie in the 1-pixel dilation of the hole.

    Normalised by the number of elements of the image, as the paper's N_Icomp.
    """
    hole = 1.0 - ops.min(mask, axis=-1, keepdims=True)  # a pixel is a hole if any channel is
    region = ops.max_pool(hole, pool_size=3, strides=1, padding="same")
    pairs_x = region[:, :, 1:] * region[:, :, :-1]
    pairs_y = region[:, 1:] * region[:, :-1]
    diff_x = ops.abs(composite_image[:, :, 1:] - composite_image[:, :, :-1]) * pairs_x
    diff_y = ops.abs(composite_image[:, 1:] - composite_image[:, :-1]) * pairs_y
    _, height, width, channels = composite_image.shape
    per_sample = (ops.sum(diff_x, axis=(1, 2, 3)) + ops.sum(diff_y, axis=(1, 2, 3)))
    return ops.mean(per_sample) / float(height * width * channels)


class InpaintingLoss:
    """`total, terms = loss(y_true, y_pred, mask)` on (B, H, W, 3) images in [0, 1], mask 1 = known.

    `terms` holds the unweighted terms that were computed (names as in `weights`): only
    valid, hole and tv when `uses_vgg` is False, plus `ssim` when `ssim_weight` > 0.
    `vgg_preprocessing` is how the VGG weights expect their input (keras.applications.imagenet_utils
    modes): `torch` = RGB in [0, 1] normalised by the ImageNet mean and std, as torchvision's
    VGG16 that the paper's loss weights were tuned with; `caffe` = BGR in 0-255 minus the ImageNet
    mean, for Keras's own file.
    """

    def __init__(self, vgg_weights: str | None = None, vgg_preprocessing: str = "torch",
                 cache_dir: str | None = None, ssim_weight: float = 0.0):
        if ssim_weight < 0:
            raise ValueError(f"ssim_weight must be >= 0, got {ssim_weight}")
        if vgg_preprocessing not in VGG_PREPROCESSING:
            raise ValueError(f"vgg_preprocessing must be one of {VGG_PREPROCESSING}, got {vgg_preprocessing!r}")
        self.vgg_preprocessing = vgg_preprocessing
        self.weights = TERM_WEIGHTS | ({"ssim": ssim_weight} if ssim_weight else {})
        self.vgg_features = load_vgg16_features(vgg_weights, cache_dir) if vgg_weights else None
        if self.vgg_features is None:
            logger.warning("no VGG16 weights given: the inpainting loss runs with pixel terms only "
                           "(valid, hole, tv), without the perceptual and style terms. %s", VGG_HINT)
        else:
            logger.info("VGG16 input preprocessing: %s", vgg_preprocessing)

    @property
    def uses_vgg(self) -> bool:
        return self.vgg_features is not None

    def __call__(self, y_true, y_pred, mask):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        mask = ops.cast(mask, "float32")
        comp = mask * y_true + (1.0 - mask) * y_pred
        terms = {
            "valid": ops.mean(ops.abs(mask * (y_pred - y_true))),
            "hole": ops.mean(ops.abs((1.0 - mask) * (y_pred - y_true))),
        }
        if self.uses_vgg:
            terms.update(self._vgg_terms(y_true, y_pred, comp))
        terms["tv"] = total_variation_on_hole_border(comp, mask)
        if "ssim" in self.weights:
            terms["ssim"] = structural_dissimilarity(comp, y_true)
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, terms

    def _vgg_terms(self, y_true, y_pred, comp):
        batch = ops.shape(y_true)[0]
        # One VGG pass over [out, comp, gt]; the ground truth needs no gradient.
        images = ops.concatenate([y_pred, comp, ops.stop_gradient(y_true)], axis=0)
        preprocessed = keras.applications.imagenet_utils.preprocess_input(
            images * 255.0, mode=self.vgg_preprocessing)
        layers = self.vgg_features(preprocessed, training=False)
        perceptual = style_out = style_comp = 0.0
        for features in layers:
            out, comp_features, gt = (features[:batch], features[batch:2 * batch], features[2 * batch:])
            perceptual = perceptual + _l1(out, gt) + _l1(comp_features, gt)
            gram_gt = gram_matrix(gt)
            style_out = style_out + _l1(gram_matrix(out), gram_gt)
            style_comp = style_comp + _l1(gram_matrix(comp_features), gram_gt)
        return {"perceptual": perceptual, "style_out": style_out, "style_comp": style_comp}
