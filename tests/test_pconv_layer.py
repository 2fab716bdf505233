"""PartialConv2D computes what NVIDIA's PartialConv2d(multi_channel=True) computes, on TF and torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.keras_checks import (assert_config_round_trip, partial_conv_layer_output,
                                random_partial_conv_case, reference_partial_conv)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [(kernel, stride) for kernel in (3, 5, 7) for stride in (1, 2)]


def assert_matches_reference(kernel_size, stride, seed):
    image, mask, kernel, bias = random_partial_conv_case(seed, kernel_size)
    expected, expected_mask = reference_partial_conv(image, mask, kernel, bias, stride)
    output, mask_out = partial_conv_layer_output(kernel, bias, image, mask, stride)
    assert output.shape == expected.shape
    assert (expected_mask == 0).any() and (expected_mask == 1).any(), "case lacks fully masked windows"
    np.testing.assert_array_equal(mask_out, expected_mask)
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size,stride", CASES)
def test_matches_numpy_reference(kernel_size, stride):
    assert_matches_reference(kernel_size, stride, seed=kernel_size * 10 + stride)


def test_fully_masked_window_is_zero_even_with_a_bias():
    image, mask, kernel, bias = random_partial_conv_case(0, 3)
    mask[:] = 0.0
    output, mask_out = partial_conv_layer_output(kernel, bias + 5.0, image, mask, stride=1)
    assert not output.any() and not mask_out.any()


def test_renormalises_by_the_whole_window_including_channels():
    """A constant image seen through any non-empty mask gives the unmasked result: the C_in factor."""
    image = np.full((9, 9, 4), 0.5, np.float32)
    kernel = np.ones((3, 3, 4, 1), np.float32)
    full, _ = partial_conv_layer_output(kernel, np.zeros(1, np.float32), image, np.ones_like(image), 1)
    mask = np.ones_like(image)
    mask[4, 4, :3] = 0.0  # the centre window keeps 33 of its 36 inputs
    partial, _ = partial_conv_layer_output(kernel, np.zeros(1, np.float32), image, mask, 1)
    np.testing.assert_allclose(partial[4, 4], full[4, 4], rtol=1e-6)
    np.testing.assert_allclose(full[4, 4], [3 * 3 * 4 * 0.5], rtol=1e-6)


def test_symmetric_padding_keeps_image_and_mask_aligned():
    """With stride 2, known pixel (4, 4) reaches only output (2, 2), whose window is rows/cols 3-5.

    Keras 'same' pads only after the image for stride 2, which would also light up (1, *), (*, 1).
    """
    image = np.zeros((8, 8, 1), np.float32)
    mask = np.zeros_like(image)
    image[4, 4], mask[4, 4] = 1.0, 1.0
    kernel = np.ones((3, 3, 1, 1), np.float32)
    _, mask_out = partial_conv_layer_output(kernel, np.zeros(1, np.float32), image, mask, 2)
    assert mask_out.shape == (4, 4, 1)
    assert [tuple(int(i) for i in index) for index in np.argwhere(mask_out[..., 0])] == [(2, 2)]


def test_symbolic_output_shapes_match_the_computed_ones():
    import keras

    from models.pconv import PartialConv2D

    layer = PartialConv2D(6, 7, strides=2)
    symbolic_out, symbolic_mask = layer([keras.Input((13, 16, 3)), keras.Input((13, 16, 3))])
    out, mask_out = layer([np.zeros((2, 13, 16, 3), np.float32), np.ones((2, 13, 16, 3), np.float32)])
    assert tuple(symbolic_out.shape[1:]) == tuple(out.shape[1:]) == (7, 8, 6)
    assert tuple(symbolic_mask.shape[1:]) == tuple(mask_out.shape[1:]) == (7, 8, 6)


def test_rejects_a_mask_of_another_shape():
    from models.pconv import PartialConv2D

    with pytest.raises(ValueError, match="mask shape"):
        PartialConv2D(4, 3)([np.zeros((1, 8, 8, 3), np.float32), np.ones((1, 8, 8, 1), np.float32)])


def test_config_round_trip():
    from models.pconv import PartialConv2D

    assert_config_round_trip(PartialConv2D(8, (5, 3), strides=2, use_bias=False,
                                           kernel_regularizer="l2", name="pconv_a"))


TORCH_SCRIPT = """
import json, sys
import numpy as np
import keras
from tests.keras_checks import (partial_conv_layer_output, predict, random_partial_conv_case,
                                reference_partial_conv)
cases = json.loads(sys.argv[1])
saved_model, saved_inputs, saved_outputs = sys.argv[2:5]
errors = []
for kernel_size, stride in cases:
    image, mask, kernel, bias = random_partial_conv_case(kernel_size * 10 + stride, kernel_size)
    expected, expected_mask = reference_partial_conv(image, mask, kernel, bias, stride)
    output, mask_out = partial_conv_layer_output(kernel, bias, image, mask, stride)
    errors.append([float(np.abs(output - expected).max()), bool((mask_out == expected_mask).all())])
from models.pconv import load_inpainting_model
model, _ = load_inpainting_model(saved_model)
inputs = np.load(saved_inputs)
model_error = float(np.abs(predict(model, [inputs["image"], inputs["mask"]]) - np.load(saved_outputs)).max())
print(json.dumps({"backend": keras.backend.backend(), "layer": errors, "model": model_error}))
"""


@pytest.fixture(scope="module")
def torch_backend_run(tmp_path_factory):
    """One torch-backend subprocess: layer parity, and loading a `.keras` model saved under TF."""
    import keras

    from models.pconv import build_pconv_unet
    from tests.keras_checks import predict

    directory = tmp_path_factory.mktemp("torch_backend")
    keras.utils.set_random_seed(3)
    model = build_pconv_unet(image_size=32, width_multiplier=1 / 16, depth=5)
    rng = np.random.default_rng(3)
    image = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    mask = np.repeat((rng.uniform(size=(2, 32, 32, 1)) > 0.4).astype(np.float32), 3, axis=3)
    model.save(directory / "model.keras")
    np.savez(directory / "inputs.npz", image=image, mask=mask)
    np.save(directory / "outputs.npy", predict(model, [image, mask]))
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", TORCH_SCRIPT, json.dumps(CASES), str(directory / "model.keras"),
         str(directory / "inputs.npz"), str(directory / "outputs.npy")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_backend_matches_numpy_reference(torch_backend_run):
    assert torch_backend_run["backend"] == "torch"
    assert len(torch_backend_run["layer"]) == len(CASES)
    for (kernel_size, stride), (max_error, mask_equal) in zip(CASES, torch_backend_run["layer"]):
        assert mask_equal, f"mask differs for kernel {kernel_size} stride {stride}"
        assert max_error < 1e-4, f"kernel {kernel_size} stride {stride}: max error {max_error}"


def test_keras_file_saved_under_tensorflow_loads_under_torch(torch_backend_run):
    assert torch_backend_run["model"] < 1e-4
