"""snnTorch Synaptic, RLeaky and RSynaptic networks from model files through the CLI: ``compile --board ice40`` and
``simulate`` (Verilog in Verilator) give the spikes of the contract reference evaluated on the modules' own
parameters, one test per neuron type and model format."""

import contextlib
import io
import warnings

import nir
import numpy as np
import pytest
import torch
from snntorch.export_nir import export_to_nir

from cli_helpers import run_cli
from model_factory import save_state_dict
from neuron_models import MixedStepNet, Neuron, contract_outputs, export_mixed, sequential_of

CASES = {
    # name: (neurons, model format, state bits, weight seed: one whose output neurons spike at varied rates)
    "synaptic-onnx-dynamo": ([Neuron("synaptic", alpha=0.75, beta=0.5, threshold=2.0, reset="zero"),
                              Neuron("synaptic", alpha=torch.tensor([0.5, 0.25, 1.0, 0.0]), beta=0.875,
                                     threshold=torch.tensor([1.0, 2.0, 3.0, 1.0]), reset="subtract")],
                             "dynamo", 10, 7),
    "rleaky-dense-state-dict": ([Neuron("dense", beta=0.75, threshold=2.0, reset="subtract"),
                                 Neuron("dense", beta=0.5, threshold=1.0, reset="zero")], "state_dict", 12, 6),
    "synaptic-nir": ([Neuron("synaptic", alpha=torch.tensor([0.5, 0.75, 1.0, 0.875]), beta=torch.full((4,), 0.75),
                               threshold=torch.full((4,), 2.0), reset="subtract"),
                      Neuron("leaky", beta=torch.full((4,), 0.5), threshold=torch.full((4,), 1.0), reset="subtract")],
                     "nir", 10, 0),
    "rleaky-one-to-one-onnx-legacy": ([Neuron("one_to_one", V=torch.tensor([2.0, -1.0, 1.0, 3.0, -2.0]), beta=0.75,
                                              threshold=2.0, reset="zero"),
                                       Neuron("one_to_one", V=-1.0, beta=0.875, threshold=1.0, reset="none")],
                                      "legacy", 10, 4),
    "rsynaptic-onnx-dynamo": ([Neuron("synaptic_dense", alpha=0.75, beta=0.5, threshold=2.0, reset="zero"),
                               Neuron("synaptic_one_to_one", V=torch.tensor([2.0, -1.0, 1.0, -2.0]),
                                      alpha=torch.tensor([0.5, 0.25, 1.0, 0.0]), beta=0.875,
                                      threshold=torch.tensor([1.0, 2.0, 3.0, 1.0]), reset="subtract")],
                              "dynamo", 10, 6),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compile_and_simulate_in_verilator_match_the_contract(case, tmp_path):
    neurons, source, state_bits, seed = CASES[case]
    sizes = [6, 5, 4] if neurons[0].kind == "one_to_one" else [6, 4, 4]
    net = MixedStepNet(sizes, neurons, seed=seed, integer_weights=True)
    options = []
    if source == "state_dict":
        path = save_state_dict(sequential_of(net), tmp_path / "model.pt")
    elif source == "nir":   # snnTorch 1.0's export_to_nir: per-neuron tensors, init_hidden, ignore_dims=[0]
        path, options = tmp_path / "model.nir", ["--reset", neurons[0].reset]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            nir.write(path, export_to_nir(sequential_of(net, init_hidden=True), torch.zeros(1, sizes[0]),
                                          ignore_dims=[0]))
    else:
        path = export_mixed(net, tmp_path / "model.onnx", dynamo=source == "dynamo")
    out = tmp_path / "out"
    run_cli("compile", path, "--board", "ice40", "-o", out, "--state-bits", state_bits, "--timesteps", 16, *options,
            check=0)
    rng = np.random.default_rng(3)
    spikes = (rng.random((5, 16, sizes[0])) < rng.choice([0.2, 0.5, 1.0], (5, 1, 1))).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "out.npy", check=0)
    expected = contract_outputs(net, state_bits, spikes)
    assert expected.any(), "the test network should spike"
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
