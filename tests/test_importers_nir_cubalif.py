"""NIR CubaLIF nodes (snnTorch Synaptic): snnTorch's own export round-trips and spikes like snnTorch, the forward
Euler discretization at --nir-dt, and the recurrent graphs that stay refused naming the node."""

from __future__ import annotations

import contextlib
import io
import warnings

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from importer_checks import assert_import_fails
from neuron_models import MixedStepNet, Neuron, run_snntorch, sequential_of
from snntorch.export_nir import export_to_nir
from torch import nn

from snn2hw import golden
from snn2hw.errors import QuantizationError, UnsupportedModelError
from snn2hw.importers import load_model

from test_importers_nir import affine, chain, lif, write_graph


def _export(module: nn.Module, n_in: int, path) -> str:
    """snnTorch 1.0's export_to_nir: it needs per-neuron tensors and ignore_dims=[0]."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        nir.write(path, export_to_nir(module, torch.zeros(1, n_in), ignore_dims=[0]))
    return path


def _full(n, value):
    return torch.full((n,), value)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_synaptic_export_round_trips_and_spikes_like_snntorch(tmp_path, reset):
    neurons = [Neuron("synaptic", alpha=torch.tensor([0.5, 0.75, 0.875, 1.0]), beta=_full(4, 0.75),
                      threshold=torch.tensor([1.0, 0.5, 1.5, 1.0]), reset=reset),
               Neuron("leaky", beta=_full(4, 0.5), threshold=_full(4, 1.0), reset=reset),
               Neuron("synaptic", alpha=_full(3, 0.5), beta=_full(3, 0.875), threshold=_full(3, 0.75), reset=reset)]
    net = MixedStepNet([5, 4, 4, 3], neurons, seed=2)
    network = load_model(_export(sequential_of(net, init_hidden=True), 5, tmp_path / "model.nir"), reset=reset)
    for layer, neuron, fc in zip(network.layers, neurons, (net.fc1, net.fc2, net.fc3)):
        assert np.array_equal(layer.weight, fc.weight.detach().double().numpy())
        assert np.array_equal(layer.bias, fc.bias.detach().double().numpy())
        n = fc.out_features
        assert np.array_equal(np.broadcast_to(layer.beta, n), neuron.beta.double().numpy())
        assert np.array_equal(np.broadcast_to(layer.threshold, n), neuron.threshold.double().numpy())
        if neuron.kind == "synaptic":
            assert np.array_equal(np.broadcast_to(layer.alpha, n), neuron.alpha.double().numpy())
        else:
            assert layer.alpha is None
    spikes = (np.random.default_rng(4).random((40, 5)) < 0.5).astype(np.uint8)
    expected = run_snntorch(net, spikes)
    assert expected.any()
    assert np.array_equal(golden.run_float(network, spikes).output[0], expected)


def _cuba(n, tau_syn, tau_mem, r, w_in, v_threshold=1.0, v_leak=0.0, v_reset=0.0):
    full = lambda value: np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(r), w_in=full(w_in),
                       v_leak=full(v_leak), v_threshold=full(v_threshold), v_reset=full(v_reset))


def test_forward_euler_alpha_beta_and_both_input_scales(tmp_path):
    """dt = 2^-13: tau_syn = 2^-11 gives alpha = 3/4, tau_mem = 2^-10 beta = 7/8; the input scales w_in dt/tau_syn
    = 2 * 1/4 and r dt/tau_mem = [4, 8, 2] * 1/8 multiply each neuron's weight row and bias."""
    dense = affine(3, 4, seed=3)
    nodes, edges = chain(("fc", dense), ("cuba", _cuba(3, 2.0 ** -11, 2.0 ** -10, r=[4.0, 8.0, 2.0], w_in=2.0,
                                                       v_threshold=[1.5, 2.0, 0.5])))
    layer = load_model(write_graph(tmp_path / "model.nir", nodes, edges), nir_dt=2.0 ** -13).layers[0]
    scale = np.array([0.25, 0.5, 0.125])
    assert (layer.name, layer.alpha, layer.beta, layer.reset.value) == ("fc", 0.75, 0.875, "zero")
    assert layer.threshold.tolist() == [1.5, 2.0, 0.5]
    assert np.array_equal(layer.weight, dense.weight * scale[:, None]) and np.array_equal(layer.bias, dense.bias * scale)


def test_cubalif_spikes_like_its_euler_equations(tmp_path):
    """An independent loop over the NIR equations, forward Euler with the updated synaptic current."""
    dt, dense = 2.0 ** -13, affine(3, 4, seed=5)
    tau_syn, tau_mem, r, w_in, theta = 2.0 ** -11, 2.0 ** -12, 2.0, 4.0, 1.0
    nodes, edges = chain(("fc", dense), ("cuba", _cuba(3, tau_syn, tau_mem, r, w_in, v_threshold=theta)))
    network = load_model(write_graph(tmp_path / "model.nir", nodes, edges), nir_dt=dt, reset="subtract")
    spikes = (np.random.default_rng(1).random((30, 4)) < 0.5).astype(np.uint8)
    current, v, out, fired = np.zeros(3), np.zeros(3), [], np.zeros(3)
    for x in spikes:
        current = current + dt / tau_syn * (-current + w_in * (dense.weight @ x + dense.bias))
        v = v + dt / tau_mem * (-v + r * current) - fired * theta
        fired = (v > theta).astype(float)
        out.append(fired)
    assert np.any(out)
    assert np.array_equal(golden.run_float(network, spikes).output[0], np.array(out, np.uint8))


@pytest.mark.parametrize("field, fragments", [
    ("tau_syn", ["'cuba' (CubaLIF)", "tau_syn", "shorter than the time step", "--nir-dt"]),
    ("tau_mem", ["'cuba' (CubaLIF)", "tau_mem", "shorter than the time step"]),
])
def test_time_constant_shorter_than_dt_refused(tmp_path, field, fragments):
    taus = {"tau_syn": 1e-3, "tau_mem": 1e-3, field: 5e-5}
    nodes, edges = chain(("fc", affine(3, 4)), ("cuba", _cuba(3, r=1.0, w_in=1.0, **taus)))
    assert_import_fails(QuantizationError, write_graph(tmp_path / "model.nir", nodes, edges), *fragments)


def test_cubalif_v_leak_refused(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("cuba", _cuba(3, 1e-3, 1e-3, 10.0, 10.0, v_leak=0.5)))
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges), "'cuba' (CubaLIF)",
                        "v_leak 0.5")


def test_snntorch_rleaky_export_refused_naming_the_node(tmp_path):
    module = nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=_full(3, 0.5), linear_features=3, init_hidden=True))
    path = _export(module, 4, tmp_path / "model.nir")
    assert_import_fails(UnsupportedModelError, path, "NIR edge ('1.w_rec', '1.lif') closes a cycle",
                        "recurrent connections are not supported")


def test_cycle_through_a_cubalif_refused(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("cuba", _cuba(3, 1e-3, 1e-3, 10.0, 10.0)), n_in=4)
    nodes["rec"] = nir.Linear(weight=np.eye(3))
    edges += [("cuba", "rec"), ("rec", "cuba")]
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges), "closes a cycle",
                        "recurrent connections are not supported")
