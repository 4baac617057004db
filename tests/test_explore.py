"""snn2hw explore: Pareto front, cache keys, refused points listed, lanes chosen by the compiler (auto), a NIR
model's time step and reset, one real build served from the cache."""

import json
import time

import numpy as np
import pytest

from cli_helpers import run_cli
from model_factory import export_nir, make_sequential, per_neuron_sequential, save_state_dict
from snn2hw.backends.design import CompiledDesign
from snn2hw.cli import build_parser
from snn2hw.errors import ModelFormatError, Snn2hwError, UnsupportedModelError
from snn2hw.ir import Reset
from snn2hw.explore import (AUTO, EXPLORE_FILE, PLOT_FILE, ExploreConfig, explore, explore_rows, pareto_front,
                            point_key)
from snn2hw.pipeline import CompileConfig, compile_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Integer weights in [-4, 4]: they need 4 signed bits."""
    module = make_sequential([4, 6, 2], betas=0.5, thresholds=2.0, seed=11)
    return save_state_dict(module, tmp_path_factory.mktemp("explore") / "m.pt")


def test_pareto_front():
    rows = [{"x": 1, "y": 9}, {"x": 2, "y": 5}, {"x": 3, "y": 5}, {"x": 2, "y": 5}, {"x": 5, "y": 1},
            {"x": None, "y": 0}, {"x": 4, "y": 6}]
    assert pareto_front(rows, "x", "y") == [True, True, False, True, True, False, False]


def test_point_key_depends_on_model_board_and_options():
    base = point_key("m", "board", {"lanes": 1})
    assert base == point_key("m", "board", {"lanes": 1})
    assert len({base, point_key("m2", "board", {"lanes": 1}), point_key("m", "board2", {"lanes": 1}),
                point_key("m", "board", {"lanes": 2})}) == 4


def test_estimate_only_run_lists_refused_points(model, tmp_path):
    config = ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=(1, 2, 4), weight_bits=(2, 4),
                           timesteps=8, build=False, jobs=2)
    result = explore(config)
    assert result["objectives"] == ["EBR", "cycles_per_inference"]
    points = {(point["lanes"], point["weight_bits"]): point for point in result["points"]}
    assert len(points) == 6
    for lanes in (1, 2, 4):
        assert points[lanes, 2]["status"] == "error" and "signed bits" in points[lanes, 2]["error"]
        assert points[lanes, 4]["status"] == "ok" and points[lanes, 4]["cycles_per_inference"] > 0
    assert points[1, 4]["cycles_per_inference"] > points[4, 4]["cycles_per_inference"]
    assert any(point["pareto"] for point in result["points"])
    assert json.loads((tmp_path / "ex" / EXPLORE_FILE).read_text())["points"] == result["points"]
    assert (tmp_path / "ex" / PLOT_FILE).read_text().startswith("<svg")
    assert len(explore_rows(result)) == 7


def test_auto_lanes_point_records_the_lanes_compile_chooses(tmp_path):
    """A network wide enough that the compiler's choice is not every layer at full width on the UP5K."""
    model = save_state_dict(make_sequential([64, 128, 10], betas=0.5, thresholds=8.0, seed=3), tmp_path / "w.pt")
    config = ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=(4, AUTO, 1), timesteps=8,
                           build=False, jobs=2)
    result = explore(config)
    assert [point["lanes"] for point in result["points"]] == [AUTO, 1, 4]
    auto, one, four = result["points"]
    assert one["layer_lanes"] == [1, 1] and four["layer_lanes"] == [4, 4]
    compiled = compile_model(CompileConfig(model=str(model), outdir=str(tmp_path / "c"), timesteps=8))
    assert compiled.report["latency"]["cycles_per_inference"] == auto["cycles_per_inference"]
    assert auto["layer_lanes"] == [mapping.lanes for mapping in compiled.mappings] != [1, 1]
    assert auto["cycles_per_inference"] < four["cycles_per_inference"]
    label = f"auto ({', '.join(map(str, auto['layer_lanes']))})"
    assert [row[0] for row in explore_rows(result)] == ["lanes", label, 1, 4]
    assert "auto/W" in (tmp_path / "ex" / PLOT_FILE).read_text()
    rerun = explore(config)
    assert all(point["cached"] for point in rerun["points"]) and rerun["points"][0]["layer_lanes"] == auto["layer_lanes"]


