"""Real FPGA builds with the YoWASP tools on a small design, and their reports."""

import json

import pytest

from model_factory import export_onnx, make_step_module
from cli_helpers import run_cli


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    module = make_step_module([8, 12, 4], betas=0.875, thresholds=[3.0, 2.0], resets="subtract", seed=5)
    return export_onnx(module, tmp_path_factory.mktemp("model") / "model.onnx", dynamo=False)


@pytest.mark.parametrize("board, bitstream, logic", [("ice40", "snn_top.bin", "LC"), ("ice40-hx8k", "snn_top.bin", "LC"),
                                                     ("ecp5", "snn_top.bit", "LUT")])
def test_build_produces_a_bitstream_and_measured_report(small_model, tmp_path, board, bitstream, logic):
    out = tmp_path / "out"
    run_cli("compile", small_model, "--board", board, "-o", out, "--timesteps", 10, check=0)
    assert json.loads((out / "report.json").read_text())["fmax_mhz"] is None
    result = run_cli("build", out, check=0)
    assert (out / bitstream).stat().st_size > 0 and "Fmax" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["resources_source"] == "nextpnr"
    assert 0 < report["resources"][logic]["used"] <= report["resources"][logic]["available"]
    assert report["fmax_mhz"] > 0
    latency = report["latency"]
    assert latency["us_per_inference"] == pytest.approx(latency["cycles_per_inference"] / report["fmax_mhz"], abs=0.01)
    assert report["tools"]["yosys"] != "unknown" and report["tools"]["nextpnr"] != "unknown"
    assert {"synth", "pnr", "compile"} <= set(report["timings_s"])
    assert (out / "build" / "build.log").exists()
    table = run_cli("report", out, check=0).stdout
    assert logic in table and "nextpnr" in table and (out / "report.md").exists()


def test_generic_board_has_nothing_to_build(small_model, tmp_path):
    run_cli("compile", small_model, "--board", "generic", "-o", tmp_path / "out", check=0)
    result = run_cli("build", tmp_path / "out", check=2)
    assert "Verilog only" in result.stderr and len(result.stderr.strip().splitlines()) == 1
