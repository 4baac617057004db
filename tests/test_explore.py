"""snn2hw explore: Pareto front, cache keys, refused points listed, one real build served from the cache."""

import json
import time

import pytest

from model_factory import make_sequential, save_state_dict
from snn2hw.errors import ModelFormatError, Snn2hwError
from snn2hw.explore import (EXPLORE_FILE, PLOT_FILE, ExploreConfig, explore, explore_rows, pareto_front,
                            point_key)


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
