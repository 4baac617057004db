"""Tests for snn2hw.importers.state_dict: both state dict styles imported exactly, clean errors otherwise."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from importer_checks import assert_import_fails
import snntorch as snn
import torch
from model_factory import assert_imported, make_sequential, make_step_module, save_state_dict
from torch import nn

from snn2hw.errors import ModelFormatError, QuantizationError, UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.importers.state_dict import load_state_dict
from snn2hw.ir import Reset

SIZES = [4, 5, 3, 2]
RESETS = ["subtract", "zero", "none"]




def _save(obj, path):
    torch.save(obj, path)
    return path


def _edited(module, path, edit):
    """Save ``module``'s state dict after ``edit(state)`` (an OrderedDict it may change)."""
    state = module.state_dict()
    edit(state)
    return _save(state, path)


# --- parameters ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [make_sequential, make_step_module], ids=["sequential", "named"])
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("resets", RESETS + [["none", "zero", "subtract"]])
def test_parameters_match_module(tmp_path, make, n_layers, bias, resets):
    if not isinstance(resets, str):
        resets = resets[:n_layers]
    module = make(SIZES[:n_layers + 1], betas=[0.9, 0.5, 0.25][:n_layers], thresholds=[0.5, 1.25, 2.0][:n_layers],
                  resets=resets, bias=bias, seed=n_layers, integer_weights=bias)
    network = load_model(save_state_dict(module, tmp_path / "model.pt"))
    assert_imported(network, module)
    expected = [resets] * n_layers if isinstance(resets, str) else resets
    assert [layer.reset for layer in network.layers] == [Reset(reset) for reset in expected]


def test_layer_names(tmp_path):
    sequential = load_model(save_state_dict(make_sequential(SIZES), tmp_path / "a.pth"))
    assert [layer.name for layer in sequential.layers] == ["layer0", "layer2", "layer4"]
    named = load_model(save_state_dict(make_step_module(SIZES), tmp_path / "b.pt"))
    assert [layer.name for layer in named.layers] == ["fc1", "fc2", "fc3"]


class _Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleDict({"fc": nn.Linear(4, 3), "lif": snn.Leaky(beta=0.5)})
        self.head = nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.25, threshold=2.0, reset_mechanism="zero"))


def test_nested_prefixes_become_identifiers(tmp_path):
    module = _Nested()
    network = load_state_dict(save_state_dict(module, tmp_path / "model.pt"))
    assert [layer.name for layer in network.layers] == ["encoder_fc", "head_0"]
    assert_imported(network, module)


def test_learned_beta_and_threshold(tmp_path):
    module = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.75, threshold=1.5, learn_beta=True,
                                                      learn_threshold=True))
    assert isinstance(module[1].beta, nn.Parameter)
    assert_imported(load_state_dict(save_state_dict(module, tmp_path / "model.pt")), module)


def test_missing_reset_mechanism_means_subtract(tmp_path):
    path = _edited(make_sequential([4, 3], resets="zero"), tmp_path / "model.pt",
                   lambda state: state.pop("1.reset_mechanism_val"))
    assert load_state_dict(path).layers[0].reset is Reset.SUBTRACT


def test_uniform_beta_tensor_accepted(tmp_path):
    path = _edited(make_sequential([4, 3]), tmp_path / "model.pt",
                   lambda state: state.update({"1.beta": torch.full((3,), 0.375)}))
    assert load_state_dict(path).layers[0].beta == 0.375


@pytest.mark.parametrize("reset", RESETS)
def test_per_neuron_beta_and_threshold_imported_exactly(tmp_path, reset):
    module = make_sequential([4, 3, 2], betas=[torch.tensor([0.25, 0.5, 0.75]), 0.5],
                             thresholds=[torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.5])], resets=reset)
    network = load_state_dict(save_state_dict(module, tmp_path / "model.pt"))
    assert_imported(network, module)
    assert network.layers[0].beta.tolist() == [0.25, 0.5, 0.75] and network.layers[1].beta == 0.5
    assert network.layers[1].threshold.tolist() == [0.5, 1.5]


# --- semantics that need a clear refusal ---------------------------------------------------------------------

@pytest.mark.parametrize("key, what", [("1.beta", "beta"), ("1.threshold", "threshold")])
def test_parameter_with_neither_one_nor_n_out_values_rejected(tmp_path, key, what):
    path = _edited(make_sequential([4, 3]), tmp_path / "model.pt",
                   lambda state: state.update({key: torch.tensor([0.25, 0.5])}))
    assert_import_fails(UnsupportedModelError, path, "'layer0'", f"{what} has 2 elements; expected 1 or one per "
                        f"neuron (3)")


