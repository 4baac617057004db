"""Tests for snn2hw.importers.spatial: the dense matrices equal PyTorch's conv2d / pooling exactly (integer data in
float64, so every sum is exact), in PyTorch's C,H,W flatten order; bad geometry is refused naming the layer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snn2hw import golden
from snn2hw.errors import Snn2hwError, UnsupportedModelError
from snn2hw.importers.spatial import FeatureShape, conv2d_dense, max_pool_layer, sum_pool_dense
from snn2hw.ir import Reset, SourceNetwork
from snn2hw.passes.quantize import quantize

CONV_CASES = [
    # (C, H, W), O, kernel, stride, padding, dilation, groups
    ((1, 6, 6), 4, 3, 1, 1, 1, 1),
    ((2, 8, 8), 4, 3, 2, 1, 1, 1),
    ((3, 7, 5), 2, (3, 2), (2, 1), (0, 1), 1, 1),
    ((2, 9, 9), 3, 3, 1, 2, 2, 1),
    ((4, 6, 6), 6, 3, 1, 1, 1, 2),
    ((2, 5, 5), 3, 5, 1, 0, 1, 1),
]


@pytest.mark.parametrize("dims, out_channels, kernel, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d_dense_equals_torch_conv2d(dims, out_channels, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(sum(dims) + out_channels)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    weight = rng.integers(-8, 9, (out_channels, dims[0] // groups, kh, kw)).astype(np.float64)
    bias = rng.integers(-8, 9, out_channels).astype(np.float64)
    x = rng.integers(0, 2, (5, *dims)).astype(np.float64)
    matrix, dense_bias, out_shape, geometry = conv2d_dense(weight, bias, FeatureShape(*dims), stride, padding,
                                                           dilation, groups)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias), stride=stride,
                        padding=padding, dilation=dilation, groups=groups).numpy()
    assert out_shape.dims == expected.shape[1:]
    assert np.array_equal(x.reshape(5, -1) @ matrix.T + dense_bias, expected.reshape(5, -1))
    if groups == 1 and dilation == 1:   # the geometry is given exactly when it describes the matrix
        assert geometry.out_shape == out_shape.dims and np.array_equal(geometry.lower(weight), matrix)
    else:
        assert geometry is None


def test_conv2d_dense_without_bias_and_asymmetric_onnx_pads():
    rng = np.random.default_rng(7)
    weight = rng.integers(-4, 5, (2, 1, 2, 2)).astype(np.float64)
    x = rng.integers(0, 2, (1, 1, 5, 5)).astype(np.float64)
    matrix, bias, out_shape, _ = conv2d_dense(weight, None, FeatureShape(1, 5, 5), padding=(0, 1, 1, 0))
    expected = F.conv2d(F.pad(torch.from_numpy(x), (1, 0, 0, 1)), torch.from_numpy(weight)).numpy()  # (l, r, t, b)
    assert not bias.any() and out_shape.dims == expected.shape[1:]
    assert np.array_equal(matrix @ x.ravel(), expected.ravel())


POOL_CASES = [((4, 8, 8), 2, None, 0), ((2, 7, 7), 2, None, 0), ((3, 6, 6), 3, 2, 1), ((1, 5, 4), (2, 3), (1, 2), 0)]


@pytest.mark.parametrize("dims, kernel, stride, padding", POOL_CASES)
def test_sum_pool_dense_equals_torch_avg_pool_times_window(dims, kernel, stride, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = np.random.default_rng(1).integers(0, 2, (4, *dims)).astype(np.float64)
    matrix, out_shape = sum_pool_dense(FeatureShape(*dims), kernel, stride, padding)
    expected = kh * kw * F.avg_pool2d(torch.from_numpy(x), kernel, stride, padding, count_include_pad=True).numpy()
    assert out_shape.dims == expected.shape[1:]
    assert np.array_equal(x.reshape(4, -1) @ matrix.T, expected.reshape(4, -1))


@pytest.mark.parametrize("dims, kernel, stride, padding", POOL_CASES)
def test_max_pool_layer_is_max_pool2d_of_spikes_in_the_golden_model(dims, kernel, stride, padding):
    layer, out_shape = max_pool_layer("pool", FeatureShape(*dims), kernel, stride, padding)
    assert layer.fixed and layer.reset is Reset.NONE and (layer.beta, layer.threshold) == (0.0, 1.0)
    spikes = (np.random.default_rng(2).random((3, 6, *dims)) < 0.2).astype(np.uint8)   # [B, T, C, H, W]
    expected = F.max_pool2d(torch.from_numpy(spikes.reshape(-1, *dims)).double(), kernel, stride, padding).numpy()
    assert out_shape.dims == expected.shape[1:]
    network, _ = quantize(SourceNetwork((layer,)))
    outputs = golden.run(network, spikes.reshape(3, 6, -1)).output
    assert np.array_equal(outputs, expected.reshape(3, 6, -1))


def test_neuron_order_is_channel_row_column():
    """Input neuron c * H * W + y * W + x is channel c, row y, column x: a 1x1 conv reading channel 1 of a 2x3x4
    map connects output neuron y * 4 + x to input neuron 12 + y * 4 + x."""
    matrix, _, out_shape, _ = conv2d_dense(np.array([[[[0.0]], [[1.0]]]]), None, FeatureShape(2, 3, 4))
    assert out_shape == FeatureShape(1, 3, 4)
    assert [int(np.flatnonzero(row)[0]) for row in matrix] == [12 + y * 4 + x for y in range(3) for x in range(4)]


@pytest.mark.parametrize("call, fragment", [
    (lambda: conv2d_dense(np.ones((2, 3, 3, 3)), None, FeatureShape(2, 4, 4), name="conv1"),
     "conv1: weight (2, 3, 3, 3) with groups 1 does not take the 2 channels"),
    (lambda: conv2d_dense(np.ones((2, 1, 5, 5)), None, FeatureShape(1, 3, 3), name="conv1"),
     "conv1: kernel (5, 5) does not fit the 1x3x3 input"),
    (lambda: conv2d_dense(np.ones((2, 1, 3)), None, FeatureShape(1, 3, 3), name="conv1"), "expected 4-D"),
    (lambda: conv2d_dense(np.ones((2, 1, 1, 1)), np.ones(3), FeatureShape(1, 3, 3), name="c"), "bias has 3 values"),
    (lambda: sum_pool_dense(FeatureShape(1, 4, 4), 2, 0, name="pool"), "must be >= 1"),
])
def test_bad_geometry_is_refused_naming_the_layer(call, fragment):
    with pytest.raises(UnsupportedModelError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_feature_shape_parse():
    shape = FeatureShape.parse(" 2, 8,8")
    assert shape == FeatureShape(2, 8, 8) and shape.size == 128 and str(shape) == "2x8x8"
    for text in ("2,8", "2,8,8,1", "0,8,8", "a,b,c", "-1,8,8", ""):
        with pytest.raises(Snn2hwError, match="is not C,H,W"):
            FeatureShape.parse(text)
