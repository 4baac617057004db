"""Tests for snn2hw.importers.onnx_model: parameters recovered exactly from both torch exporters, clean errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from importer_checks import assert_import_fails
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_factory import assert_imported, export_onnx, make_step_module
from onnx import helper, numpy_helper
from torch import nn

from snn2hw import golden
from snn2hw.cli import main
from snn2hw.errors import ModelFormatError, QuantizationError, Snn2hwError, UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.importers.onnx_model import load_onnx
from snn2hw.ir import Network, Reset
from snn2hw.passes.quantize import quantize

SIZES = [4, 5, 3, 2]




def _edit(path, new_path, edit):
    """Save a copy of the ONNX model at ``path`` after ``edit(model)`` to ``new_path``."""
    model = onnx.load(str(path))
    edit(model)
    onnx.save(model, str(new_path))
    return new_path


def _nodes(model, op_type):
    return [node for node in model.graph.node if node.op_type == op_type]


def _initializer(model, name):
    return next(init for init in model.graph.initializer if init.name == name)


def _set_initializer(model, name, values):
    _initializer(model, name).CopyFrom(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))


# --- parameters ---------------------------------------------------------------------------------------------

RESETS = ["subtract", "zero", "none"]
TORCHSCRIPT_CASES = [(n, bias, reset) for n in (1, 2, 3) for bias in (True, False) for reset in RESETS]
DYNAMO_CASES = [(1, True, "subtract"), (1, False, "zero"), (2, False, "none"), (3, True, ["subtract", "zero", "none"])]


@pytest.mark.parametrize("dynamo, n_layers, bias, resets",
                         [(False, *case) for case in TORCHSCRIPT_CASES] + [(True, *case) for case in DYNAMO_CASES])
def test_parameters_match_module(tmp_path, dynamo, n_layers, bias, resets):
    module = make_step_module(SIZES[:n_layers + 1], betas=[0.9, 0.5, 0.25][:n_layers],
                              thresholds=[0.5, 1.25, 2.0][:n_layers], resets=resets, bias=bias, seed=n_layers,
                              integer_weights=bias)
    network = load_model(export_onnx(module, tmp_path / "model.onnx", dynamo=dynamo))
    assert_imported(network, module)
    expected = [resets] * n_layers if isinstance(resets, str) else resets
    assert [layer.reset for layer in network.layers] == [Reset(reset) for reset in expected]


@pytest.mark.parametrize("dynamo", [False, True])
def test_unit_beta_and_threshold_folded_away(tmp_path, dynamo):
    """With beta = threshold = 1 the dynamo exporter drops the Mul by beta and by threshold."""
    module = make_step_module(SIZES, betas=1.0, thresholds=1.0, resets=RESETS)
    assert_imported(load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=dynamo)), module)


@pytest.mark.parametrize("reset", RESETS)
def test_zero_beta(tmp_path, reset):
    module = make_step_module([4, 3, 2], betas=0.0, thresholds=[2.0, 0.75], resets=reset)
    assert_imported(load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=False)), module)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5), bias=st.booleans(), data=st.data())
def test_random_networks_round_trip(tmp_path, sizes, bias, data):
    n_layers = len(sizes) - 1
    betas = data.draw(st.lists(st.floats(0, 1, width=32), min_size=n_layers, max_size=n_layers))
    thresholds = data.draw(st.lists(st.floats(0.0625, 64.0, width=32), min_size=n_layers, max_size=n_layers))
    resets = data.draw(st.lists(st.sampled_from(RESETS), min_size=n_layers, max_size=n_layers))
    module = make_step_module(sizes, betas, thresholds, resets, bias=bias, integer_weights=False)
    assert_imported(load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=False)), module)


def test_layer_names(tmp_path):
    with_bias = make_step_module([4, 3, 2], bias=True)
    assert [layer.name for layer in load_onnx(export_onnx(with_bias, tmp_path / "a.onnx", dynamo=False)).layers] \
        == ["fc1", "fc2"]
    # Without bias the TorchScript exporter stores W^T as an anonymous 'onnx::MatMul_N' initializer; the
    # name then comes from the node's scope ('/fc2/MatMul').
    no_bias = make_step_module([4, 3, 2], bias=False)
    assert [layer.name for layer in load_onnx(export_onnx(no_bias, tmp_path / "b.onnx", dynamo=False)).layers] \
        == ["fc1", "fc2"]


class _Reordered(nn.Module):
    """``forward(mem2, x, mem1) -> (mem1, mem2, spk)`` around a 2-layer StepNet."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, mem2, x, mem1):
        spk, new1, new2 = self.inner(x, mem1, mem2)
        return new1, new2, spk


