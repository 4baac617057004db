"""Tests for snn2hw.importers.onnx_model: parameters recovered exactly from both torch exporters, clean errors."""

from __future__ import annotations

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

from snn2hw.errors import ModelFormatError, QuantizationError, Snn2hwError, UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.importers.onnx_model import load_onnx
from snn2hw.ir import Reset

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


def test_per_neuron_beta_rejected(tmp_path):
    module = make_step_module([4, 3], betas=torch.tensor([0.25, 0.5, 0.75]))
    assert_import_fails(UnsupportedModelError, export_onnx(module, tmp_path / "model.onnx", dynamo=False),
            "fc1", "per-neuron beta is not supported yet")


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
    assert_import_fails(UnsupportedModelError, path, "Relu", "Softmax", "snn2hw maps Gemm/MatMul + snnTorch Leaky")


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
