"""CLI output modes: --version, --quiet, --json (before or after the subcommand), --help of every subcommand,
report --html and explore from the command line."""

import json

import pytest

from model_factory import make_sequential, save_state_dict
from snn2hw import __version__
from snn2hw.cli import build_parser
from cli_helpers import run_cli


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    model = save_state_dict(make_sequential([5, 6, 2], thresholds=2.0, seed=1), root / "m.pt")
    run_cli("compile", model, "-o", root / "out", "--timesteps", 6, check=0)
    return model, root / "out"


def test_version():
    assert run_cli("--version", check=0).stdout.strip() == f"snn2hw {__version__}"


@pytest.mark.parametrize("before", [True, False])
def test_json_output_of_compile(compiled, tmp_path, before):
    model, _ = compiled
    args = ["compile", model, "-o", tmp_path / "out"]
    result = run_cli(*(["--json", *args] if before else [*args, "--json"]), check=0)
    data = json.loads(result.stdout)
    assert data["outdir"] == str(tmp_path / "out") and data["neurons"] == [5, 6, 2]
    assert data["latency"]["cycles_per_inference"] > 0 and result.stderr == ""


def test_quiet_prints_only_the_result_line(compiled, tmp_path):
    model, _ = compiled
    result = run_cli("compile", model, "-o", tmp_path / "out", "-q", check=0)
    assert result.stdout.splitlines() == [result.stdout.strip()] and result.stdout.startswith("wrote ")


def test_errors_stay_one_line_in_json_mode(tmp_path):
    result = run_cli("--json", "compile", tmp_path / "missing.pt", "-o", tmp_path / "out", check=2)
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1


def test_report_json_and_html(compiled):
    _, out = compiled
    report = json.loads(run_cli("report", out, "--json", check=0).stdout)
    assert report["board"] == "ice40" and report["resources_source"] == "estimate"
    result = run_cli("report", out, "--html", check=0)
    assert "report.html (sample from golden)" in result.stdout
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_explore_from_the_command_line(compiled, tmp_path):
    model, _ = compiled
    args = ["explore", model, "--lanes", "1,2", "--weight-bits", "2,8", "--no-build", "-o", tmp_path / "ex",
            "--timesteps", 6, "-j", 1]
    table = run_cli(*args, check=0).stdout
    assert "Pareto" in table and "signed bits" in table and "0 from the cache" in table
    data = json.loads(run_cli(*args, "--json", check=0).stdout)
    assert len(data["points"]) == 4 and all(point["cached"] for point in data["points"])
    assert run_cli(*args[:2], "--lanes", "1,x", check=2).stderr.count("comma-separated integers") == 1


def test_every_subcommand_has_help_with_defaults():
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    for name, command in commands.choices.items():
        text = command.format_help()
        assert command.description, name
        assert "--quiet" in text, name
        assert "(default:" in text, name
