"""``snn2hw bench``: workloads, the bound, the snnTorch side-by-side run, build results in the record, a
workload the board refuses, and a reduced bench through the CLI (B1 on 4 stimuli in Verilator, no build)."""

import json

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.backends.boards import load_board
from snn2hw.bench.bound import bound_cycles, read_width, weight_bits
from snn2hw.bench.compare import compare_with_snntorch, snntorch_runner
from snn2hw.backends.design import CompiledDesign
from snn2hw.bench import runner
from snn2hw.bench.runner import RECORD_FIELDS, BenchOptions, run_workload
from snn2hw.bench.table import format_table
from snn2hw.bench.workloads import WORKLOADS, Workload, WorkloadData, bernoulli_stimuli, select_workloads
from snn2hw.conv_geometry import ConvGeometry
from snn2hw.errors import Snn2hwError
from snn2hw.ir import Layer, Network, Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize
from snn2hw.pipeline import CompileConfig, compile_model

from cli_helpers import run_cli

BENCHMARKS_FIELDS = ("cycles_per_inference", "bound_cycles", "lc_used", "ebr_used", "spram_used", "dsp_used",
                     "fmax_mhz", "us_per_inference", "bit_exact", "compile_s", "build_s")


def test_workload_selection_keeps_order_and_refuses_unknown_names():
    assert [w.name for w in select_workloads("b3, B1")] == ["B3", "B1"]
    with pytest.raises(Snn2hwError, match="unknown workload B9; choose from B1, B2, B3, B4"):
        select_workloads("B1,B9")


def test_random_workloads_are_deterministic_and_as_specified():
    b2 = WORKLOADS["B2"].data(8)
    assert np.array_equal(b2.stimuli, WORKLOADS["B2"].data(8).stimuli)
    assert np.array_equal(b2.stimuli[:8], WORKLOADS["B2"].data(70).stimuli[:8])   # first k of n: the same
    assert b2.stimuli.shape == (8, 25, 784) and 0.12 < b2.stimuli.mean() < 0.14
    assert [layer.weight.shape for layer in b2.source.layers] == [(128, 784), (10, 128)]
    assert all(np.abs(layer.weight).max() == 7 for layer in b2.source.layers)
    assert [(layer.threshold, layer.beta, layer.reset) for layer in b2.source.layers] == \
        [(16, 0.9375, Reset.SUBTRACT), (6, 0.9375, Reset.SUBTRACT)]
    b3 = WORKLOADS["B3"].data(64)
    assert all(set(np.unique(layer.weight)) == {-1, 1} for layer in b3.source.layers)
    network, _ = quantize(b3.source)
    hidden = golden.run(network, b3.stimuli).spikes[0]
    assert 0.10 <= hidden.mean() <= 0.30


def test_conv_workload_is_the_unrolled_convolution_of_the_digits():
    import torch

    b4 = WORKLOADS["B4"].data(1)
    conv, dense = b4.source.layers
    assert b4.stimuli.shape == (360, 16, 64) and conv.weight.shape == (288, 64) and dense.weight.shape == (10, 288)
    assert all(np.abs(layer.weight).max() == 7 and layer.beta == 0.875 for layer in b4.source.layers)
    # the unrolled matrix is a 3x3 convolution with 8 kernels, no padding, in C,H,W order
    image = np.random.default_rng(0).integers(0, 2, 64).astype(np.float64)
    kernels = conv.weight.reshape(8, 6, 6, 1, 8, 8)[:, 0, 0, 0, :3, :3].reshape(8, 1, 3, 3)
    expected = torch.nn.functional.conv2d(torch.tensor(image).reshape(1, 1, 8, 8), torch.tensor(kernels))
    assert np.array_equal(conv.weight @ image, expected.numpy().ravel())
    # the layer carries the convolution's geometry, and the compiled network keeps it
    assert conv.conv == ConvGeometry((1, 8, 8), 8, (3, 3)) and dense.conv is None
    assert np.array_equal(conv.conv.kernel_of(conv.weight), kernels)
    network, _ = quantize(b4.source)
    assert [layer.conv for layer in network.layers] == [conv.conv, None]
    hidden = golden.run(network, b4.stimuli[:64]).spikes[0]
    assert 0.10 <= hidden.mean() <= 0.30


def test_read_width_follows_weight_placement_on_the_ice40():
    board = load_board("ice40")
    assert read_width(64 * 128 * 4, board) == 480            # fits the 30 EBR: 30 x 16 bits per cycle
    in_ebr = 30 * 4096 / (784 * 128 * 4)                      # B2: 30 % in EBR, the rest in SPRAM (4 x 16 bits)
    assert read_width(784 * 128 * 4, board) == pytest.approx(64 / (1 - in_ebr))
    assert read_width(30 * 4096 + 4 * 262144 + 1, board) is None      # does not fit on the chip
    assert read_width(1000, load_board("generic")) is None


def test_bound_cycles_by_hand():
    # 4 inputs -> 3 neurons, weights {-1, 1}: 1 bit each, in EBR (480 bits/cycle); 16-bit state: 3 * 17 bits.
    layer = Layer("l", np.array([[1, -1, 1, 1]] * 3), np.zeros(3), 256, 8, 1000, Reset.NONE)
    network = Network((layer,), state_bits=16)
    assert weight_bits(layer) == 1
    inputs = np.array([[[1, 1, 1, 1], [0, 0, 0, 0]]], np.uint8)
    # t0: ceil(4 * 3 * 1 / 480) + ceil(51 / 480) = 2; t1: 0 + 1
    assert bound_cycles(network, inputs, golden.run(network, inputs), load_board("ice40")) == 3


