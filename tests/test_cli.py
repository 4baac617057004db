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


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    module = make_step_module([6, 10, 3], betas=0.9, thresholds=0.7, integer_weights=False, seed=4)
    return export_onnx(module, tmp_path_factory.mktemp("float") / "float.onnx", dynamo=False)


def test_float_model_is_quantized_and_agreement_printed(float_model, tmp_path):
    result = run_cli("compile", float_model, "-o", tmp_path / "out", "--weight-bits", "6", "--timesteps", "12",
                     check=0)
    assert "fidelity against the float model (snntorch " in result.stdout
    assert "random rate-coded stimuli (seed 0)" in result.stdout
    report = json.loads((tmp_path / "out/report.json").read_text())
    fidelity = report["quantization"]["fidelity"]
    assert (fidelity["samples"], fidelity["timesteps"]) == (256, 12) and fidelity["reference"].startswith("snntorch")
    assert 0.0 <= fidelity["spike_agreement"] <= 1.0 and 0.0 <= fidelity["class_agreement"] <= 1.0
    assert f"{100 * fidelity['class_agreement']:.2f} % of predicted classes agree" in result.stdout
    assert report["quantization"]["weight_bits"] == 6 and report["quantization"]["membrane_frac_bits"] == 0
    assert report["timings_s"]["fidelity"] >= 0


def test_compile_parses_the_quantization_options():
    from snn2hw.cli import build_parser

    args = build_parser().parse_args(["compile", "m.onnx", "-o", "out"])
    assert (args.weight_bits, args.frac_bits, args.beta_frac_bits, args.fidelity_input) == (None, 0, None, None)
    args = build_parser().parse_args(["compile", "m.onnx", "-o", "out", "--weight-bits", "6", "--frac-bits", "3",
                                      "--beta-frac-bits", "12", "--fidelity-input", "in.npy"])
    assert (args.weight_bits, args.frac_bits, args.beta_frac_bits, args.fidelity_input) == (6, 3, 12, "in.npy")


def test_frac_bits_and_beta_frac_bits_reach_the_compiled_network(float_model, tmp_path):
    spikes = (np.random.default_rng(0).random((5, 7, 6)) < 0.5).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    result = run_cli("compile", float_model, "-o", tmp_path / "out", "--weight-bits", "6", "--frac-bits", "2",
                     "--beta-frac-bits", "12", "--fidelity-input", tmp_path / "in.npy", check=0)
    assert "membrane with 2 extra fraction bits" in result.stdout and "on 5 x 7 timesteps of in.npy" in result.stdout
    network = json.loads((tmp_path / "out/network.json").read_text())
    for layer in network["layers"]:
        weights = np.array(layer["weight"])
        assert layer["frac_bits"] == 12 and layer["beta_q"] == round(0.9 * 4096)
        assert np.abs(weights).max() == 31 * 4 and np.all(weights % 4 == 0)
    quantization = json.loads((tmp_path / "out/report.json").read_text())["quantization"]
    assert (quantization["beta_frac_bits"], quantization["membrane_frac_bits"]) == (12, 2)
    assert (quantization["fidelity"]["samples"], quantization["fidelity"]["stimulus"]) == (5, "in.npy")


def test_integer_model_measures_fidelity_only_on_given_input_and_refuses_frac_bits(onnx_model, tmp_path):
    _, path = onnx_model
    np.save(tmp_path / "in.npy", np.ones((3, 4, 6), np.uint8))
    result = run_cli("compile", path, "-o", tmp_path / "a", "--fidelity-input", tmp_path / "in.npy", check=0)
    assert "compiled exactly as given" in result.stdout and "on 3 x 4 timesteps of in.npy" in result.stdout
    result = run_cli("compile", path, "-o", tmp_path / "b", "--frac-bits", "2", check=2)
    assert result.stderr.count("\n") == 1 and "--frac-bits 2 applies to float models only" in result.stderr
    assert not (tmp_path / "b").exists()


def test_quantization_errors_are_one_line_and_leave_no_outdir(float_model, tmp_path):
    np.save(tmp_path / "wide.npy", np.ones((2, 4, 7), np.uint8))
    cases = ((("--frac-bits", "20"), "layer 'fc1': scaled threshold"),
             (("--frac-bits", "-1"), "--frac-bits -1 is outside"),
             (("--fidelity-input", tmp_path / "wide.npy"), "fidelity input"),
             (("--fidelity-input", tmp_path / "none.npy"), "does not exist"))
    for options, message in cases:
        result = run_cli("compile", float_model, "-o", tmp_path / "out", *options, check=2)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()


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
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "in.npy").read_bytes()[:40])
    for name in ("empty.npy", "cut.npy"):
        result = run_cli("simulate", tmp_path / "out", "--input", tmp_path / name, "--output", tmp_path / "o.npy",
                         "--engine", "golden", check=2)
        assert f"{name}' is empty or truncated" in result.stderr or f"{name}' is not a .npy array" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.npy").exists()


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