@pytest.mark.parametrize("dynamo", [False, True])
def test_input_names_and_order_do_not_matter(tmp_path, dynamo):
    inner = make_step_module([4, 5, 3], betas=[0.75, 0.5], thresholds=[1.5, 0.5], resets=["zero", "subtract"])
    args = (torch.zeros(1, 3), torch.zeros(1, 4), torch.zeros(1, 5))
    path = export_onnx(_Reordered(inner), tmp_path / "model.onnx", dynamo=dynamo, args=args,
                       input_names=["state_b", "spikes_in", "state_a"], output_names=["o1", "o2", "o3"])
    network = load_onnx(path)
    assert_imported(network, inner)
    assert [layer.name for layer in network.layers] == ["inner_fc1", "inner_fc2"]


def test_external_data(tmp_path):
    module = make_step_module([4, 5, 3], betas=[0.5, 0.25], thresholds=[1.0, 2.0], resets=["subtract", "zero"])
    model = onnx.load(str(export_onnx(module, tmp_path / "export.onnx", dynamo=True)))
    folder = tmp_path / "external"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    assert (folder / "model.onnx.data").stat().st_size > 0
    assert_imported(load_model(folder / "model.onnx"), module)
    (folder / "model.onnx.data").unlink()
    assert_import_fails(ModelFormatError, folder / "model.onnx", "external data file 'model.onnx.data'", "does not exist")
    (folder / "model.onnx.data").write_bytes(b"\0" * 8)
    assert_import_fails(ModelFormatError, folder / "model.onnx", "cannot read the external data", "model.onnx")


# --- Gemm / MatMul variants (edited TorchScript exports) ----------------------------------------------------

@pytest.fixture()
def one_layer(tmp_path):
    """A 1-layer subtract-reset module with bias and its TorchScript export."""
    module = make_step_module([4, 3], betas=0.5, thresholds=1.5, resets="subtract", seed=3)
    return module, export_onnx(module, tmp_path / "model.onnx", dynamo=False)


def test_gemm_alpha_beta_and_transb(tmp_path, one_layer):
    module, path = one_layer

    def edit(model):
        gemm = _nodes(model, "Gemm")[0]
        weight = numpy_helper.to_array(_initializer(model, gemm.input[1]))
        _set_initializer(model, gemm.input[1], weight.T / 2)  # transB=0 takes W^T; alpha=2 doubles it
        del gemm.attribute[:]
        gemm.attribute.extend([helper.make_attribute("alpha", 2.0), helper.make_attribute("beta", 0.5),
                               helper.make_attribute("transB", 0)])
    layer = load_onnx(_edit(path, tmp_path / "edited.onnx", edit)).layers[0]
    assert np.array_equal(layer.weight, module.fc1.weight.detach().double().numpy())
    assert np.array_equal(layer.bias, module.fc1.bias.detach().double().numpy() * 0.5)


def test_gemm_trans_a_rejected(tmp_path, one_layer):
    def edit(model):
        _nodes(model, "Gemm")[0].attribute.append(helper.make_attribute("transA", 1))
    assert_import_fails(UnsupportedModelError, _edit(one_layer[1], tmp_path / "edited.onnx", edit), "/fc1/Gemm", "transA")


def test_matmul_followed_by_bias_add(tmp_path):
    module = make_step_module([4, 3], betas=0.5, thresholds=1.0, bias=False)
    bias = np.array([1.0, -2.0, 0.5], dtype=np.float32)

    def edit(model):
        matmul = _nodes(model, "MatMul")[0]
        old_out = matmul.output[0]
        matmul.output[0] = "matmul_raw"
        model.graph.initializer.append(numpy_helper.from_array(bias.reshape(1, 3), "fc1.bias"))
        model.graph.node.insert(list(model.graph.node).index(matmul) + 1,
                                helper.make_node("Add", ["fc1.bias", "matmul_raw"], [old_out], name="bias_add"))
    path = _edit(export_onnx(module, tmp_path / "model.onnx", dynamo=False), tmp_path / "edited.onnx", edit)
    layer = load_onnx(path).layers[0]
    assert np.array_equal(layer.weight, module.fc1.weight.detach().double().numpy())
    assert np.array_equal(layer.bias, bias.astype(np.float64))


