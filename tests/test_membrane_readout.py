"""The membrane readout: a NIR LI output layer (a leaky integrator that never fires) imported as a readout,
compiled for ice40, and ``simulate --membrane`` (RTL in Verilator and golden model) equal to an independent
reference; ``verify`` compares the readout too, so it fails on a design whose output layer has a wrong bias
although every output spike (none) still agrees."""

import json

import nir
import numpy as np
import pytest

from snn2hw.backends.design import CompiledDesign
from snn2hw.backends.verilog import emit_verilog
from snn2hw.errors import QuantizationError, UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.ir import Layer, Network, Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize

from cli_helpers import run_cli
from importer_checks import assert_import_fails
from reference_lif import reference_run
from test_importers_nir_conv import write_chain

DT = 2.0 ** -10   # exact Euler: tau = k DT gives beta = 1 - 1/k


def _affine(rng, n_out, n_in):
    return nir.Affine(weight=rng.integers(-4, 5, (n_out, n_in)).astype(np.float64),
                      bias=rng.integers(-2, 3, n_out).astype(np.float64))


def _lif(n, k, threshold=2.0):
    """A LIF with tau = k DT (beta 1 - 1/k) and input scale r DT/tau = 1."""
    return nir.LIF(tau=np.full(n, k * DT), r=np.full(n, float(k)), v_leak=np.zeros(n),
                   v_threshold=np.full(n, threshold), v_reset=np.zeros(n))


def _li(n, k, r=None):
    return nir.LI(tau=np.full(n, k * DT), r=np.full(n, float(k) if r is None else r), v_leak=np.zeros(n))


def _readout_model(tmp_path, seed=3):
    rng = np.random.default_rng(seed)
    nodes = [("fc1", _affine(rng, 9, 6)), ("lif1", _lif(9, 2)), ("fc2", _affine(rng, 4, 9)), ("li", _li(4, 16))]
    return write_chain(tmp_path / "readout.nir", [6], nodes)


def test_nir_li_is_a_non_spiking_readout_discretized_like_a_lif(tmp_path):
    rng = np.random.default_rng(0)
    fc = _affine(rng, 3, 4)
    path = write_chain(tmp_path / "m.nir", [4], [("fc", fc), ("li", _li(3, 8, r=4.0))])
    layer = load_model(path, nir_dt=DT).layers[0]
    assert layer.readout and layer.reset is Reset.NONE and layer.threshold == np.inf
    assert layer.beta == 1 - 1 / 8
    assert np.array_equal(layer.weight, fc.weight * 0.5) and np.array_equal(layer.bias, fc.bias * 0.5)  # r dt/tau


def test_an_li_before_the_last_layer_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(1)
    nodes = [("fc1", _affine(rng, 5, 4)), ("li", _li(5, 4)), ("fc2", _affine(rng, 3, 5)), ("lif", _lif(3, 2))]
    assert_import_fails(UnsupportedModelError, write_chain(tmp_path / "m.nir", [4], nodes), "NIR node 'li' (LI)",
                        "non-spiking readout", "only as the last layer")
    with pytest.raises(QuantizationError, match="layer 'a' is a non-spiking readout"):
        SourceNetwork((SourceLayer("a", np.ones((2, 2)), np.zeros(2), 0.5, 1.0, Reset.ZERO, readout=True),
                       SourceLayer("b", np.ones((2, 2)), np.zeros(2), 0.5, 1.0, Reset.ZERO)))


@pytest.mark.parametrize("weights", ["integer", "float"])
def test_a_readout_compiles_with_the_state_maximum_as_threshold(weights):
    weight = np.array([[1.0, -2.0], [3.0, 1.0]]) * (1 if weights == "integer" else 0.37)
    source = SourceNetwork((SourceLayer("l1", weight, np.zeros(2), 0.5, 1.0 if weights == "integer" else 0.4,
                                        Reset.ZERO),
                            SourceLayer("out", weight, np.ones(2), 0.75, 5.0, Reset.SUBTRACT, readout=True)))
    network, report = quantize(source, state_bits=10)
    assert report.exact == (weights == "integer")
    assert network.layers[-1].threshold == network.state_max and network.layers[-1].reset is Reset.NONE
    assert network.layers[0].threshold < network.state_max