def test_graded_spikes_factor_must_be_one(tmp_path):
    module = make_step_module([4, 3, 2])
    module.lif2.graded_spikes_factor.fill_(0.5)
    assert_import_fails(UnsupportedModelError, save_state_dict(module, tmp_path / "model.pt"), "fc2", "graded_spikes_factor 0.5")


def _conv_net():
    return nn.Sequential(nn.Conv1d(1, 2, 3), snn.Leaky(beta=0.5))


def _batchnorm_net():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), snn.Leaky(beta=0.5))


@pytest.mark.parametrize("state, culprit", [
    (lambda: _conv_net().state_dict(), "'0.weight' has shape (2, 1, 3): only 2-D nn.Linear and 4-D nn.Conv2d"),
    (lambda: _batchnorm_net().state_dict(), "'1.running_mean'"),
    (lambda: {"foo": torch.zeros(3), "bar": torch.ones(2)}, "'foo'"),
    (lambda: {"fc.bias": torch.zeros(3), "lif.beta": torch.tensor(0.5), "lif.threshold": torch.tensor(1.0)},
     "['fc.bias']"),
    (lambda: {"lif.beta": torch.tensor(0.5), "lif.gamma": torch.tensor(0.5), "lif.threshold": torch.tensor(1.0)},
     "'lif.gamma'"),
], ids=["conv", "batchnorm", "random", "bias-only", "neuron-with-unknown-key"])
def test_foreign_keys_rejected(tmp_path, state, culprit):
    assert_import_fails(UnsupportedModelError, _save(state(), tmp_path / "model.pt"), culprit)


def test_leaky_first_rejected(tmp_path):
    state = collections.OrderedDict(reversed(list(make_step_module([4, 3]).state_dict().items())))
    assert_import_fails(UnsupportedModelError, _save(state, tmp_path / "model.pt"), "'lif1'", "where an nn.Linear or nn.Conv2d was expected")


def test_two_linears_in_a_row_rejected(tmp_path):
    module = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), snn.Leaky(beta=0.5))
    assert_import_fails(UnsupportedModelError, save_state_dict(module, tmp_path / "model.pt"), "'1'", "snn.Leaky of '0'")


def test_trailing_linear_rejected(tmp_path):
    module = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5), nn.Linear(3, 2))
    assert_import_fails(UnsupportedModelError, save_state_dict(module, tmp_path / "model.pt"), "'2'", "not followed by")


# --- invalid parameters (the IR's QuantizationError) ----------------------------------------------------------

def test_nan_weight(tmp_path):
    module = make_step_module([4, 3])
    with torch.no_grad():
        module.fc1.weight[0, 1] = float("nan")
    assert_import_fails(QuantizationError, save_state_dict(module, tmp_path / "model.pt"), "fc1", "weight", "nan")


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_threshold_not_positive(tmp_path, threshold):
    module = make_sequential([4, 3, 2], thresholds=[1.0, threshold])
    assert_import_fails(QuantizationError, save_state_dict(module, tmp_path / "model.pt"), "layer2", f"threshold {threshold}")


def test_beta_above_one(tmp_path):
    assert_import_fails(QuantizationError, save_state_dict(make_step_module([4, 3], betas=1.5), tmp_path / "model.pt"),
            "fc1", "beta 1.5")


def test_unknown_reset_mechanism(tmp_path):
    path = _edited(make_sequential([4, 3]), tmp_path / "model.pt",
                   lambda state: state.update({"1.reset_mechanism_val": torch.tensor(7)}))
    assert_import_fails(QuantizationError, path, "layer0", "reset_mechanism_val 7")


# --- files that are not state dicts ---------------------------------------------------------------------------




def test_truncated_file(tmp_path):
    data = save_state_dict(make_sequential(SIZES), tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])
    assert_import_fails(ModelFormatError, tmp_path / "cut.pt", "cut.pt")


def test_whole_pickled_module(tmp_path):
    assert_import_fails(ModelFormatError, _save(nn.Sequential(nn.Linear(4, 3)), tmp_path / "model.pt"),
            "model.pt", "pickled torch.nn.modules.container.Sequential, not a state dict")


@pytest.mark.parametrize("obj, shown", [
    (torch.zeros(3), "holds a Tensor"),
    ([torch.zeros(3)], "holds a list"),
    ({}, "empty state dict"),
    ({"epoch": 3, "model": {"0.weight": torch.zeros(2, 2)}}, "'epoch' is not a tensor"),
])
def test_not_a_state_dict(tmp_path, obj, shown):
    assert_import_fails(ModelFormatError, _save(obj, tmp_path / "model.pt"), shown)