# --- semantics that need a clear refusal ---------------------------------------------------------------------

def test_graded_spikes_factor_must_be_one(tmp_path):
    module = make_step_module([4, 3], betas=0.5)
    module.lif1.graded_spikes_factor.fill_(2.0)
    assert_import_fails(UnsupportedModelError, export_onnx(module, tmp_path / "model.onnx", dynamo=False),
            "fc1", "graded_spikes_factor 2")


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("reset", RESETS)
def test_per_neuron_beta_and_threshold_imported_exactly(tmp_path, dynamo, reset):
    module = make_step_module([4, 3, 2], betas=[torch.tensor([0.25, 0.5, 0.75]), 0.5],
                              thresholds=[torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.5, 3.0])], resets=reset)
    network = load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=dynamo))
    assert_imported(network, module)
    assert network.layers[0].beta.tolist() == [0.25, 0.5, 0.75] and network.layers[1].threshold.tolist() == [1.5, 3]


def test_subtract_reset_by_other_per_neuron_values_than_the_threshold_refused(tmp_path):
    module = make_step_module([4, 3], thresholds=torch.tensor([1.0, 2.0, 0.5]))
    path = export_onnx(module, tmp_path / "model.onnx", dynamo=False)

    def edit(model):
        reset_mul = next(node for node in _nodes(model, "Mul") if node.name == "/lif1/Mul_1")
        model.graph.initializer.append(numpy_helper.from_array(np.array([1.0, 2.0, 4.0], np.float32), "other"))
        reset_mul.input[1] = "other"
    assert_import_fails(UnsupportedModelError, _edit(path, tmp_path / "edited.onnx", edit), "fc1",
                        "removes [1, 2, 4] * spike, not threshold [1, 2, 0.5] * spike")


def test_uniform_beta_tensor_accepted(tmp_path):
    module = make_step_module([4, 3], betas=torch.tensor([0.25, 0.25, 0.25]))
    assert load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=False)).layers[0].beta == 0.25


def test_beta_is_clamped_like_snntorch(tmp_path):
    """snnTorch clamps beta to [0, 1] in forward; the exported graph says so and the import follows the graph."""
    module = make_step_module([4, 3], betas=1.5)
    assert load_onnx(export_onnx(module, tmp_path / "model.onnx", dynamo=False)).layers[0].beta == 1.0


def test_beta_constant_outside_unit_interval(tmp_path, one_layer):
    def edit(model):  # the beta operand of the leak Mul, as a graph without the Clip would hold it
        leak = next(node for node in _nodes(model, "Mul") if "mem1" in node.input)
        clip_output = next(name for name in leak.input if name != "mem1")
        model.graph.node.remove(next(node for node in model.graph.node if clip_output in node.output))
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.5, dtype=np.float32), clip_output))
    assert_import_fails(QuantizationError, _edit(one_layer[1], tmp_path / "edited.onnx", edit), "fc1", "beta 1.5")


def test_subtract_reset_scale_must_be_threshold(tmp_path, one_layer):
    def edit(model):
        reset_mul = next(node for node in _nodes(model, "Mul") if node.name == "/lif1/Mul_1")
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.25, dtype=np.float32), "other"))
        reset_mul.input[1] = "other"
    assert_import_fails(UnsupportedModelError, _edit(one_layer[1], tmp_path / "edited.onnx", edit), "fc1", "0.25", "1.5")


def test_leftover_node_rejected(tmp_path, one_layer):
    def edit(model):
        model.graph.node.append(helper.make_node("Mul", ["mem1", "mem1"], ["squared"], name="extra_mul"))
        model.graph.output.append(helper.make_tensor_value_info("squared", onnx.TensorProto.FLOAT, [1, 3]))
    assert_import_fails(UnsupportedModelError, _edit(one_layer[1], tmp_path / "edited.onnx", edit), "extra_mul", "Mul")


