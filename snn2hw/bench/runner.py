"""Run reference workloads: compile, simulate in Verilator, optionally build, and time the golden model
against snnTorch; one record per workload.

A record holds BENCHMARKS.md's fields (``cycles_per_inference`` measured in Verilator, ``bound_cycles``,
``lc_used``, ``ebr_used``, ``spram_used``, ``dsp_used``, ``fmax_mhz``, ``us_per_inference`` = cycles /
Fmax, ``bit_exact``, ``compile_s``, ``build_s``) and: ``workload``, ``title``, ``samples`` (the stimuli of
``cycles_per_inference`` and ``bound_cycles``), ``timesteps``, ``lanes`` (per layer, as mapped),
``ratio_to_bound`` = cycles / bound, ``sim_build_s`` (Verilator build), ``rtl_batch`` (the stimuli of the
RTL run: the workload's first max(samples, THROUGHPUT_BATCH), fewer if it has fewer; ``bit_exact`` covers
all of them), ``rtl_inferences_per_s`` (that run's inferences per second of wall time, the Verilator build
excluded; a batch this large makes the run's fixed costs, ~0.1 s, small against the samples' own),
``verify_inferences_per_s`` (what ``snn2hw verify`` does on as many stimuli: golden model, cycle model and
the simulation under cocotb, per second of wall time, its Verilator build excluded: ``verify_build_s``),
``golden_s`` and ``snntorch_s`` (best time of one batch of 64),
``golden_speedup`` = snntorch_s / golden_s, ``snntorch_spike_agreement`` and ``error`` (None, or why the
workload stopped; the fields measured before it stay). Fields not measured are None.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__, golden
from ..backends.boards import Board, load_board
from ..backends.design import REPORT_FILE, CompiledDesign, write_json
from ..backends.fpga_build import build_design
from ..backends.report import merge_build_results
from ..errors import Snn2hwError, VerificationError
from ..passes.quantize import quantize
from ..pipeline import CompileConfig, compile_model
from ..verify.simulate import rtl_simulator, simulate_design
from ..verify.verifier import VERIFY_DRIVER, verify_design
from .bound import bound_cycles
from .compare import TIMING_BATCH, compare_with_snntorch
from .workloads import Workload, select_workloads

__all__ = ["BenchOptions", "RECORD_FIELDS", "run_bench", "run_workload", "bench_document"]

RECORD_FIELDS = (
    "workload", "title", "samples", "timesteps", "lanes", "integration_lanes", "input_spikes",
    "cycles_per_input_spike", "cycles_per_inference", "bound_cycles",
    "ratio_to_bound", "bit_exact", "rtl_batch", "rtl_inferences_per_s", "sim_build_s", "verify_inferences_per_s",
    "verify_build_s", "lc_used", "ebr_used",
    "spram_used", "dsp_used", "fmax_mhz", "us_per_inference", "compile_s", "build_s", "golden_s", "snntorch_s",
    "golden_speedup", "snntorch_spike_agreement", "error",
)
THROUGHPUT_BATCH = 256   # stimuli at least in the timed RTL run
# nextpnr's utilization, as report.json names it -> record field
BUILD_RESOURCES = {"LC": "lc_used", "EBR": "ebr_used", "SPRAM": "spram_used", "DSP": "dsp_used"}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What ``snn2hw bench`` is asked to do; ``workdir`` None means a temporary directory."""

    workloads: str = "B1,B2,B3"
    board: str = "ice40"
    samples: int = 16
    lanes: int | str = "auto"
    build: bool = True
    workdir: str | None = None

    def validate(self) -> None:
        if self.samples < 1:
            raise Snn2hwError(f"--samples must be >= 1, got {self.samples}")


def _rounded(value: float, digits: int = 3) -> float:
    return float(round(value, digits))


def _compile(workload: Workload, options: BenchOptions, workdir: Path, data, record: dict) -> CompiledDesign:
    config = CompileConfig(model=data.model, outdir=str(workdir / workload.name), board=options.board,
                           timesteps=workload.timesteps, lanes=options.lanes, force=True)
    result = compile_model(config, source=data.source)
    record["compile_s"] = _rounded(result.timings["compile"])
    design = CompiledDesign.load(result.outdir)
    record["lanes"] = [mapping.lanes for mapping in design.mappings]
    record["integration_lanes"] = [mapping.weight_lanes for mapping in design.mappings]
    return design


def _simulate(design: CompiledDesign, batch: np.ndarray, samples: int, record: dict) -> None:
    """One timed RTL run of ``batch`` in Verilator (its build timed apart): bit-exactness over the batch,
    cycles over its first ``samples`` stimuli, throughput."""
    started = time.perf_counter()
    rtl_simulator(design)
    record["sim_build_s"] = _rounded(time.perf_counter() - started, 2)
    expected = golden.run(design.network, batch).output
    started = time.perf_counter()
    result = simulate_design(design, batch, engine="rtl")
    elapsed = time.perf_counter() - started
    record["bit_exact"] = bool(np.array_equal(result.outputs, expected))
    record["cycles_per_inference"] = _rounded(float(np.mean(result.cycles[:samples])), 2)
    record["input_spikes"] = _rounded(float(batch[:samples].sum(axis=(1, 2)).mean()), 2)
    record["cycles_per_input_spike"] = _rounded(record["cycles_per_inference"] / max(record["input_spikes"], 1), 2)
    record["rtl_batch"] = len(batch)
    record["rtl_inferences_per_s"] = _rounded(len(batch) / elapsed, 1)


