from snn2hw.backends.report import merge_build_results
from snn2hw.backends.report_text import fmt, render_markdown, render_text

REPORT = {"board": "ice40", "device": "iCE40UP5K-SG48", "resources_source": "estimate",
          "resources": {"EBR": {"used": 9, "available": 30}, "LC": {"used": None, "available": 5280}},
          "fmax_mhz": None,
          "latency": {"timesteps": 25, "cycles_per_timestep": 100.0, "cycles_per_inference": 2500.0,
                      "us_per_inference": None, "source": "model"},
          "layers": [{"name": "fc1", "neurons": 32, "fan_in": 16, "weight_bits": 4, "lanes": 1, "memory": "EBR",
                      "reset": "subtract", "threshold": 6}],
          "timings_s": {"compile": 0.5}}


def test_text_and_markdown_tables_show_resources_and_layers():
    text = render_text(REPORT)
    assert "EBR" in text and "30.0 %" in text and "fc1" in text and "2,500.00 (model)" in text
    markdown = render_markdown(REPORT)
    assert "| EBR | 9 | 30 | 30.0 % |" in markdown and markdown.startswith("# snn2hw report: ice40")


def test_build_results_replace_the_estimate_and_give_microseconds():
    measured = {"resources": {"LC": {"used": 1200, "available": 5280}}, "fmax_mhz": 50.0, "cells": {},
                "bitstream": "snn_top.bin", "tools": {"yosys": "0.50"}, "timings_s": {"synth": 1.0, "build": 3.0}}
    merged = merge_build_results(REPORT, measured)
    assert merged["resources_source"] == "nextpnr" and merged["latency"]["us_per_inference"] == 50.0
    assert merged["timings_s"] == {"compile": 0.5, "synth": 1.0, "build": 3.0}
    assert REPORT["latency"]["us_per_inference"] is None      # the input report is not modified


def test_float_model_fidelity_is_a_summary_row():
    fidelity = {"samples": 360, "timesteps": 16, "stimulus": "test.npy", "reference": "snntorch 1.0.0",
                "spike_agreement": 0.972, "class_agreement": 1.0, "saturated": 0.0}
    text = render_text({**REPORT, "quantization": {"exact": False, "fidelity": fidelity}})
    assert "float-model agreement  97.20 % of output spikes, 100.00 % of classes (360 samples of test.npy)" in text
    assert "float-model agreement" not in render_text(REPORT)


def test_per_neuron_values_are_shown_as_their_range():
    assert fmt([3, 1, 2000]) == "1..2,000" and fmt([0.5, 0.25]) == "0.25..0.50" and fmt(7) == "7"