@pytest.mark.parametrize("dynamo", [False, True])
def test_ann_with_softmax_rejected(tmp_path, dynamo):
    ann = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Softmax(dim=-1))
    path = export_onnx(ann, tmp_path / "ann.onnx", dynamo=dynamo, args=(torch.zeros(1, 4),))
    assert_import_fails(UnsupportedModelError, path, "Relu", "Softmax", "snn2hw maps Gemm/MatMul/Conv + snnTorch Leaky")


def test_linear_only_ann_rejected(tmp_path):
    ann = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3))
    path = export_onnx(ann, tmp_path / "ann.onnx", dynamo=False, args=(torch.zeros(1, 4),))
    assert_import_fails(UnsupportedModelError, path, "'/1/Gemm' (op Gemm)", "membrane Add")


class _SigmoidStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = make_step_module([4, 3])

    def forward(self, x, mem1):
        return self.inner(torch.sigmoid(x), mem1)


class _ConvStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3)
        self.inner = make_step_module([2, 3])

    def forward(self, x, mem1):
        return self.inner(self.conv(x.unsqueeze(1)).flatten(1), mem1)


@pytest.mark.parametrize("module, culprit", [(_SigmoidStep, "'/Sigmoid' (op Sigmoid)"),
                                             (_ConvStep, "'/conv/Conv' (op Conv)")])
def test_unsupported_op_named(tmp_path, module, culprit):
    path = export_onnx(module(), tmp_path / "model.onnx", dynamo=False, args=(torch.zeros(1, 4), torch.zeros(1, 3)))
    assert_import_fails(UnsupportedModelError, path, culprit)


# --- invalid parameters (the IR's QuantizationError) ----------------------------------------------------------

def test_nan_weight(tmp_path):
    module = make_step_module([4, 3, 2])
    with torch.no_grad():
        module.fc2.weight[1, 0] = float("nan")
    assert_import_fails(QuantizationError, export_onnx(module, tmp_path / "model.onnx", dynamo=False), "fc2", "weight", "nan")


@pytest.mark.parametrize("dynamo, threshold", [(False, 0.0), (True, 0.0), (False, -1.0)])
def test_threshold_not_positive(tmp_path, dynamo, threshold):
    module = make_step_module([4, 3], thresholds=threshold)
    assert_import_fails(QuantizationError, export_onnx(module, tmp_path / "model.onnx", dynamo=dynamo),
            "fc1", f"threshold {threshold}")


# --- unreadable files ---------------------------------------------------------------------------------------