def _verify(design: CompiledDesign, samples: int, record: dict) -> None:
    """One timed ``verify`` of ``samples`` stimuli under cocotb (its Verilator build timed apart)."""
    started = time.perf_counter()
    rtl_simulator(design, driver=VERIFY_DRIVER)
    record["verify_build_s"] = _rounded(time.perf_counter() - started, 2)
    started = time.perf_counter()
    outcome = verify_design(design, samples, seed=0, keep_vcd=False)
    elapsed = time.perf_counter() - started
    record["bit_exact"] = bool(record["bit_exact"] and outcome.ok)
    record["verify_inferences_per_s"] = _rounded(samples / elapsed, 1)


def _build(design: CompiledDesign, board: Board, record: dict, progress: Progress) -> None:
    """nextpnr's utilization and Fmax; the design's report.json gets them too, as after ``snn2hw build``."""
    measured = build_design(design, board, progress=progress)
    report_path = design.path / REPORT_FILE
    write_json(report_path, merge_build_results(json.loads(report_path.read_text()), measured))
    for name, field in BUILD_RESOURCES.items():
        record[field] = measured["resources"].get(name, {}).get("used")
    record["fmax_mhz"] = measured["fmax_mhz"]
    record["build_s"] = _rounded(measured["timings_s"]["build"], 2)
    if measured["fmax_mhz"] and record["cycles_per_inference"] is not None:
        record["us_per_inference"] = _rounded(record["cycles_per_inference"] / measured["fmax_mhz"], 2)


def _measure(workload: Workload, options: BenchOptions, workdir: Path, record: dict, progress: Progress) -> None:
    """Fill ``record``: first what needs only the integer network (bound, golden model vs snnTorch), so that
    a workload the compiler refuses still has them, then compile, RTL simulation and build."""
    board = load_board(options.board)
    progress(f"{workload.name}: loading the workload ...")
    data = workload.data(max(options.samples, TIMING_BATCH, THROUGHPUT_BATCH))
    stimuli = data.stimuli[:options.samples]
    record["samples"] = int(stimuli.shape[0])
    network, _ = quantize(data.source)
    record["bound_cycles"] = bound_cycles(network, stimuli, golden.run(network, stimuli), board)
    progress(f"{workload.name}: golden model vs snnTorch ...")
    comparison = compare_with_snntorch(network, data.stimuli[:TIMING_BATCH])
    record.update(golden_s=_rounded(comparison.golden_s, 5), snntorch_s=_rounded(comparison.snntorch_s, 5),
                  golden_speedup=_rounded(comparison.golden_speedup, 2),
                  snntorch_spike_agreement=_rounded(comparison.spike_agreement, 4))
    progress(f"{workload.name}: compiling ...")
    design = _compile(workload, options, workdir, data, record)
    batch = data.stimuli[:max(options.samples, THROUGHPUT_BATCH)]
    progress(f"{workload.name}: RTL simulation of {len(batch)} stimuli (Verilator) ...")
    _simulate(design, batch, len(stimuli), record)
    progress(f"{workload.name}: snn2hw verify of {len(batch)} stimuli (Verilator under cocotb) ...")
    _verify(design, len(batch), record)
    if record["bound_cycles"]:
        record["ratio_to_bound"] = _rounded(record["cycles_per_inference"] / record["bound_cycles"], 2)
    if options.build and board.platform:
        progress(f"{workload.name}: FPGA build ...")
        _build(design, board, record, lambda step: progress(f"{workload.name}: {step}"))


def run_workload(workload: Workload, options: BenchOptions, workdir: Path,
                 progress: Progress = lambda message: None) -> dict:
    """One workload's record; a refused or failed step ends it with ``error`` set."""
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(workload=workload.name, title=workload.title, timesteps=workload.timesteps)
    try:
        _measure(workload, options, workdir, record, progress)
    except VerificationError as exc:
        record.update(bit_exact=False, error=str(exc))
    except Snn2hwError as exc:
        record["error"] = str(exc)
    return record


def run_bench(options: BenchOptions, progress: Progress = lambda message: None) -> list[dict]:
    """Every selected workload's record, in the order named. Unknown names and bad options fail first."""
    options.validate()
    workloads = select_workloads(options.workloads)
    load_board(options.board)
    with ExitStack() as stack:
        if options.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="snn2hw-bench-")))
        else:
            workdir = Path(options.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        return [run_workload(workload, options, workdir, progress) for workload in workloads]


def bench_document(records: list[dict], options: BenchOptions) -> dict:
    """The JSON written by ``--json``: when, where and how, then the records."""
    versions = {"snn2hw": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "snntorch", "verilator"):
        try:
            versions[name] = getattr(__import__(name), "__version__", "unknown")
        except ImportError:
            versions[name] = None
    return {"format": "snn2hw-bench", "version": 1,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count(),
                        "processor": _cpu_model()},
            "versions": versions, "options": asdict(options), "records": records}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
