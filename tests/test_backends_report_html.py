"""report.html: self-contained, every section present, the sample's provenance stated, written atomically."""

import json
import re

import numpy as np
import pytest

from model_factory import make_sequential, save_state_dict
from snn2hw.backends.design import CompiledDesign
from snn2hw.backends.report_html import HTML_FILE, render_html, write_html
from snn2hw.backends.sample_trace import golden_sample, stage_cycles
from snn2hw.backends.cycle_model import inference_cycles
from snn2hw.golden import run
from snn2hw.pipeline import CompileConfig, compile_model


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    model = save_state_dict(make_sequential([6, 8, 3], betas=0.75, thresholds=2.0, seed=3), root / "m.pt")
    compile_model(CompileConfig(model=str(model), outdir=str(root / "out"), timesteps=12, lanes=2))
    return CompiledDesign.load(root / "out")


@pytest.fixture(scope="module")
def report(design):
    return json.loads((design.path / "report.json").read_text())


EXPLORE = {"model": "m.pt", "board": "ice40", "objectives": ["EBR", "cycles_per_inference"],
           "points": [{"lanes": 1, "weight_bits": None, "EBR": 6, "cycles_per_inference": 900.0, "pareto": True,
                       "status": "ok", "error": None},
                      {"lanes": 2, "weight_bits": 2, "status": "error", "error": "weights need 3 bits"}]}


def test_page_is_self_contained_and_has_every_section(design, report):
    page = render_html(report, golden_sample(design), EXPLORE)
    for heading in ("Resources", "Layers and memory map", "Cycle breakdown", "Spike raster", "Design space"):
        assert f"<h2>{heading}" in page
    assert page.count("<svg") == 6  # resource bars (EBR), memory map, stages, raster, membranes, design space
    assert "<script" not in page and "<link" not in page and "<img" not in page
    # the only URLs are XML namespace and metadata identifiers inside the SVGs, never fetched
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert "weights need 3 bits" in page and "Source: <b>golden model</b>" in page


def test_page_is_deterministic(design, report):
    sample = golden_sample(design)
    assert render_html(report, sample) == render_html(report, sample)


def test_estimate_only_report_says_not_built(report):
    page = render_html(report)
    assert "Not built yet" in page and "<h2>Cycle breakdown" not in page


def test_built_report_shows_bars_and_fmax(report):
    built = dict(report, resources={"LC": {"used": 1200, "available": 5280}, "EBR": {"used": 3, "available": 30}},
                 resources_source="nextpnr", fmax_mhz=23.5)
    page = render_html(built)
    assert "Fmax 23.5 MHz (nextpnr)" in page and "1,200 / 5,280" in page


def test_golden_sample_matches_golden_model_and_cycle_model(design):
    sample = golden_sample(design)
    trace = run(design.network, sample.inputs)
    assert all(np.array_equal(a, b[0]) for a, b in zip(sample.spikes, trace.spikes))
    assert all(np.array_equal(a, b[0]) for a, b in zip(sample.membranes, trace.membranes))
    assert sample.source == "golden" and sum(sample.stage_cycles) == sample.cycles
    assert sample.stages == ["input"] + [layer.name for layer in design.network.layers]


def test_stage_cycles_add_up_to_the_inference(design):
    rng = np.random.default_rng(1)
    for rate in (0.0, 0.3, 1.0):
        inputs = (rng.random((10, design.network.n_in)) < rate).astype(np.uint8)
        rasters = [inputs] + [spikes[0] for spikes in run(design.network, inputs).spikes]
        shares = stage_cycles(design.mappings, rasters)
        assert min(shares) >= 0 and sum(shares) == inference_cycles(design.mappings, rasters)


def test_write_html_is_atomic(design, report):
    path = write_html(design.path, report, golden_sample(design))
    assert path == design.path / HTML_FILE and path.read_text().startswith("<!DOCTYPE html>")
    assert not list(design.path.glob(".*.tmp"))


def test_per_neuron_thresholds_are_reported_as_lists_and_drawn(tmp_path):
    import torch
    module = make_sequential([6, 4, 3], betas=[torch.tensor([0.5, 0.75, 1.0, 0.25]), 0.5],
                             thresholds=[torch.tensor([1.0, 2.0, 3.0, 2.0]), 2.0], seed=3)
    compile_model(CompileConfig(model=str(save_state_dict(module, tmp_path / "m.pt")), outdir=str(tmp_path / "out"),
                                timesteps=8, lanes=2))
    design = CompiledDesign.load(tmp_path / "out")
    report = json.loads((design.path / "report.json").read_text())
    assert report["layers"][0]["threshold"] == [1, 2, 3, 2] and report["layers"][1]["threshold"] == 2
    assert report["layers"][0]["beta"] == [0.5, 0.75, 1.0, 0.25]
    assert "<h2>Spike raster" in render_html(report, golden_sample(design), None)