def test_truncated_file(tmp_path, one_layer):
    data = one_layer[1].read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[:len(data) // 2])
    assert_import_fails(ModelFormatError, tmp_path / "cut.onnx", "cut.onnx")


def test_truncated_anywhere_is_a_clean_error_or_complete(tmp_path, one_layer):
    """Cutting the file at any point gives an Snn2hwError, or (cut after the graph) the full network."""
    module, path = one_layer
    data = path.read_bytes()
    for cut in range(1, len(data), 7):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        try:
            assert_imported(load_onnx(tmp_path / "cut.onnx"), module)
        except Snn2hwError as exc:
            assert "\n" not in str(exc)


@pytest.mark.parametrize("name, shown", [("model.h5", "'.h5'"), ("model", "no extension")])
def test_wrong_extension(tmp_path, name, shown):
    (tmp_path / name).write_bytes(b"\x00" * 8)
    assert_import_fails(ModelFormatError, tmp_path / name, name, shown, ".onnx", ".pt")


# --- quantized weights: QONNX Quant / IntQuant and QuantizeLinear -> DequantizeLinear -------------------------

QONNX = "qonnx.custom_op.general"
SCALE = 0.125  # a power of two: n * SCALE and b / SCALE are exact, so the integer equivalent is exact too


def _scaled_module(scale, seed=7, resets=("subtract", "zero"), bias=True):
    """A 2-layer module with weights n * scale (n small integers), bias b * scale and thresholds t * scale, and
    its integer equivalent (n, b, t): the network a quantized export of the first must import as."""
    integer = make_step_module([4, 6, 3], betas=[0.75, 0.5], thresholds=[3.0, 2.0], resets=list(resets), bias=bias,
                               seed=seed)
    scaled = make_step_module([4, 6, 3], betas=[0.75, 0.5], thresholds=[3.0 * scale, 2.0 * scale],
                              resets=list(resets), bias=bias, seed=seed)
    with torch.no_grad():
        for param in scaled.parameters():
            if param.ndim:  # weights and biases (thresholds and betas are buffers or scalars set above)
                param.mul_(scale)
    return scaled, integer


def _replace_weights(model, subgraph):
    """Feed every Gemm/MatMul weight through ``subgraph(name, values) -> (nodes, initializers, output)``."""
    for dense in [node for node in model.graph.node if node.op_type in ("Gemm", "MatMul")]:
        name = dense.input[1]
        nodes, initializers, output = subgraph(name, numpy_helper.to_array(_initializer(model, name)))
        model.graph.initializer.extend(initializers)
        position = list(model.graph.node).index(dense)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(position + offset, node)
        dense.input[1] = output


def _quant(scale=SCALE, bits=4, op="Quant", zero_point=0.0, **attrs):
    attrs = {"signed": 1, "narrow": 1, "rounding_mode": "ROUND", **attrs}

    def subgraph(name, values):
        inits = [numpy_helper.from_array(np.asarray(scale, np.float32), f"{name}_scale"),
                 numpy_helper.from_array(np.asarray(zero_point, np.float32), f"{name}_zp"),
                 numpy_helper.from_array(np.asarray(bits, np.float32), f"{name}_bits")]
        node = helper.make_node(op, [name, f"{name}_scale", f"{name}_zp", f"{name}_bits"], [f"{name}_q"],
                                domain=QONNX, name=f"{name}_{op}", **attrs)
        return [node], inits, f"{name}_q"
    return subgraph


def _qdq(scale=SCALE, with_quantize=True):
    def subgraph(name, values):
        zero = numpy_helper.from_array(np.zeros((), np.int8), f"{name}_zp")
        scale_init = numpy_helper.from_array(np.asarray(scale, np.float32), f"{name}_scale")
        dq_input = f"{name}_int8"
        if with_quantize:
            nodes = [helper.make_node("QuantizeLinear", [name, f"{name}_scale", f"{name}_zp"], [dq_input],
                                      name=f"{name}_Q")]
            inits = [scale_init, zero]
        else:
            nodes = []
            inits = [scale_init, zero, numpy_helper.from_array(np.round(values / scale).astype(np.int8), dq_input)]
        nodes.append(helper.make_node("DequantizeLinear", [dq_input, f"{name}_scale", f"{name}_zp"],
                                      [f"{name}_dq"], name=f"{name}_DQ"))
        return nodes, inits, f"{name}_dq"
    return subgraph


def _quantized_export(tmp_path, module, subgraph, dynamo=False):
    def edit(model):
        _replace_weights(model, subgraph)
        model.opset_import.append(helper.make_opsetid(QONNX, 1))
    return _edit(export_onnx(module, tmp_path / "float.onnx", dynamo=dynamo), tmp_path / "quantized.onnx", edit)


@pytest.mark.parametrize("subgraph", [_quant(), _quant(op="IntQuant"), _qdq(), _qdq(with_quantize=False)],
                         ids=["Quant", "IntQuant", "QDQ", "DQ-of-int8"])
@pytest.mark.parametrize("dynamo, bias", [(False, True), (False, False), (True, True)])
def test_quantized_weights_import_as_their_integers(tmp_path, subgraph, dynamo, bias):
    scaled, integer = _scaled_module(SCALE, bias=bias)
    network = load_onnx(_quantized_export(tmp_path, scaled, subgraph, dynamo=dynamo))
    assert_imported(network, integer)


def test_qdq_graph_runs_in_onnxruntime_like_the_float_graph(tmp_path):
    """The QDQ test graph is valid ONNX that computes what the float export computes (its weights dequantize to
    exactly n * SCALE)."""
    import onnxruntime

    scaled, _ = _scaled_module(SCALE)
    path = _quantized_export(tmp_path, scaled, _qdq())
    rng = np.random.default_rng(0)
    feeds = {"x": (rng.random((1, 4)) < 0.5).astype(np.float32), "mem1": rng.normal(size=(1, 6)).astype(np.float32),
             "mem2": rng.normal(size=(1, 3)).astype(np.float32)}
    outputs = [onnxruntime.InferenceSession(str(p)).run(None, feeds) for p in (path, tmp_path / "float.onnx")]
    for got, want in zip(*outputs):
        assert np.array_equal(got, want)


def test_quantize_dequantize_linear_evaluated_like_onnxruntime(tmp_path):
    """Per-axis int8 QuantizeLinear -> DequantizeLinear with a non-power-of-two scale, ties and saturation: the
    importer's constant folding against onnxruntime's kernels."""
    import onnxruntime
    from snn2hw.importers.onnx_quant import evaluate

    values = np.array([[0.25, -0.75, 1.25, 40.0], [0.3, -0.3, 0.1, -40.0], [2.5, 3.5, -2.5, 0.0]], np.float32)
    scale = np.array([0.5, 0.1, 1.0], np.float32)
    zero = np.array([0, 3, -2], np.int8)
    q = helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis=0)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)
    graph = helper.make_graph([q, dq], "qdq", [], [helper.make_tensor_value_info(n, t, None) for n, t in
                                                    (("q", onnx.TensorProto.INT8), ("y", onnx.TensorProto.FLOAT))],
                              [numpy_helper.from_array(values, "w"), numpy_helper.from_array(scale, "s"),
                               numpy_helper.from_array(zero, "z")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "qdq.onnx"))
    want_q, want_y = onnxruntime.InferenceSession(str(tmp_path / "qdq.onnx")).run(None, {})
    got_q, _ = evaluate(q, [values, scale, zero], "Q")
    got_y, grid = evaluate(dq, [got_q, scale, zero], "DQ")
    assert got_q.dtype == np.int8 and np.array_equal(got_q, want_q)
    assert np.array_equal(got_y.astype(np.float32), want_y)
    assert np.array_equal(grid, np.broadcast_to(scale.astype(np.float64)[:, None], values.shape))


