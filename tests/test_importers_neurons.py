"""snnTorch Synaptic, RLeaky and RSynaptic layers (alone and mixed with Leaky) through the ONNX and state dict
importers: the
imported network run by the float model spikes exactly like snnTorch itself, and the compiled integer network
exactly like the contract reference; unsupported variants are refused naming layer and construct."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import snntorch as snn
import torch
from torch import nn

from importer_checks import assert_import_fails
from model_factory import save_state_dict
from neuron_models import MixedStepNet, Neuron, contract_outputs, export_mixed, run_snntorch, sequential_of

from snn2hw import golden
from snn2hw.errors import UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.ir import Reset
from snn2hw.passes.quantize import quantize

RESETS = ["subtract", "zero", "none"]
PER_NEURON = dict(alpha=torch.tensor([0.25, 0.5, 0.875, 0.0]), beta=torch.tensor([0.75, 0.5, 1.0, 0.25]),
                  threshold=torch.tensor([1.0, 0.5, 1.5, 0.75]))
SINGLE = {
    "synaptic": Neuron("synaptic", alpha=0.5, beta=0.75, threshold=0.75),
    "synaptic-per-neuron": Neuron("synaptic", **PER_NEURON),
    "dense": Neuron("dense", beta=0.875, threshold=0.75),
    "one-to-one": Neuron("one_to_one", V=-0.5, beta=0.75, threshold=0.5),
    "one-to-one-per-neuron": Neuron("one_to_one", V=torch.tensor([0.5, -1.0, 0.25, 2.0]), beta=PER_NEURON["beta"],
                                    threshold=PER_NEURON["threshold"]),
    "rsynaptic-dense": Neuron("synaptic_dense", alpha=0.75, beta=0.5, threshold=0.75),
    "rsynaptic-one-to-one": Neuron("synaptic_one_to_one", V=-0.5, alpha=0.5, beta=0.875, threshold=0.5),
    "rsynaptic-one-to-one-per-neuron": Neuron("synaptic_one_to_one", V=torch.tensor([0.5, -1.0, 0.25, 2.0]),
                                              **PER_NEURON),
}


def _spikes(n_in: int, steps: int = 40, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, n_in)) < 0.5).astype(np.uint8)


def _with_reset(neuron: Neuron, reset: str) -> Neuron:
    return Neuron(neuron.kind, neuron.beta, neuron.threshold, reset, neuron.alpha, neuron.V)


def _assert_spikes_like_snntorch(network, net: MixedStepNet) -> None:
    spikes = _spikes(net.sizes[0])
    expected = run_snntorch(net, spikes)
    assert expected.any() and not expected.all(), "the test network should spike sometimes"
    assert np.array_equal(golden.run_float(network, spikes).output[0], expected)


def _assert_parameters(network, net: MixedStepNet) -> None:
    for layer, neuron, i in zip(network.layers, net.neurons, range(1, len(net.neurons) + 1)):
        fc, lif = getattr(net, f"fc{i}"), getattr(net, f"lif{i}")
        n = fc.out_features
        bias = fc.bias.detach().double().numpy()
        assert np.array_equal(layer.weight, fc.weight.detach().double().numpy())
        assert layer.reset is Reset(neuron.reset)
        assert np.array_equal(np.broadcast_to(layer.beta, n), np.broadcast_to(lif.beta.clamp(0, 1).double(), n))
        assert np.array_equal(np.broadcast_to(layer.threshold, n), np.broadcast_to(lif.threshold.double(), n))
        if neuron.synaptic:
            assert np.array_equal(np.broadcast_to(layer.alpha, n), np.broadcast_to(lif.alpha.clamp(0, 1).double(), n))
        else:
            assert layer.alpha is None
        if neuron.recurrence == "dense":
            assert np.array_equal(layer.recurrent, lif.recurrent.weight.detach().double().numpy())
            bias = bias + lif.recurrent.bias.detach().double().numpy()
        elif neuron.recurrence == "one_to_one":
            assert np.array_equal(layer.recurrent, np.broadcast_to(lif.V.detach().double().numpy(), n))
        else:
            assert layer.recurrent is None
        assert np.array_equal(layer.bias, bias)


# --- ONNX ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("case", sorted(SINGLE))
def test_onnx_single_neuron_spikes_like_snntorch(tmp_path, case, reset, dynamo):
    net = MixedStepNet([5, 4], [_with_reset(SINGLE[case], reset)], seed=3)
    network = load_model(export_mixed(net, tmp_path / "model.onnx", dynamo))
    _assert_parameters(network, net)
    _assert_spikes_like_snntorch(network, net)


MIXED = [
    [Neuron("leaky", reset="zero"), Neuron("synaptic", reset="subtract"), Neuron("dense", reset="zero")],
    [Neuron("dense", reset="subtract"), Neuron("one_to_one", reset="none", V=torch.tensor([1.0, -0.5, 0.25, 0.5])),
     Neuron("leaky", reset="subtract")],
    [Neuron("synaptic", reset="none"), Neuron("one_to_one", reset="zero"), Neuron("synaptic", reset="zero")],
    [Neuron("synaptic_dense", reset="zero"), Neuron("synaptic_one_to_one", reset="subtract", V=-0.75),
     Neuron("synaptic_dense", reset="none")],
    [Neuron("synaptic_one_to_one", reset="none", V=torch.tensor([1.0, -0.5, 0.25, 0.5])), Neuron("leaky"),
     Neuron("synaptic_one_to_one", reset="zero", V=1.5)],
]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("chain", range(len(MIXED)))
def test_onnx_mixed_chain_spikes_like_snntorch(tmp_path, chain, dynamo):
    net = MixedStepNet([6, 4, 4, 3], MIXED[chain], seed=chain)
    network = load_model(export_mixed(net, tmp_path / "model.onnx", dynamo))
    _assert_parameters(network, net)
    _assert_spikes_like_snntorch(network, net)


def test_onnx_synaptic_without_its_synaptic_current_output_refused(tmp_path):
    net = MixedStepNet([5, 4], [Neuron("synaptic")])
    path = export_mixed(net, tmp_path / "model.onnx", dynamo=False)
    model = onnx.load(str(path))
    syn_out = next(output for output in model.graph.output if output.name == "syn1_out")
    model.graph.output.remove(syn_out)
    onnx.save(model, str(tmp_path / "edited.onnx"))
    assert_import_fails(UnsupportedModelError, tmp_path / "edited.onnx", "'fc1'", "not a graph output")


@pytest.mark.parametrize("kind", ["dense", "one_to_one", "synaptic_dense", "synaptic_one_to_one"])
def test_onnx_recurrent_spikes_not_fed_back_refused(tmp_path, kind):
    """A hidden RLeaky's or RSynaptic's spikes must be a graph output, else they cannot come back as its spike
    input."""
    net = MixedStepNet([5, 4, 3], [Neuron(kind), Neuron("leaky")])
    model = onnx.load(str(export_mixed(net, tmp_path / "model.onnx", dynamo=False)))
    model.graph.output.remove(next(output for output in model.graph.output if output.name == "spk1_out"))
    onnx.save(model, str(tmp_path / "edited.onnx"))
    neuron = "RSynaptic" if Neuron(kind).synaptic else "RLeaky"
    assert_import_fails(UnsupportedModelError, tmp_path / "edited.onnx", "'fc1'", neuron, "'spk1'",
                        "not a graph output to feed back")


def test_onnx_rsynaptic_one_to_one_without_module_scopes_refused(tmp_path):
    """``alpha syn + V spk`` is symmetric: without the exporter's record of the module 'recurrent' the spike input
    cannot be told from the synaptic current."""
    net = MixedStepNet([5, 4], [Neuron("synaptic_one_to_one")])
    model = onnx.load(str(export_mixed(net, tmp_path / "model.onnx", dynamo=False)))
    for node in model.graph.node:
        node.name = ""
    onnx.save(model, str(tmp_path / "edited.onnx"))
    assert_import_fails(UnsupportedModelError, tmp_path / "edited.onnx", "'fc1'", "cannot tell its spike",
                        "module 'recurrent'")


def test_onnx_membrane_term_foreign_to_snntorch_refused(tmp_path):
    """A Synaptic whose membrane adds the synaptic current twice is none of the recognised neurons."""
    net = MixedStepNet([5, 4], [Neuron("synaptic", reset="none")])
    model = onnx.load(str(export_mixed(net, tmp_path / "model.onnx", dynamo=False)))
    add = next(node for node in model.graph.node if node.op_type == "Add" and "mem1_out" in node.output)
    syn = next(name for name in add.input if name == "syn1_out")
    model.graph.node.insert(list(model.graph.node).index(add), onnx.helper.make_node("Add", [syn, syn], ["twice"]))
    add.input[list(add.input).index(syn)] = "twice"
    onnx.save(model, str(tmp_path / "edited.onnx"))
    assert_import_fails(UnsupportedModelError, tmp_path / "edited.onnx", "'fc1'", "unexpected terms")


# --- state dicts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["named", "sequential"])
@pytest.mark.parametrize("chain", range(len(MIXED)))
def test_state_dict_mixed_chain_spikes_like_snntorch(tmp_path, chain, style):
    net = MixedStepNet([6, 4, 4, 3], MIXED[chain], seed=chain)
    module = net if style == "named" else sequential_of(net)
    network = load_model(save_state_dict(module, tmp_path / "model.pt"))
    _assert_parameters(network, net)
    _assert_spikes_like_snntorch(network, net)


@pytest.mark.parametrize("neuron", ["RLeaky", "RSynaptic"])
@pytest.mark.parametrize("learn_recurrent", [False, True])
def test_state_dict_one_to_one_v_buffer_or_parameter(tmp_path, learn_recurrent, neuron):
    """A learned V is saved twice (``V`` and ``recurrent.V``), a fixed one once."""
    extra = {"alpha": 0.25} if neuron == "RSynaptic" else {}
    lif = getattr(snn, neuron)(beta=0.5, all_to_all=False, V=torch.tensor([0.5, -1.0, 2.0]),
                               learn_recurrent=learn_recurrent, **extra)
    keys = set(nn.Sequential(nn.Linear(2, 3), lif).state_dict())
    assert ("1.recurrent.V" in keys) == learn_recurrent
    layer = load_model(save_state_dict(nn.Sequential(nn.Linear(2, 3), lif), tmp_path / "model.pt")).layers[0]
    assert layer.recurrent.tolist() == [0.5, -1.0, 2.0]
    assert layer.alpha == extra.get("alpha")


@pytest.mark.parametrize("module, fragments", [
    (lambda: nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=0.5, conv2d_channels=3, kernel_size=3)),
     ["'layer0'", "convolutional recurrence", "(3, 3, 3, 3)"]),
    (lambda: nn.Sequential(nn.Linear(4, 3), snn.RSynaptic(alpha=0.5, beta=0.5, conv2d_channels=3, kernel_size=3)),
     ["'layer0'", "snn.RSynaptic with a convolutional recurrence", "(3, 3, 3, 3)"]),
    (lambda: nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=0.5, linear_features=2)),
     ["'layer0'", "recurrent.weight has shape (2, 2), expected (3, 3)"]),
], ids=["conv-recurrence", "rsynaptic-conv-recurrence", "wrong-size"])
def test_state_dict_unsupported_recurrences_refused(tmp_path, module, fragments):
    assert_import_fails(UnsupportedModelError, save_state_dict(module(), tmp_path / "model.pt"), *fragments)


def test_state_dict_v_and_recurrent_v_must_agree(tmp_path):
    state = nn.Sequential(nn.Linear(2, 3), snn.RLeaky(beta=0.5, all_to_all=False, V=0.5)).state_dict()
    state["1.recurrent.V"] = torch.tensor(0.25)
    torch.save(state, tmp_path / "model.pt")
    assert_import_fails(UnsupportedModelError, tmp_path / "model.pt", "'layer0'", "V and recurrent.V differ")


# --- compiled integer networks ------------------------------------------------------------------------------

INTEGER_CHAINS = {
    "synaptic-rleaky": [Neuron("synaptic", alpha=0.5, beta=0.75, threshold=2.0, reset="zero"),
                        Neuron("dense", beta=0.5, threshold=1.0, reset="subtract"),
                        Neuron("one_to_one", V=torch.tensor([2.0, -1.0, 1.0]), beta=0.75, threshold=1.0, reset="zero")],
    "rsynaptic": [Neuron("synaptic_dense", alpha=0.75, beta=0.5, threshold=2.0, reset="zero"),
                  Neuron("synaptic_one_to_one", V=2.0, alpha=0.5, beta=0.75, threshold=2.0, reset="subtract"),
                  Neuron("synaptic_one_to_one", V=torch.tensor([-2.0, 1.0, 3.0]), alpha=0.25, beta=0.875,
                         threshold=1.0, reset="none")],
}


@pytest.mark.parametrize("chain", sorted(INTEGER_CHAINS))
@pytest.mark.parametrize("source", ["onnx-legacy", "onnx-dynamo", "state-dict"])
def test_compiled_integer_network_matches_the_contract(tmp_path, source, chain):
    net = MixedStepNet([6, 5, 4, 3], INTEGER_CHAINS[chain], seed=3, integer_weights=True)
    if source == "state-dict":
        path = save_state_dict(sequential_of(net), tmp_path / "model.pt")
    else:
        path = export_mixed(net, tmp_path / "model.onnx", dynamo=source == "onnx-dynamo")
    network, report = quantize(load_model(path), state_bits=12)
    assert report.exact
    spikes = (np.random.default_rng(2).random((4, 30, 6)) < 0.5).astype(np.uint8)
    expected = contract_outputs(net, 12, spikes)
    assert expected.any()
    assert np.array_equal(golden.run(network, spikes).output, expected)


NO_ROUNDING_CHAINS = {
    "synaptic-rleaky": [Neuron("synaptic", alpha=1.0, beta=0.0, threshold=3.0, reset="subtract"),
                        Neuron("dense", beta=1.0, threshold=2.0, reset="zero"),
                        Neuron("one_to_one", V=-2.0, beta=1.0, threshold=2.0, reset="subtract")],
    "rsynaptic": [Neuron("synaptic_one_to_one", V=-2.0, alpha=1.0, beta=0.0, threshold=3.0, reset="zero"),
                  Neuron("synaptic_dense", alpha=0.0, beta=1.0, threshold=2.0, reset="subtract"),
                  Neuron("synaptic_dense", alpha=1.0, beta=1.0, threshold=2.0, reset="zero")],
}


@pytest.mark.parametrize("chain", sorted(NO_ROUNDING_CHAINS))
def test_compiled_integer_network_without_decay_rounding_spikes_like_snntorch(tmp_path, chain):
    """With alpha and beta 1 or 0 the integer model makes no rounding: it equals snnTorch itself."""
    net = MixedStepNet([6, 5, 4, 3], NO_ROUNDING_CHAINS[chain], seed=7, integer_weights=True)
    network, report = quantize(load_model(export_mixed(net, tmp_path / "model.onnx", dynamo=True)), state_bits=16)
    spikes = _spikes(6, steps=30)
    expected = run_snntorch(net, spikes)
    assert report.exact and expected.any()
    assert np.array_equal(golden.run(network, spikes).output[0], expected)