def _tiny_network(beta: float = 1.0) -> SourceNetwork:
    rng = np.random.default_rng(4)
    return SourceNetwork((SourceLayer("fc1", rng.integers(-3, 4, (6, 8)), rng.integers(-1, 2, 6), beta, 3,
                                      Reset.SUBTRACT),
                          SourceLayer("fc2", rng.integers(-3, 4, (3, 6)), np.zeros(3), beta, 2, Reset.ZERO)))


def test_snntorch_runs_the_same_network():
    # beta 1 involves no rounding: snnTorch's float run must equal the golden model spike for spike.
    network, _ = quantize(_tiny_network(beta=1.0))
    stimuli = bernoulli_stimuli(64, 10, 8, rate=0.4)
    expected = golden.run(network, stimuli).output
    assert expected.any() and np.array_equal(snntorch_runner(network)(stimuli), expected)
    comparison = compare_with_snntorch(network, stimuli, repeats=2)
    assert comparison.batch == 64 and comparison.spike_agreement == 1.0 and comparison.golden_s > 0


def test_build_results_fill_the_record_and_report(tmp_path, monkeypatch):
    # The FPGA build itself is tested in test_backends_fpga_build; here its results reach the record.
    result = compile_model(CompileConfig(model="tiny", outdir=str(tmp_path / "T1"), timesteps=10),
                           source=_tiny_network(0.75))
    design = CompiledDesign.load(result.outdir)
    measured = {"resources": {"LC": {"used": 900, "available": 5280}, "EBR": {"used": 4, "available": 30},
                              "SPRAM": {"used": 0, "available": 4}, "DSP": {"used": 0, "available": 8}},
                "fmax_mhz": 25.0, "cells": {}, "bitstream": "snn_top.bin", "tools": {}, "timings_s": {"build": 12.5}}
    monkeypatch.setattr(runner, "build_design", lambda design, board, progress: measured)
    record = dict.fromkeys(RECORD_FIELDS, None) | {"cycles_per_inference": 500.0}
    runner._build(design, load_board("ice40"), record, print)
    assert (record["lc_used"], record["ebr_used"], record["spram_used"], record["dsp_used"]) == (900, 4, 0, 0)
    assert (record["fmax_mhz"], record["build_s"], record["us_per_inference"]) == (25.0, 12.5, 20.0)
    report = json.loads((tmp_path / "T1" / "report.json").read_text())
    assert report["resources_source"] == "nextpnr" and report["fmax_mhz"] == 25.0


def test_a_refused_workload_gets_an_error_and_keeps_what_was_measured(tmp_path):
    record = run_workload(WORKLOADS["B2"], BenchOptions(board="ice40-hx8k", samples=2, build=False), tmp_path)
    assert record["error"].startswith("model too big for iCE40HX8K")
    assert record["golden_s"] > 0 and record["snntorch_s"] > 0 and record["cycles_per_inference"] is None
    assert record["bound_cycles"] is None                                        # no SPRAM: cannot fit on chip
    table = format_table([record])
    assert table.splitlines()[2].split()[:3] == ["B2", "2", "-"] and table.splitlines()[-1].startswith("B2: model")


def test_reduced_bench_through_the_cli(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--workloads", "B1,B4", "--samples", "4", "--no-build", "--lanes", "2", "--json", out,
                     "-o", tmp_path / "work", check=0)
    header, rule, b1_row, b4_row = result.stdout.splitlines()
    assert header.split()[:3] == ["workload", "samples", "cycles/inf"] and set(rule) == {"-", " "}
    assert b1_row.split()[0] == "B1" and "yes" in b1_row.split()
    assert b4_row.split()[0] == "B4" and "yes" in b4_row.split()
    document = json.loads(out.read_text())
    assert document["format"] == "snn2hw-bench" and document["machine"]["cpus"] >= 1
    b1, b4 = document["records"]
    assert set(BENCHMARKS_FIELDS) <= set(b1) and tuple(b1) == RECORD_FIELDS
    assert b1["error"] is None and b1["bit_exact"] is True and b1["samples"] == 4 and b1["timesteps"] == 16
    assert b1["lanes"] == [2, 2] and b1["integration_lanes"] == [2, 2] and document["options"]["lanes"] == 2
    assert b1["input_spikes"] > 0 and b1["cycles_per_input_spike"] == pytest.approx(
        b1["cycles_per_inference"] / b1["input_spikes"], abs=0.01)
    assert b1["cycles_per_inference"] >= b1["bound_cycles"] > 0
    assert b1["ratio_to_bound"] >= 1 and b1["compile_s"] > 0
    # throughput is timed on a larger batch, all of it bit-exact (a wall-clock figure: not asserted here)
    assert b1["rtl_batch"] == runner.THROUGHPUT_BATCH and b1["rtl_inferences_per_s"] > 0
    assert b1["verify_inferences_per_s"] > 0 and b1["verify_build_s"] > 0
    assert all(b1[field] is None for field in ("lc_used", "ebr_used", "spram_used", "dsp_used", "fmax_mhz",
                                               "us_per_inference", "build_s"))
    assert b1["golden_speedup"] >= 1.0, "the golden model must be at least as fast as snnTorch (batch 64)"
    assert b1["golden_speedup"] == pytest.approx(b1["snntorch_s"] / b1["golden_s"], rel=0.01)
    assert b4["error"] is None and b4["bit_exact"] is True and b4["lanes"] == [2, 2]


def test_unknown_workload_is_a_one_line_error():
    result = run_cli("bench", "--workloads", "B1,B7", "--no-build", check=2)
    assert result.stderr.strip().splitlines() == ["snn2hw: error: unknown workload B7; choose from B1, B2, B3, B4"]
    assert result.stdout == ""