@pytest.mark.parametrize("mode, expected", [  # QONNX's rounding-mode table (docs/qonnx-custom-ops/intquant_v1.md)
    ("ROUND", [6, 2, 2, 1, 1, -1, -1, -2, -2, -6]), ("CEIL", [6, 3, 2, 2, 1, -1, -1, -1, -2, -5]),
    ("FLOOR", [5, 2, 1, 1, 1, -1, -2, -2, -3, -6]), ("UP", [6, 3, 2, 2, 1, -1, -2, -2, -3, -6]),
    ("DOWN", [5, 2, 1, 1, 1, -1, -1, -1, -2, -5]), ("HALF_UP", [6, 3, 2, 1, 1, -1, -1, -2, -3, -6]),
    ("HALF_DOWN", [5, 2, 2, 1, 1, -1, -1, -2, -2, -5]), ("round", [6, 2, 2, 1, 1, -1, -1, -2, -2, -6])])
def test_quant_rounding_modes(mode, expected):
    from snn2hw.importers.onnx_quant import evaluate

    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX, signed=1, narrow=0,
                            rounding_mode=mode)
    x = np.array([5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5])
    values, grid = evaluate(node, [x * 0.5, np.float32(0.5), np.float32(0), np.float32(8)], "Quant")
    assert np.array_equal(values, np.array(expected) * 0.5) and np.array_equal(grid, np.full(x.shape, 0.5))


@pytest.mark.parametrize("signed, narrow, bits, expected", [
    (1, 0, 4, [-8, -8, 0, 7, 7]), (1, 1, 4, [-7, -7, 0, 7, 7]), (0, 0, 3, [0, 0, 0, 7, 7]),
    (0, 1, 3, [0, 0, 0, 6, 6]), (1, 0, 1, [-1, -1, 1, 1, 1])])
def test_quant_clamps_to_its_range(signed, narrow, bits, expected):
    from snn2hw.importers.onnx_quant import evaluate

    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX, signed=signed, narrow=narrow)
    values, _ = evaluate(node, [np.array([-20.0, -8.0, 0.0, 7.0, 20.0]), np.float32(1), np.float32(0),
                                np.float32(bits)], "Quant")
    assert np.array_equal(values, expected)


