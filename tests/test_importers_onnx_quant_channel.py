"""Tests for per-output-channel weight scales in the ONNX importer (snn2hw.importers.onnx_model, onnx_quant).

A weight quantizer (QONNX Quant/IntQuant, QuantizeLinear -> DequantizeLinear with ``axis``) with one scale s_i per
output neuron of a Gemm, MatMul or Conv imports as the quantizer's integers with bias and threshold divided by s_i
(an RLeaky's recurrent weights too). Each test scales an integer network's rows by distinct powers of two (exact
in float32), quantizes the exported float graph's weights by hand with onnx.helper, and requires the import to equal
the integer network and the compiled spikes to equal an independent reference of the integer network (and, with
beta 1, onnxruntime on the float graph). A scale along an input axis is refused, naming the quantizer.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import snntorch as snn
import torch
from onnx import helper, numpy_helper
from torch import nn

from conv_models import export_spatial_onnx, make_spatial_step_module, reference_outputs
from importer_checks import assert_import_fails
from neuron_models import MixedStepNet, Neuron, contract_outputs, export_mixed
from snn2hw import golden
from snn2hw.errors import UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.passes.quantize import quantize

QONNX = "qonnx.custom_op.general"
POWERS = 2.0 ** -np.arange(1, 8)   # per-neuron scales: q * s, b * s and theta * s are exact in float32
KINDS = ["Quant", "IntQuant", "QDQ"]
DENSE = ((6,), [("fc", 5), ("lif", 0.75, torch.tensor([2.0, 3.0, 1.0, 4.0, 2.0]), "subtract"),
                ("fc", 3), ("lif", 0.5, torch.tensor([1.0, 2.0, 3.0]), "zero")])
CONV = ((2, 6, 6), [("conv", 3, 3, 1, 1), ("lif", 0.5, torch.tensor([2.0, 3.0, 1.0]).view(3, 1, 1), "subtract"),
                    ("pool", 2), ("flatten",), ("fc", 4), ("lif", 0.75, torch.tensor([1.0, 2.0, 2.0, 3.0]), "none")])


def _scales(n: int, seed: int) -> np.ndarray:
    """``n`` per-neuron powers of two, not all equal."""
    return np.roll(np.resize(POWERS, n), seed)


def _spikes(n_in: int, seed: int = 0, samples: int = 4, steps: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((samples, steps, n_in)) < 0.5).astype(np.uint8)


def _quantizer(kind: str, name: str, scale: np.ndarray, axis: int, ndim: int):
    """(nodes, initializers, output) quantizing weight ``name`` (``ndim`` dims) with ``scale`` along ``axis``."""
    if kind in ("Quant", "IntQuant"):
        shape = [1] * ndim
        shape[axis] = scale.size
        inits = [numpy_helper.from_array(scale.reshape(shape).astype(np.float32), f"{name}_scale"),
                 numpy_helper.from_array(np.zeros((), np.float32), f"{name}_zp"),
                 numpy_helper.from_array(np.asarray(8, np.float32), f"{name}_bits")]
        node = helper.make_node(kind, [name, f"{name}_scale", f"{name}_zp", f"{name}_bits"], [f"{name}_q"],
                                domain=QONNX, name=f"{name}_{kind}", signed=1, narrow=0, rounding_mode="ROUND")
        return [node], inits, f"{name}_q"
    inits = [numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
             numpy_helper.from_array(np.zeros(scale.size, np.int8), f"{name}_zp")]
    nodes = [helper.make_node("QuantizeLinear", [name, f"{name}_scale", f"{name}_zp"], [f"{name}_int8"],
                              name=f"{name}_Q", axis=axis),
             helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zp"], [f"{name}_q"],
                              name=f"{name}_DQ", axis=axis)]
    return nodes, inits, f"{name}_q"


def _quantize_weights(model: onnx.ModelProto, scales: dict[str, np.ndarray], kind: str, input_axis: bool = False):
    """Feed the weight of every Gemm/MatMul/Conv named in ``scales`` through a quantizer with those scales along
    its output axis (MatMul's [in, out] axis 1, else 0), or along an input axis if ``input_axis``."""
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    for dense in [node for node in model.graph.node if node.op_type in ("Gemm", "MatMul", "Conv")]:
        name = dense.input[1]
        if name not in scales:
            continue
        axis = int((dense.op_type == "MatMul") != input_axis)
        scale = _scales(shapes[name][axis], 1) if input_axis else scales[name]
        nodes, inits, output = _quantizer(kind, name, scale, axis, len(shapes[name]))
        model.graph.initializer.extend(inits)
        position = list(model.graph.node).index(dense)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(position + offset, node)
        dense.input[1] = output
    model.opset_import.append(helper.make_opsetid(QONNX, 1))


def _gemm_to_matmul(model: onnx.ModelProto) -> None:
    """Rewrite each ``Gemm(x, W, b)`` (transB=1) as ``Add(MatMul(x, W^T), b)`` with W^T an [in, out] initializer."""
    inits = {init.name: init for init in model.graph.initializer}
    for gemm in [node for node in model.graph.node if node.op_type == "Gemm"]:
        weight = numpy_helper.to_array(inits[gemm.input[1]])
        model.graph.initializer.append(numpy_helper.from_array(weight.T.copy(), f"{gemm.input[1]}_t"))
        position = list(model.graph.node).index(gemm)
        model.graph.node.remove(gemm)
        matmul = helper.make_node("MatMul", [gemm.input[0], f"{gemm.input[1]}_t"], [f"{gemm.output[0]}_mm"],
                                  name=f"{gemm.name}_MatMul")
        add = helper.make_node("Add", [matmul.output[0], gemm.input[2]], [gemm.output[0]], name=f"{gemm.name}_Add")
        model.graph.node.insert(position, add)
        model.graph.node.insert(position, matmul)


def _synapses(module: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(synapse, neuron) pairs of a spatial or mixed step module, in order."""
    children = list(module.children())
    return [(child, next(n for n in children[i:] if hasattr(n, "threshold")))
            for i, child in enumerate(children) if isinstance(child, (nn.Linear, nn.Conv2d))]


def _scaled(integer: nn.Module, seed: int) -> tuple[nn.Module, dict[str, np.ndarray]]:
    """A copy of ``integer`` whose neuron i of each layer has weights, bias, threshold and recurrent weights times
    a power of two s_i, and the scales by weight name."""
    scaled, scales = copy.deepcopy(integer), {}
    names = {id(module): name for name, module in scaled.named_modules()}
    with torch.no_grad():
        for index, (synapse, neuron) in enumerate(_synapses(scaled)):
            s = _scales(synapse.weight.shape[0], seed + index)
            scales[f"{names[id(synapse)]}.weight"] = s
            column = torch.tensor(s, dtype=torch.float32)
            synapse.weight.mul_(column.view(-1, *[1] * (synapse.weight.ndim - 1)))
            synapse.bias.mul_(column)
            neuron.threshold.mul_(column.view(neuron.threshold.shape))
            if isinstance(neuron, snn.RLeaky) and neuron.all_to_all:
                neuron.recurrent.weight.mul_(column.view(-1, 1))
                neuron.recurrent.bias.mul_(column)
            elif isinstance(neuron, snn.RLeaky):
                neuron.V.mul_(column)
    return scaled, scales


def _quantized_spatial(tmp_path, spec, kind, matmul=False, dynamo=False, seed=3, input_axis=False):
    """(integer module, quantized export of its scaled copy, integer export)."""
    integer = make_spatial_step_module(*spec, seed=seed)
    scaled, scales = _scaled(integer, seed)
    model = onnx.load(str(export_spatial_onnx(scaled, tmp_path / "scaled.onnx", dynamo=dynamo)))
    if matmul:
        _gemm_to_matmul(model)
        scales = {f"{name}_t": s for name, s in scales.items()}
    _quantize_weights(model, scales, kind, input_axis)
    onnx.save(model, str(tmp_path / "quantized.onnx"))
    return integer, tmp_path / "quantized.onnx", export_spatial_onnx(integer, tmp_path / "integer.onnx", dynamo)


def _assert_same_layers(network, expected) -> None:
    assert [layer.name for layer in network.layers] == [layer.name for layer in expected.layers]
    for got, want in zip(network.layers, expected.layers):
        for what in ("weight", "bias", "threshold", "beta", "alpha", "recurrent"):
            assert np.array_equal(getattr(got, what), getattr(want, what)), f"{got.name}: {what} differs"
        assert got.reset is want.reset


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("matmul", [False, True], ids=["Gemm", "MatMul"])
def test_dense_per_neuron_scales_import_as_integers(tmp_path, kind, matmul):
    integer, path, integer_path = _quantized_spatial(tmp_path, DENSE, kind, matmul=matmul)
    network = load_model(path)
    _assert_same_layers(network, load_model(integer_path))
    assert np.array_equal(network.layers[0].threshold, [2, 3, 1, 4, 2])
    compiled, report = quantize(network)
    spikes = _spikes(6)
    expected = reference_outputs(integer, spikes, DENSE[0])
    assert report.exact and expected.any()
    assert np.array_equal(golden.run(compiled, spikes).output, expected)


@pytest.mark.parametrize("kind, dynamo", [("Quant", False), ("QDQ", False), ("IntQuant", True)])
def test_conv_per_channel_scales_spread_over_the_map(tmp_path, kind, dynamo):
    integer, path, integer_path = _quantized_spatial(tmp_path, CONV, kind, dynamo=dynamo)
    network = load_model(path)
    _assert_same_layers(network, load_model(integer_path))
    assert np.array_equal(network.layers[0].threshold, np.repeat([2, 3, 1], 36))   # C,H,W order, 6x6 maps
    compiled, report = quantize(network)
    spikes = _spikes(72)
    expected = reference_outputs(integer, spikes, CONV[0])
    assert report.exact and expected.any()
    assert np.array_equal(golden.run(compiled, spikes).output, expected)


def _run_onnxruntime(path, module, spikes: np.ndarray) -> np.ndarray:
    """The ONNX step graph at ``path`` run over ``spikes`` [T, n_in] with its membranes fed back: [T, n_out]."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    mems = [np.zeros(shape, np.float32) for shape in module.mem_shapes]
    out = []
    for row in spikes:
        x = row.astype(np.float32).reshape(1, *module.input_shape)
        spk, *mems = session.run(None, {"x": x, **{f"mem{i}": m for i, m in enumerate(mems, start=1)}})
        out.append(spk.reshape(-1))
    return np.array(out, np.uint8)


@pytest.mark.parametrize("spec", [DENSE, CONV], ids=["Gemm-MatMul", "Conv"])
def test_compiled_spikes_equal_onnxruntime_on_the_float_graph(tmp_path, spec):
    """With beta 1 the float graph's membranes are exact multiples of the scales, so onnxruntime running the QDQ
    graph spikes exactly like the compiled integer network."""
    input_shape, layers = spec
    spec = (input_shape, [(kind, 1.0, *args[1:]) if kind == "lif" else (kind, *args) for kind, *args in layers])
    integer, path, _ = _quantized_spatial(tmp_path, spec, "QDQ", matmul=spec[0] == DENSE[0])
    compiled, report = quantize(load_model(path))
    assert report.exact
    spikes = _spikes(integer.n_in, seed=5)
    want = np.array([_run_onnxruntime(path, integer, sample) for sample in spikes])
    assert want.any() and np.array_equal(golden.run(compiled, spikes).output, want)


@pytest.mark.parametrize("neurons", [
    [Neuron("dense", beta=0.75, threshold=torch.tensor([2.0, 1.0, 3.0, 2.0, 1.0, 2.0]), reset="zero"),
     Neuron("one_to_one", beta=0.5, threshold=torch.tensor([1.0, 2.0, 3.0, 1.0]), V=torch.tensor([2.0, -1.0, 1.0, 3.0]),
            reset="subtract")],
    [Neuron("dense", beta=0.5, threshold=torch.tensor([1.0, 2.0, 1.0, 3.0, 2.0, 1.0]), reset="subtract"),
     Neuron("synaptic", beta=0.75, alpha=0.5, threshold=torch.tensor([2.0, 1.0, 1.0, 2.0]), reset="zero")]],
    ids=["rleaky", "rleaky-synaptic"])
def test_recurrent_rows_divided_by_their_neurons_scale(tmp_path, neurons):
    """An RLeaky's dense V (row i) and one-to-one V (element i) and the recurrent bias scale with neuron i's W."""
    integer = MixedStepNet([5, 6, 4], neurons, seed=2, integer_weights=True)
    scaled, scales = _scaled(integer, seed=1)
    model = onnx.load(str(export_mixed(scaled, tmp_path / "scaled.onnx", dynamo=False)))
    _quantize_weights(model, scales, "Quant")
    onnx.save(model, str(tmp_path / "quantized.onnx"))
    network = load_model(tmp_path / "quantized.onnx")
    _assert_same_layers(network, load_model(export_mixed(integer, tmp_path / "integer.onnx", dynamo=False)))
    compiled, report = quantize(network)
    spikes = _spikes(5, seed=9)
    expected = contract_outputs(integer, 16, spikes)
    assert report.exact and expected.any()
    assert np.array_equal(golden.run(compiled, spikes).output, expected)


@pytest.mark.parametrize("spec, kind, matmul, node", [
    (DENSE, "Quant", False, "'fc1.weight_Quant' (op Quant)"),
    (DENSE, "QDQ", True, "'fc1.weight_t_DQ' (op DequantizeLinear)"),
    (CONV, "IntQuant", False, "'conv1.weight_IntQuant' (op IntQuant)")], ids=["Gemm", "MatMul", "Conv"])
def test_per_input_channel_scales_refused(tmp_path, spec, kind, matmul, node):
    _, path, _ = _quantized_spatial(tmp_path, spec, kind, matmul=matmul, input_axis=True)
    assert_import_fails(UnsupportedModelError, path, node, "vary along an input axis", "per-output-channel")


def test_brevitas_like_per_row_scales_keep_the_integer_weights(tmp_path):
    """Abs-max scaling per output row (max|W_i| / 7 at 4 bits) and threshold 1: the thresholds 1 / s_i are
    per-neuron and no integers, so compile quantizes a float model; its weights are the Quant node's integers,
    which with --weight-bits 4 compile unchanged (every row's largest is 7)."""
    module = make_spatial_step_module((6,), [("fc", 5), ("lif", 0.5, 1.0, "zero")], seed=2)
    with torch.no_grad():
        module.fc1.weight.copy_(torch.randn(5, 6, generator=torch.Generator().manual_seed(1)))
    weight = module.fc1.weight.detach().double().numpy()
    scales = np.abs(weight).max(axis=1) / 7
    model = onnx.load(str(export_spatial_onnx(module, tmp_path / "float.onnx", dynamo=False)))
    _quantize_weights(model, {"fc1.weight": scales}, "Quant")
    onnx.save(model, str(tmp_path / "quantized.onnx"))
    layer, = load_model(tmp_path / "quantized.onnx").layers
    stored = scales.astype(np.float32).astype(np.float64)   # the scale initializer is float32
    integers = np.round(weight / stored[:, None])
    assert np.array_equal(layer.weight, integers) and np.all(np.abs(integers).max(axis=1) == 7)
    assert np.array_equal(layer.threshold, 1.0 / stored)
    compiled, _ = quantize(load_model(tmp_path / "quantized.onnx"), weight_bits=4)
    assert np.array_equal(compiled.layers[0].weight, integers)
