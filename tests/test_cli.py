"""The CLI without Verilator: compile outputs, golden simulation, error handling, OUTDIR safety."""

import json

import numpy as np
import pytest

from model_factory import export_onnx, make_sequential, make_step_module, save_state_dict
from cli_helpers import reference_outputs, run_cli


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    module = make_step_module([6, 8, 3], betas=0.75, thresholds=3.0, resets="subtract", seed=2)
    return module, export_onnx(module, tmp_path_factory.mktemp("model") / "model.onnx", dynamo=False)


def test_compile_writes_verilog_network_and_report(onnx_model, tmp_path):
    _, path = onnx_model
    result = run_cli("compile", path, "--board", "ice40", "-o", tmp_path / "out", "--timesteps", "10", check=0)
    assert "compiled exactly" in result.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["network.json", "report.json", "snn_accelerator.v"]
    assert (out / "snn_accelerator.v").read_text().count("\nmodule snn_accelerator(") == 1
    report = json.loads((out / "report.json").read_text())
    assert report["board"] == "ice40" and report["latency"]["timesteps"] == 10
    assert report["latency"]["cycles_per_inference"] > 0
    network = json.loads((out / "network.json").read_text())
    assert [layer["n_out"] for layer in network["layers"]] == [8, 3] and network["state_bits"] == 16


def test_golden_simulation_matches_the_contract(onnx_model, tmp_path):
    module, path = onnx_model
    run_cli("compile", path, "-o", tmp_path / "out", "--state-bits", "8", check=0)
    spikes = (np.random.default_rng(0).random((5, 12, 6)) < 0.5).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", tmp_path / "out", "--input", tmp_path / "in.npy", "--output", tmp_path / "o.npy",
            "--engine", "golden", "--stats", tmp_path / "s.json", check=0)
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.uint8 and np.array_equal(out, reference_outputs(module, 8, spikes))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert len(stats["cycles_per_inference"]) == 5


def test_compile_is_deterministic(onnx_model, tmp_path):
    _, path = onnx_model
    for name in ("a", "b"):
        run_cli("compile", path, "-o", tmp_path / name, check=0)
    assert (tmp_path / "a/snn_accelerator.v").read_bytes() == (tmp_path / "b/snn_accelerator.v").read_bytes()
    assert (tmp_path / "a/network.json").read_bytes() == (tmp_path / "b/network.json").read_bytes()
    reports = [json.loads((tmp_path / name / "report.json").read_text()) for name in ("a", "b")]
    for report in reports:
        report.pop("timings_s")
    assert reports[0] == reports[1]


def test_existing_outdir_is_not_clobbered_without_force(onnx_model, tmp_path):
    _, path = onnx_model
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("compile", path, "-o", out, check=2)
    assert "--force" in result.stderr and (out / "keep.txt").read_text() == "mine"
    run_cli("compile", path, "-o", out, "--force", check=0)
    assert not (out / "keep.txt").exists() and (out / "snn_accelerator.v").exists()


def test_state_dict_compiles(tmp_path):
    path = save_state_dict(make_sequential([4, 5, 2], thresholds=2.0, resets="zero"), tmp_path / "m.pt")
    run_cli("compile", path, "-o", tmp_path / "out", check=0)
    assert (tmp_path / "out/snn_accelerator.v").exists()


def test_float_model_is_quantized_and_agreement_printed(tmp_path):
    module = make_step_module([6, 10, 3], betas=0.9, thresholds=0.7, integer_weights=False, seed=4)
    path = export_onnx(module, tmp_path / "float.onnx", dynamo=False)
    result = run_cli("compile", path, "-o", tmp_path / "out", "--weight-bits", "6", check=0)
    assert "agreement with the float model" in result.stdout
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert 0.0 <= report["quantization"]["fidelity"]["spike_agreement"] <= 1.0
    assert report["quantization"]["weight_bits"] == 6


def test_simulate_rejects_bad_inputs(onnx_model, tmp_path):
    _, path = onnx_model
    run_cli("compile", path, "-o", tmp_path / "out", check=0)
    np.save(tmp_path / "in.npy", np.full((3, 7), 2))
    result = run_cli("simulate", tmp_path / "out", "--input", tmp_path / "in.npy", "--output", tmp_path / "o.npy",
                     check=2)
    assert "shape" in result.stderr and not (tmp_path / "o.npy").exists()
    result = run_cli("simulate", tmp_path / "nowhere", "--input", tmp_path / "in.npy", "--output",
                     tmp_path / "o.npy", check=2)
    assert "not a compiled design" in result.stderr


def test_unknown_board_is_refused(onnx_model, tmp_path):
    _, path = onnx_model
    result = run_cli("compile", path, "--board", "nonesuch", "-o", tmp_path / "out", check=2)
    assert "unknown board 'nonesuch'" in result.stderr


def test_run_without_a_board_fails_cleanly(onnx_model, tmp_path):
    _, path = onnx_model
    run_cli("compile", path, "-o", tmp_path / "out", check=0)
    np.save(tmp_path / "in.npy", np.zeros((2, 4, 6), np.uint8))
    result = run_cli("run", tmp_path / "out", "--port", tmp_path / "no-such-tty", "--input", tmp_path / "in.npy",
                     "--output", tmp_path / "o.npy", check=2)
    assert "cannot open serial port" in result.stderr and not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("command", ["compile", "simulate", "verify", "build", "report", "run"])
def test_every_subcommand_has_help_with_defaults(command):
    result = run_cli(command, "--help", check=0)
    assert "usage: snn2hw " + command in result.stdout