def test_brevitas_like_scale_keeps_the_integer_weights(tmp_path):
    """Abs-max per-tensor scaling (max|W| / 7 at 4 bits) and threshold 1: threshold / s is no integer, so
    compile quantizes it as a float model; with --weight-bits 4 the weight scale is 1 and the compiled weights
    are exactly the Quant node's integers."""
    module = make_step_module([4, 6, 3], betas=0.5, thresholds=1.0, resets="zero", integer_weights=False, seed=2)
    quantized = {}

    def abs_max(name, values):
        quantized[name] = float(np.abs(values).max()) / 7
        return _quant(scale=quantized[name])(name, values)
    network = load_onnx(_quantized_export(tmp_path, module, abs_max))
    integers = [np.round(np.clip(fc.weight.detach().double().numpy() / quantized[f"fc{i}.weight"], -7, 7))
                for i, fc in enumerate((module.fc1, module.fc2), start=1)]
    for layer, want, fc in zip(network.layers, integers, (module.fc1, module.fc2)):
        scale = quantized[f"{layer.name}.weight"]
        assert np.array_equal(layer.weight, want) and np.abs(want).max() == 7
        assert layer.threshold == pytest.approx(1.0 / scale)
        assert np.allclose(layer.bias, fc.bias.detach().double().numpy() / scale)
    compiled, report = quantize(network, weight_bits=4)
    assert [np.array_equal(layer.weight, want) for layer, want in zip(compiled.layers, integers)] == [True, True]


def test_quantized_export_compiles_like_the_integer_model(tmp_path):
    """`snn2hw compile` of the QONNX export and of its integer equivalent: same network, same golden spikes."""
    scaled, integer = _scaled_module(SCALE)
    paths = [_quantized_export(tmp_path, scaled, _quant()), export_onnx(integer, tmp_path / "int.onnx", dynamo=False)]
    networks = []
    for path, out in zip(paths, ("q", "i")):
        assert main(["-q", "compile", str(path), "-o", str(tmp_path / out)]) == 0
        networks.append(Network.from_json(json.loads((tmp_path / out / "network.json").read_text())))
    assert [layer.to_json() for layer in networks[0].layers] == [layer.to_json() for layer in networks[1].layers]
    spikes = (np.random.default_rng(1).random((8, 20, 4)) < 0.5).astype(np.uint8)
    outputs = [golden.run(network, spikes).output for network in networks]
    assert outputs[0].sum() > 0 and np.array_equal(outputs[0], outputs[1])


def test_equal_per_channel_scales_accepted(tmp_path):
    scaled, integer = _scaled_module(SCALE)

    def per_row(name, values):
        return _quant(scale=np.full((values.shape[0], 1), SCALE))(name, values)
    assert_imported(load_onnx(_quantized_export(tmp_path, scaled, per_row)), integer)


def test_quantized_activations_refused(tmp_path, one_layer):
    def edit(model):
        gemm = _nodes(model, "Gemm")[0]
        model.graph.initializer.extend([numpy_helper.from_array(np.asarray(v, np.float32), n)
                                        for n, v in (("s", 1.0), ("z", 0.0), ("b", 8.0))])
        model.graph.node.insert(0, helper.make_node("Quant", [gemm.input[0], "s", "z", "b"], ["xq"], domain=QONNX,
                                                    name="act_quant"))
        gemm.input[0] = "xq"
    assert_import_fails(UnsupportedModelError, _edit(one_layer[1], tmp_path / "edited.onnx", edit),
                        "'act_quant' (op Quant)", "non-constant")


def test_bad_quantizer_parameters_named(tmp_path):
    scaled, _ = _scaled_module(SCALE)
    path = _quantized_export(tmp_path, scaled, _quant(rounding_mode="STOCHASTIC"))
    assert_import_fails(UnsupportedModelError, path, "'fc1.weight_Quant' (op Quant)", "rounding_mode 'STOCHASTIC'")
    path = _quantized_export(tmp_path, scaled, _quant(scale=-1.0))
    assert_import_fails(UnsupportedModelError, path, "'fc1.weight_Quant' (op Quant)", "must be finite and > 0")
