"""Tests for snn2hw.conv_geometry and the geometry's plumbing: ConvGeometry.lower equals the importers' unrolled
convolution and PyTorch's conv2d, kernel_of inverts it and refuses other matrices naming the layer, the IR checks
and serialises it, quantization keeps it, and every importer (ONNX from both exporters, state dict, NIR) attaches
it exactly where a layer's linear part is one convolution."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conv_models import export_spatial_onnx, make_spatial_step_module
from test_importers_nir_conv import DT, _case_composed, _case_pool, _case_strided, conv, neuron, write_chain
from test_importers_onnx_quant_channel import CONV as QUANT_CONV
from test_importers_onnx_quant_channel import _quantized_spatial
from test_importers_state_dict_conv import NETWORKS as STATE_DICT_NETWORKS
from test_importers_state_dict_conv import _integer
from model_factory import save_state_dict
from snn2hw.conv_geometry import ConvGeometry
from snn2hw.errors import QuantizationError
from snn2hw.importers import load_model
from snn2hw.importers.spatial import FeatureShape, conv2d_dense
from snn2hw.ir import Layer, Network, Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize

GEOMETRIES = [
    # in_shape, K, kernel, stride, padding (top, left, bottom, right)
    ((1, 6, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1)),
    ((2, 8, 8), 3, (3, 3), (2, 2), (1, 1, 1, 1)),
    ((3, 7, 5), 2, (3, 2), (2, 1), (0, 1, 0, 1)),
    ((1, 5, 5), 2, (2, 2), (1, 1), (0, 1, 1, 0)),   # asymmetric, as ONNX pads may be
    ((2, 6, 7), 3, (2, 3), (2, 3), (2, 0, 1, 3)),
    ((2, 4, 4), 2, (4, 4), (1, 1), (0, 0, 0, 0)),
]


def _kernel(geometry: ConvGeometry, seed: int, dtype=np.int64) -> np.ndarray:
    shape = (geometry.out_channels, geometry.in_shape[0], *geometry.kernel)
    return np.random.default_rng(seed).integers(-8, 9, shape).astype(dtype)


@pytest.mark.parametrize("case", GEOMETRIES)
def test_lower_equals_conv2d_dense_and_pytorch(case):
    geometry = ConvGeometry(*case)
    kernel = _kernel(geometry, sum(case[0]), np.float64)
    matrix, _, out_shape, dense_geometry = conv2d_dense(kernel, None, FeatureShape(*case[0]), case[3], case[4])
    assert dense_geometry == geometry and geometry.out_shape == out_shape.dims
    assert geometry.positions == out_shape.height * out_shape.width
    lowered = geometry.lower(kernel)
    assert lowered.shape == (geometry.n_out, geometry.n_in) and np.array_equal(lowered, matrix)
    top, left, bottom, right = case[4]
    x = np.random.default_rng(1).integers(0, 2, (3, *case[0])).astype(np.float64)
    expected = F.conv2d(F.pad(torch.from_numpy(x), (left, right, top, bottom)), torch.from_numpy(kernel),
                        stride=case[3]).numpy()
    assert expected.shape[1:] == geometry.out_shape
    assert np.array_equal(x.reshape(3, -1) @ lowered.T, expected.reshape(3, -1))


def test_out_shape_follows_the_floor_formula():
    geometry = ConvGeometry((1, 7, 6), 5, (3, 2), (2, 3), (1, 0, 0, 1))
    assert geometry.out_shape == (5, (7 + 1 - 3) // 2 + 1, (6 + 1 - 2) // 3 + 1) == (5, 3, 2)
    assert (geometry.positions, geometry.n_in, geometry.n_out) == (6, 42, 30)


@pytest.mark.parametrize("case", GEOMETRIES[:4])
def test_taps_are_the_nonzeros_of_each_kernel_offset(case):
    """Tap (ky, kx) connects exactly the (output, input) position pairs where a kernel with a single 1 at
    [0, 0, ky, kx] puts a 1 in the lowered matrix."""
    geometry = ConvGeometry(*case)
    taps = geometry.taps()
    assert [(ky, kx) for ky, kx, _, _ in taps] == [(ky, kx) for ky in range(case[2][0]) for kx in range(case[2][1])]
    for ky, kx, out, inp in taps:
        kernel = np.zeros((geometry.out_channels, case[0][0], *case[2]), np.int64)
        kernel[0, 0, ky, kx] = 1
        rows, cols = np.nonzero(geometry.lower(kernel))
        assert sorted(zip(rows.tolist(), cols.tolist())) == sorted(zip(out.tolist(), inp.tolist()))


@pytest.mark.parametrize("case", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_kernel_of_inverts_lower(case, dtype):
    geometry = ConvGeometry(*case)
    kernel = _kernel(geometry, 3, dtype)
    recovered = geometry.kernel_of(geometry.lower(kernel), "conv1")
    assert recovered.dtype == dtype and np.array_equal(recovered, kernel)
    assert geometry.matches(geometry.lower(kernel))


def test_kernel_offsets_no_output_reads_come_back_as_zero():
    """A 3x3 kernel on a 1x1 map with padding 1 reads only its centre: the other offsets are unobservable."""
    geometry = ConvGeometry((1, 1, 1), 2, (3, 3), (1, 1), (1, 1, 1, 1))
    kernel = np.arange(1, 19).reshape(2, 1, 3, 3)
    assert np.array_equal(geometry.lower(kernel), [[5], [14]])
    expected = np.zeros_like(kernel)
    expected[:, :, 1, 1] = kernel[:, :, 1, 1]
    assert np.array_equal(geometry.kernel_of(geometry.lower(kernel)), expected)


def test_kernel_of_refuses_matrices_that_are_no_such_convolution():
    geometry = ConvGeometry((1, 5, 5), 2, (3, 3), (1, 1), (1, 1, 1, 1))
    weight = geometry.lower(_kernel(geometry, 4))
    weight[7, 3] += 1   # one output position's copy of a kernel weight differs
    with pytest.raises(QuantizationError, match=r"layer 'conv1': weight is not the convolution Conv2d 1x5x5 -> "
                                                r"2x5x5, kernel 3x3.*weight\[7, 3\]"):
        geometry.kernel_of(weight, "conv1")
    assert not geometry.matches(weight)
    outside = geometry.lower(_kernel(geometry, 4))
    outside[0, 24] = 1   # output (0, 0) does not read input (4, 4)
    with pytest.raises(QuantizationError, match=r"weight\[0, 24\] is 1, the kernel gives 0"):
        geometry.kernel_of(outside, "conv1")
    with pytest.raises(QuantizationError, match=r"layer 'fc': weight has shape \(50, 24\), but its convolution"):
        geometry.kernel_of(np.zeros((50, 24)), "fc")
    with pytest.raises(QuantizationError, match="kernel has shape"):
        geometry.lower(np.zeros((2, 1, 2, 3)))


def test_json_round_trip_and_malformed_geometry():
    geometry = ConvGeometry((2, 6, 7), 3, (2, 3), (2, 3), (2, 0, 1, 3))
    obj = json.loads(json.dumps(geometry.to_json()))
    assert obj == {"in_shape": [2, 6, 7], "out_channels": 3, "kernel": [2, 3], "stride": [2, 3],
                   "padding": [2, 0, 1, 3]}
    assert ConvGeometry.from_json(obj) == geometry
    with pytest.raises(QuantizationError, match="is malformed"):
        ConvGeometry.from_json({"in_shape": [1, 4, 4], "out_channels": 2})


@pytest.mark.parametrize("fields, message", [
    (((1, 4), 2, (3, 3)), r"in_shape \(C, H, W\) \(1, 4\) is not 3 integers >= 1"),
    (((1, 4, 4), 0, (3, 3)), "out_channels"),
    (((1, 4, 4), 2, (3, 3), (0, 1)), r"stride \(s_h, s_w\) \(0, 1\)"),
    (((1, 4, 4), 2, (3, 3), (1, 1), (0, 0, -1, 0)), "padding"),
    (((1, 4, 4), 2, (1.5, 3)), "kernel"),
    (((1, 4, 4), 2, (5, 3)), r"kernel \(5, 3\) does not fit the \(1, 4, 4\) input"),
])
def test_invalid_geometry_is_refused(fields, message):
    with pytest.raises(QuantizationError, match=message):
        ConvGeometry(*fields)


# --- the IR ---------------------------------------------------------------------------------------------------

GEOMETRY = ConvGeometry((1, 4, 4), 2, (3, 3), (1, 1), (1, 1, 1, 1))


def _source_layer(weight, conv, name="conv1"):
    return SourceLayer(name=name, weight=weight, bias=np.zeros(weight.shape[0]), beta=0.5, threshold=2.0,
                       reset=Reset.SUBTRACT, conv=conv)


def test_ir_layers_check_their_geometry():
    weight = GEOMETRY.lower(_kernel(GEOMETRY, 5))
    assert _source_layer(weight, GEOMETRY).conv == GEOMETRY and _source_layer(weight, None).conv is None
    wrong = weight.copy()
    wrong[0, 0] += 1
    with pytest.raises(QuantizationError, match="layer 'conv1': weight is not the convolution"):
        _source_layer(wrong, GEOMETRY)
    with pytest.raises(QuantizationError, match=r"layer 'conv1': weight has shape \(30, 16\)"):
        Layer(name="conv1", weight=np.zeros((30, 16)), bias=np.zeros(30), beta_q=128, frac_bits=8, threshold=2,
              reset=Reset.ZERO, conv=ConvGeometry((1, 4, 4), 2, (1, 1)))
    with pytest.raises(QuantizationError, match="is not a ConvGeometry"):
        _source_layer(weight, GEOMETRY.to_json())


def test_network_json_carries_the_geometry_and_old_files_load():
    source = SourceNetwork((_source_layer(GEOMETRY.lower(_kernel(GEOMETRY, 6)), GEOMETRY),
                            _source_layer(np.ones((3, 32)), None, "fc2")))
    network, _ = quantize(source)
    obj = json.loads(json.dumps(network.to_json()))
    assert obj["layers"][0]["conv"] == GEOMETRY.to_json() and "conv" not in obj["layers"][1]
    loaded = Network.from_json(obj)
    assert [layer.conv for layer in loaded.layers] == [GEOMETRY, None]
    del obj["layers"][0]["conv"]   # a network.json written before layers carried geometry
    assert Network.from_json(obj).layers[0].conv is None
    obj["layers"][0]["conv"] = {"in_shape": [1, 4, 4], "out_channels": 2, "kernel": [1, 1], "stride": [1, 1],
                                "padding": [0, 0, 0, 0]}
    with pytest.raises(QuantizationError, match="layer 'conv1': weight is not the convolution"):
        Network.from_json(obj)


# --- quantization -----------------------------------------------------------------------------------------------

def test_quantization_keeps_the_geometry_of_integer_and_float_models():
    kernel = _kernel(GEOMETRY, 7)
    integer, report = quantize(SourceNetwork((_source_layer(GEOMETRY.lower(kernel), GEOMETRY),)))
    assert report.exact and integer.layers[0].conv == GEOMETRY
    assert np.array_equal(GEOMETRY.kernel_of(integer.layers[0].weight), kernel)
    floats = np.random.default_rng(8).normal(size=kernel.shape)
    for frac_bits in (0, 3):
        network, report = quantize(SourceNetwork((_source_layer(GEOMETRY.lower(floats), GEOMETRY),)),
                                   weight_bits=6, membrane_frac_bits=frac_bits)
        layer = network.layers[0]
        assert not report.exact and layer.conv == GEOMETRY
        scale = report.scales["conv1"] / 2 ** frac_bits
        expected = np.round(floats * scale).astype(np.int64) << frac_bits
        assert np.array_equal(GEOMETRY.kernel_of(layer.weight), expected)


# --- importers ----------------------------------------------------------------------------------------------------

ONNX_SPEC = ((2, 8, 8), [("conv", 3, 3, 2, 1), ("lif", 0.5, 2.0, "subtract"), ("pool", 2), ("flatten",),
                         ("fc", 4), ("lif", 0.75, 1.0, "zero")])


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_conv_layer_carries_its_geometry(tmp_path, dynamo):
    module = make_spatial_step_module(*ONNX_SPEC, seed=2)
    source = load_model(export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=dynamo))
    conv_layer, pool, fc = source.layers
    assert conv_layer.conv == ConvGeometry((2, 8, 8), 3, (3, 3), (2, 2), (1, 1, 1, 1))
    assert np.array_equal(conv_layer.conv.kernel_of(conv_layer.weight), module.conv1.weight.detach().numpy())
    assert pool.conv is None and fc.conv is None
    network, report = quantize(source)
    assert report.exact and [layer.conv for layer in network.layers] == [layer.conv for layer in source.layers]


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_grouped_or_dilated_conv_gets_no_geometry(tmp_path, dynamo):
    module = make_spatial_step_module((2, 7, 7), [("conv", 2, 5, 1, 0), ("lif", 0.5, 1.0, "subtract")])
    module.conv1 = nn.Conv2d(2, 2, 3, dilation=2, groups=2)   # the same 3x3 output maps
    layer, = load_model(export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=dynamo)).layers
    assert layer.n_out == 2 * 3 * 3 and layer.conv is None


@pytest.mark.parametrize("kind, dynamo", [("Quant", False), ("QDQ", False), ("IntQuant", True)])
def test_onnx_per_channel_quantized_conv_keeps_its_geometry(tmp_path, kind, dynamo):
    integer, path, _ = _quantized_spatial(tmp_path, QUANT_CONV, kind, dynamo=dynamo)
    source = load_model(path)
    layer = source.layers[0]
    assert layer.conv == ConvGeometry((2, 6, 6), 3, (3, 3), (1, 1), (1, 1, 1, 1))
    assert np.array_equal(layer.conv.kernel_of(layer.weight), integer.conv1.weight.detach().numpy())
    network, report = quantize(source)
    assert report.exact and network.layers[0].conv == layer.conv


def test_state_dict_conv_layers_carry_their_geometry(tmp_path):
    input_shape, factory = STATE_DICT_NETWORKS["conv-conv-fc-nobias"]
    module = _integer(factory(), seed=1)
    source = load_model(save_state_dict(module, tmp_path / "model.pt"), input_shape=",".join(map(str, input_shape)))
    assert [layer.conv for layer in source.layers] == [ConvGeometry((2, 7, 7), 3, (3, 3)),
                                                       ConvGeometry((3, 5, 5), 2, (2, 2)), None]
    second = source.layers[1]
    assert np.array_equal(second.conv.kernel_of(second.weight), module[2].weight.detach().numpy())
    network, _ = quantize(source)
    assert [layer.conv for layer in network.layers] == [layer.conv for layer in source.layers]


@pytest.mark.parametrize("make, expected", [
    (_case_pool, [ConvGeometry((1, 6, 6), 2, (3, 3), (1, 1), (1, 1, 1, 1)), None]),   # per-channel input scales
    (_case_strided, [ConvGeometry((2, 7, 7), 3, (3, 3), (2, 2), (1, 1, 1, 1)), None]),
    (_case_composed, [None, None]),   # Conv2d and AvgPool2d compose into one matrix: no single convolution
], ids=["conv-lif-sumpool", "strided-conv-flatten", "conv-avgpool"])
def test_nir_layer_of_a_single_conv2d_carries_its_geometry(tmp_path, make, expected):
    input_shape, named_nodes = make(np.random.default_rng(3))
    source = load_model(write_chain(tmp_path / "model.nir", input_shape, named_nodes), nir_dt=DT)
    assert [layer.conv for layer in source.layers] == expected
    network, report = quantize(source, weight_bits=8)
    assert [layer.conv for layer in network.layers] == expected


def test_nir_input_scales_differing_within_a_channel_drop_the_geometry(tmp_path):
    """A LIF whose r (input scale) differs between the neurons of one map scales the conv's rows differently:
    the layer's weight is no longer one convolution."""
    rng = np.random.default_rng(9)
    uniform = [("conv1", conv(rng, 2, 1, 3, (5, 5))), ("lif1", neuron("LIF", (2, 3, 3), scale=0.5))]
    scales = np.where(np.arange(18).reshape(2, 3, 3) % 2, 1.0, 0.5)
    varying = [uniform[0], ("lif1", neuron("LIF", (2, 3, 3), scale=scales))]
    layer, = load_model(write_chain(tmp_path / "uniform.nir", (1, 5, 5), uniform), nir_dt=DT).layers
    assert layer.conv == ConvGeometry((1, 5, 5), 2, (3, 3))
    assert np.array_equal(layer.conv.kernel_of(layer.weight), uniform[0][1].weight * 0.5)
    layer, = load_model(write_chain(tmp_path / "varying.nir", (1, 5, 5), varying), nir_dt=DT).layers
    assert layer.conv is None