def _reference(network: Network, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spikes, membranes) [B, T, n_out] of the independent reference, the last layer a readout."""
    layers = [layer.to_json() for layer in network.layers]
    layers[-1]["readout"] = True
    runs = [reference_run(layers, network.state_bits, sample.tolist(), membranes=True) for sample in spikes]
    return tuple(np.array([run[part] for run in runs]) for part in (0, 1))


def test_simulate_membrane_of_an_li_readout_in_verilator_and_golden_equals_the_reference(tmp_path):
    out = tmp_path / "out"
    run_cli("compile", _readout_model(tmp_path), "--board", "ice40", "-o", out, "--nir-dt", DT, "--timesteps", 12,
            "--state-bits", 6, check=0)
    network = CompiledDesign.load(out).network
    rng = np.random.default_rng(7)
    spikes = (rng.random((5, 12, 6)) < rng.choice([0.2, 0.5, 1.0], (5, 1, 1))).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    expected_spikes, expected = _reference(network, spikes)
    assert not expected_spikes.any() and len(np.unique(expected)) > 8
    assert (expected == network.state_max).any() or (expected == network.state_min).any()   # saturates (6 bits)
    for engine in ("rtl", "golden"):
        result = run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / f"{engine}.npy",
                         "--membrane", tmp_path / f"{engine}_mem.npy", "--engine", engine, "--json", check=0)
        assert json.loads(result.stdout)["membrane"] == str(tmp_path / f"{engine}_mem.npy")
        membranes = np.load(tmp_path / f"{engine}_mem.npy")
        assert membranes.dtype == np.int64 and np.array_equal(membranes, expected), engine
        assert not np.load(tmp_path / f"{engine}.npy").any()


def test_verify_compares_the_readout_and_fails_on_a_wrong_readout_bias(tmp_path):
    out = tmp_path / "out"
    run_cli("compile", _readout_model(tmp_path), "-o", out, "--nir-dt", DT, "--timesteps", 8, check=0)
    assert "PASS: 6/6" in run_cli("verify", out, "--samples", 6, check=0).stdout
    design = CompiledDesign.load(out)
    last = design.network.layers[-1]
    wrong = Layer(last.name, last.weight, last.bias + 1, last.beta_q, last.frac_bits, last.threshold, last.reset)
    design.verilog_path.write_text(emit_verilog(Network(design.network.layers[:-1] + (wrong,),
                                                        design.network.state_bits), design.mappings))
    result = run_cli("verify", out, "--samples", 6, check=1)
    assert "FAIL" in result.stdout and "expected membrane" in result.stdout and "the spikes agree" in result.stdout


def test_fidelity_of_a_float_network_with_a_readout_compares_the_readout_classes():
    from snn2hw import golden
    from snn2hw.fidelity import float_reference, measure, random_stimuli, readout_class

    rng = np.random.default_rng(2)
    source = SourceNetwork((SourceLayer("l1", rng.normal(0, 0.6, (12, 8)), np.zeros(12), 0.8, 1.0, Reset.SUBTRACT),
                            SourceLayer("out", rng.normal(0, 0.5, (4, 12)), rng.normal(0, 0.1, 4), 0.9, 1.0,
                                        Reset.ZERO, readout=True)))
    network, _ = quantize(source, weight_bits=8, membrane_frac_bits=4)
    inputs = random_stimuli(8, 10, samples=64)
    _, membranes, _ = float_reference(source, inputs)     # snnTorch
    assert np.allclose(membranes, golden.run_float(source, inputs).membranes[-1], atol=1e-4)
    assert len(set(readout_class(membranes).tolist())) > 1
    fidelity = measure(source, network, inputs, "random")
    assert fidelity.spike_agreement == 1.0 and fidelity.class_agreement >= 0.9   # no spikes: classes by readout
    worse, _ = quantize(source, weight_bits=2)
    assert measure(source, worse, inputs, "random").class_agreement < fidelity.class_agreement
