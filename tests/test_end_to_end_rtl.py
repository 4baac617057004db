"""Model files -> compile -> Verilog simulated by Verilator (``simulate``: the standalone program), bit-exact
with an independent implementation of the contract; ``verify`` (the same simulation top under cocotb) passes
on the real design, gives the cycle counts ``simulate`` measures, and fails on wrong ones."""

import json
import re

import numpy as np
import pytest
import torch

from snn2hw.backends.design import CompiledDesign
from snn2hw.backends.verilog import emit_verilog
from snn2hw.ir import Layer, Network, Reset

from model_factory import export_onnx, make_sequential, make_step_module, save_state_dict
from cli_helpers import reference_outputs, run_cli
from reference_lif import reference_run

CASES = {
    # name: (factory, sizes, betas, thresholds, resets, bias, state_bits, exporter, lanes)
    "onnx-dynamo-3layer-subtract": (make_step_module, [7, 9, 6, 3], [0.875, 0.5, 1.0], [3.0, 2.0, 2.0],
                                    "subtract", True, 16, "dynamo", 1),
    # large enough for Verilator to split its C++ output (precompiled headers in play)
    "onnx-legacy-zero-nobias-8bit": (make_step_module, [64, 128, 10], [0.9375, 0.75], [4.0, 3.0], "zero", False, 8,
                                     "legacy", 4),
    "state-dict-sequential-mixed": (make_sequential, [5, 10, 4], [0.5, 0.0], [2.0, 1.0], ["subtract", "zero"],
                                    True, 6, "state_dict", 2),
    "state-dict-per-neuron": (make_sequential, [6, 7, 3],
                              [torch.tensor([0.5, 0.875, 1.0, 0.0, 0.75, 0.25, 0.9375]), torch.tensor([1.0, 0.5, 0.0])],
                              [torch.tensor([1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 5.0]), 2.0], ["subtract", "none"], True, 8,
                              "state_dict", 3),
}


def _model_file(case, tmp_path):
    factory, sizes, betas, thresholds, resets, bias, _, exporter, _ = CASES[case]
    module = factory(sizes, betas=betas, thresholds=thresholds, resets=resets, bias=bias, seed=len(case))
    if exporter == "state_dict":
        return module, save_state_dict(module, tmp_path / "model.pt")
    return module, export_onnx(module, tmp_path / "model.onnx", dynamo=exporter == "dynamo")


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_is_bit_exact_with_the_contract_and_verify_passes(case, tmp_path):
    module, path = _model_file(case, tmp_path)
    state_bits, lanes = CASES[case][6], CASES[case][8]
    out = tmp_path / "out"
    run_cli("compile", path, "--board", "ice40", "-o", out, "--state-bits", state_bits, "--timesteps", 12,
            "--lanes", lanes, check=0)
    n_in = CASES[case][1][0]
    rng = np.random.default_rng(1)
    spikes = (rng.random((6, 12, n_in)) < rng.choice([0.1, 0.5, 1.0], (6, 1, 1))).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "out.npy",
            "--stats", tmp_path / "stats.json", check=0)
    expected = reference_outputs(module, state_bits, spikes)
    assert expected.any(), "the test network should spike"
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
    golden_stats = tmp_path / "golden_stats.json"
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "g.npy", "--engine", "golden",
            "--stats", golden_stats, check=0)
    measured = json.loads((tmp_path / "stats.json").read_text())["cycles_per_inference"]
    assert measured == json.loads(golden_stats.read_text())["cycles_per_inference"]   # cycle model is exact
    result = run_cli("verify", out, "--samples", 8, check=0)
    assert "PASS: 8/8" in result.stdout and "cycle model exact" in result.stdout   # cocotb's cycles = the program's


def _corrupt_weights(design: CompiledDesign, verilog: str) -> str:
    """Invert the first layer's weight-memory words of input 0 (its whole crossbar row) in the init."""
    start = verilog.index(f"module \\snn_accelerator.layer_{design.network.layers[0].name}.weights ")
    for word in range(design.mappings[0].groups):
        match = re.compile(rf"(block_ram\[{word}\] = (\d+)'([hd]))([0-9a-f]+);").search(verilog, start)
        assert match, "weight memory init not found"
        width, base = int(match.group(2)), 16 if match.group(3) == "h" else 10
        inverted = int(match.group(4), base) ^ ((1 << width) - 1)
        verilog = verilog[:match.start(1)] + f"block_ram[{word}] = {width}'h{inverted:x}" + verilog[match.end(4):]
    return verilog