def test_lanes_from_the_command_line_take_auto(model, tmp_path):
    args = ["explore", model, "--no-build", "-o", tmp_path / "ex", "--timesteps", 6, "-j", 1, "--json"]
    data = json.loads(run_cli(*args, "--lanes", "2,auto", check=0).stdout)
    assert [(point["lanes"], point["status"]) for point in data["points"]] == [(AUTO, "ok"), (2, "ok")]
    assert build_parser().parse_args(["explore", str(model)]).lanes == [AUTO, 1, 2, 4, 8]
    assert "integers or 'auto'" in run_cli(*args, "--lanes", "auto,fast", check=2).stderr
    with pytest.raises(Snn2hwError, match="--lanes"):
        explore(ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=("fast",), build=False))


def test_nir_time_step_and_reset_reach_the_compiler_and_the_cache_key(tmp_path):
    """snnTorch's export of beta 0.75 (tau = 4 dt at its dt = 1e-4): --nir-dt 2e-4 gives beta 1 - 2e-4/tau = 0.5 and
    input scale r dt/tau = 2 (weights doubled); --reset subtract reaches every layer. A changed time step or reset
    is a new point, the same ones are served from the cache."""
    module = per_neuron_sequential([4, 6, 2], betas=0.75, thresholds=2.0, resets="subtract", seed=11)
    model = export_nir(module, tmp_path / "m.nir")
    chosen = json.loads(run_cli("explore", model, "--no-build", "--lanes", "2", "-o", tmp_path / "ex", "--timesteps", 6,
                                "--json", "--nir-dt", "2e-4", "--reset", "subtract", check=0).stdout)
    assert (chosen["nir_dt"], chosen["reset"]) == (2e-4, "subtract")

    def point(dt, reset):
        config = ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=(2,), timesteps=6,
                               build=False, nir_dt=dt, reset=reset)
        (row,) = explore(config)["points"]
        assert row["status"] == "ok", row
        return row

    again, native, zero = point(2e-4, "subtract"), point(1e-4, "subtract"), point(2e-4, "zero")
    assert again["cached"] and again["key"] == chosen["points"][0]["key"]
    assert not native["cached"] and not zero["cached"]
    assert len({chosen["points"][0]["key"], native["key"], zero["key"]}) == 3
    weights = [module[i].weight.detach().numpy() for i in (0, 2)]
    for row, beta, scale, reset in ((again, 0.5, 2, Reset.SUBTRACT), (native, 0.75, 1, Reset.SUBTRACT),
                                    (zero, 0.5, 2, Reset.ZERO)):
        layers = CompiledDesign.load(row["design"]).network.layers
        assert [(layer.beta, layer.reset) for layer in layers] == [(beta, reset)] * 2
        assert all(np.array_equal(layer.weight, scale * weight) for layer, weight in zip(layers, weights))


def test_nir_options_are_checked(model, tmp_path):
    with pytest.raises(Snn2hwError, match="--nir-dt"):
        explore(ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), build=False, nir_dt=0.0))
    with pytest.raises(Snn2hwError, match="--reset"):
        explore(ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), build=False, reset="none"))
    with pytest.raises(UnsupportedModelError, match="can only be chosen for a NIR model"):
        explore(ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=(1,), build=False,
                              reset="subtract"))


def test_unreadable_model_and_bad_options_are_fatal(tmp_path):
    with pytest.raises(ModelFormatError):
        explore(ExploreConfig(model=str(tmp_path / "missing.pt"), outdir=str(tmp_path / "ex"), build=False))
    garbage = tmp_path / "bad.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError):
        explore(ExploreConfig(model=str(garbage), outdir=str(tmp_path / "ex"), lanes=(1,), build=False))
    with pytest.raises(Snn2hwError, match="--jobs"):
        explore(ExploreConfig(model=str(garbage), outdir=str(tmp_path / "ex"), jobs=0))
    with pytest.raises(Snn2hwError, match="Verilog only"):
        explore(ExploreConfig(model=str(garbage), outdir=str(tmp_path / "ex"), board="generic"))


def test_built_point_then_rerun_from_the_cache(model, tmp_path):
    config = ExploreConfig(model=str(model), outdir=str(tmp_path / "ex"), lanes=(1,), timesteps=8, jobs=1)
    first = explore(config)
    point = first["points"][0]
    assert point["status"] == "ok", point
    assert not point["cached"] and point["resources_source"] == "nextpnr"
    assert point["LC"] > 0 and point["fmax_mhz"] > 0 and point["us_per_inference"] > 0
    assert first["objectives"] == ["LC", "cycles_per_inference"] and point["pareto"]
    started = time.perf_counter()
    second = explore(config)
    assert time.perf_counter() - started < 5
    again = second["points"][0]
    assert again["cached"] and {**again, "cached": False} == point