def _emit_altered(design: CompiledDesign, **changes) -> str:
    """The Verilog of the same network with one layer-1 parameter changed (a wrong design)."""
    first = design.network.layers[0]
    fields = dict(name=first.name, weight=first.weight, bias=first.bias, beta_q=first.beta_q,
                  frac_bits=first.frac_bits, threshold=first.threshold, reset=first.reset)
    fields.update(changes)
    network = Network((Layer(**fields),) + design.network.layers[1:], design.network.state_bits)
    return emit_verilog(network, design.mappings)


ALTERATIONS = {
    "weight memory row": _corrupt_weights,
    "threshold": lambda design, text: _emit_altered(design, threshold=design.network.layers[0].threshold + 1),
    "leak constant": lambda design, text: _emit_altered(design, beta_q=design.network.layers[0].beta_q - 16),
    "reset path": lambda design, text: _emit_altered(design, reset=Reset.ZERO),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fault")
    module = make_step_module([6, 10, 4], betas=0.875, thresholds=[3.0, 2.0], resets="subtract", seed=3)
    path = export_onnx(module, tmp / "m.onnx", dynamo=False)
    run_cli("compile", path, "-o", tmp / "out", "--timesteps", 10, check=0)
    return CompiledDesign.load(tmp / "out")


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
def test_verify_fails_on_an_altered_design(compiled, alteration, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("network.json", "report.json"):
        (out / name).write_bytes((compiled.path / name).read_bytes())
    original = compiled.verilog_path.read_text()
    altered = ALTERATIONS[alteration](compiled, original)
    assert altered != original
    (out / "snn_accelerator.v").write_text(altered)
    result = run_cli("verify", out, "--samples", 12, check=1)
    assert "FAIL" in result.stdout and "first divergence" in result.stdout
    assert re.search(r"layer '\w+', neuron \d+, timestep \d+: expected (spike [01], got [01]|membrane -?\d+, got "
                     r"-?\d+)", result.stdout)
    assert (out / "verify_failure.vcd").stat().st_size > 0


def test_synaptic_and_recurrent_layers_in_verilator_match_the_reference(tmp_path):
    """Synaptic, RLeaky one-to-one (per-neuron V) and RLeaky dense layers with zero (whole-membrane) and
    subtract resets, as Verilog in Verilator: spikes and the membrane readout equal the independent reference,
    cycles the cycle model."""
    from snn2hw.passes.mapping import map_network
    from snn2hw.verify.simulate import simulate_design

    rng = np.random.default_rng(5)
    sizes, kinds = [6, 9, 7, 5], [{"alpha_q": 192}, {"recurrent": rng.integers(-3, 4, 7)},
                                   {"recurrent": rng.integers(-4, 5, (5, 5))}]
    resets = [Reset.ZERO, Reset.SUBTRACT, Reset.ZERO]
    layers = tuple(Layer(f"l{i}", rng.integers(-5, 6, (n_out, n_in)), rng.integers(-2, 3, n_out), 224, 8, 4,
                         resets[i], **kinds[i]) for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])))
    network = Network(layers, state_bits=10)
    mappings = map_network(network, 2)
    design = CompiledDesign(tmp_path, network, {"timesteps": 10}, mappings)
    design.verilog_path.write_text(emit_verilog(network, mappings))
    spikes = (rng.random((6, 10, 6)) < rng.choice([0.2, 0.6, 1.0], (6, 1, 1))).astype(np.uint8)
    result = simulate_design(design, spikes)
    runs = [reference_run([layer.to_json() for layer in layers], 10, sample, membranes=True) for sample in spikes]
    expected, membranes = (np.array([run[part] for run in runs]) for part in (0, 1))
    assert expected.any() and not expected.all()
    assert np.array_equal(result.outputs, expected)
    assert np.array_equal(result.membranes, membranes) and len(np.unique(membranes)) > 10
    assert result.cycles == simulate_design(design, spikes, engine="golden").cycles
