"""The compile pipeline: a list of named steps over one :class:`CompileConfig`, each step timed.

import -> quantize -> fidelity -> map -> fit check -> emit Verilog -> report, written atomically into OUTDIR.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import golden
from .backends.boards import Board, load_board
from .backends.design import (SPRAM_IMAGE_FILE, NETWORK_FILE, REPORT_FILE, VERILOG_FILE, CompiledDesign, check_output_dir,
                              staged_directory, write_json, write_text_atomically)
from .backends.report import build_report, merge_build_results, reference_stimuli
from .backends.resources import board_budget, check_fit
from .backends.verilog import emit_verilog
from .errors import OutputError, Snn2hwError
from .fidelity import Fidelity, load_stimuli, measure, random_stimuli, random_stimuli_description
from .hw.accelerator import TOP_NAME, spram_image
from .importers import DEFAULT_NIR_DT, load_model
from .ir import Network, SourceNetwork
from .passes.mapping import LayerMapping
from .passes.placement import place_network
from .passes.quantize import DEFAULT_MEMBRANE_FRAC_BITS, QuantizationReport, quantize

__all__ = ["CompileConfig", "CompileResult", "compile_model", "build_outdir"]


@dataclass(frozen=True)
class CompileConfig:
    """Everything ``snn2hw compile`` is asked to do."""

    model: str
    outdir: str
    board: str = "ice40"
    state_bits: int = 16
    timesteps: int = 25
    lanes: int | str = "auto"
    weight_bits: int | None = None
    beta_frac_bits: int | None = None      # F: beta_q = round(beta * 2^F); None: chosen per model
    frac_bits: int = DEFAULT_MEMBRANE_FRAC_BITS   # G: float models' extra membrane fraction bits
    fidelity_input: str | None = None      # .npy spikes for the float-model fidelity; None: random stimuli
    nir_dt: float = DEFAULT_NIR_DT
    reset: str | None = None  # NIR models only: "subtract" or "zero" (None: zero)
    input_shape: str | None = None  # state dicts only: "C,H,W" of the input (a first nn.Conv2d needs it)
    force: bool = False

    def validate(self) -> None:
        if self.timesteps < 1:
            raise Snn2hwError(f"--timesteps must be >= 1, got {self.timesteps}")
        if not 2 <= self.state_bits <= 32:
            raise Snn2hwError(f"--state-bits must be in [2, 32], got {self.state_bits}")
        if self.lanes != "auto" and not (isinstance(self.lanes, int) and self.lanes >= 1):
            raise Snn2hwError(f"--lanes must be 'auto' or an integer >= 1, got {self.lanes!r}")
        if not self.nir_dt > 0 or self.nir_dt == float("inf"):
            raise Snn2hwError(f"--nir-dt must be a finite time step > 0, got {self.nir_dt}")


@dataclass
class CompileResult:
    """What a compile produced, for the CLI to print."""

    outdir: Path
    network: Network | None = None
    source: SourceNetwork | None = None
    mappings: tuple[LayerMapping, ...] = ()
    board: Board | None = None
    quantization: QuantizationReport | None = None
    fidelity: Fidelity | None = None
    verilog: str = ""
    report: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    reference: golden.Trace | None = None    # the golden model on the reference stimuli, once computed

    def reference_trace(self, timesteps: int) -> golden.Trace:
        """The golden model's trace on the reference stimuli (computed once, for lanes and latency)."""
        if self.reference is None:
            self.reference = golden.run(self.network, reference_stimuli(self.network.n_in, timesteps))
        return self.reference


def _step_import(config: CompileConfig, result: CompileResult) -> None:
    if result.source is None:
        result.source = load_model(config.model, nir_dt=config.nir_dt, reset=config.reset,
                                   input_shape=config.input_shape)
    result.board = load_board(config.board)


def _step_quantize(config: CompileConfig, result: CompileResult) -> None:
    result.network, result.quantization = quantize(result.source, state_bits=config.state_bits,
                                                   weight_bits=config.weight_bits,
                                                   beta_frac_bits=config.beta_frac_bits,
                                                   membrane_frac_bits=config.frac_bits)


def _step_fidelity(config: CompileConfig, result: CompileResult) -> None:
    """Agreement with the float model (:mod:`snn2hw.fidelity`): on ``--fidelity-input`` when given, else on
    random stimuli when quantization rescaled or rounded anything; an exact model without input is skipped."""
    n_in = result.source.n_in
    if config.fidelity_input is not None:
        inputs, stimulus = load_stimuli(config.fidelity_input, n_in), Path(config.fidelity_input).name
    elif not result.quantization.exact:
        inputs, stimulus = random_stimuli(n_in, config.timesteps), random_stimuli_description()
    else:
        return
    result.fidelity = measure(result.source, result.network, inputs, stimulus)


def layer_spikes(network: Network, timesteps: int, reference: golden.Trace) -> list[float]:
    """Per layer, mean input spikes per inference on the reference stimuli (what lanes speed up with the
    fire passes, one per timestep); ``reference`` is the golden model's trace on them."""
    rasters = [reference_stimuli(network.n_in, timesteps)] + list(reference.spikes[:-1])
    return [float(raster.sum(axis=(1, 2)).mean()) for raster in rasters]


def _step_map(config: CompileConfig, result: CompileResult) -> None:
    network, board = result.network, result.board
    if config.lanes == "auto":
        spikes = layer_spikes(network, config.timesteps, result.reference_trace(config.timesteps))
        result.mappings = place_network(network, board_budget(board), None, spikes, config.timesteps)
    else:
        result.mappings = place_network(network, board_budget(board), int(config.lanes))
    check_fit(network, result.mappings, board)


def _step_emit(config: CompileConfig, result: CompileResult) -> None:
    result.verilog = emit_verilog(result.network, result.mappings)


def _step_report(config: CompileConfig, result: CompileResult) -> None:
    quantization = result.quantization.to_json()
    if result.fidelity is not None:
        quantization["fidelity"] = result.fidelity.to_json()
    result.report = build_report(result.network, result.mappings, result.board, config.timesteps,
                                 quantization, result.timings, result.reference_trace(config.timesteps))


STEPS: list[tuple[str, Callable[[CompileConfig, CompileResult], None]]] = [
    ("import", _step_import), ("quantize", _step_quantize), ("fidelity", _step_fidelity),
    ("map", _step_map), ("emit", _step_emit), ("report", _step_report),
]


def compile_model(config: CompileConfig, progress: Callable[[str], None] = lambda step: None,
                  source: SourceNetwork | None = None) -> CompileResult:
    """Run every step, then write OUTDIR (Verilog, network.json, report.json) all at once.

    With ``source`` the in-memory network is compiled instead of loading ``config.model``, which then only
    names the model in network.json.
    """
    config.validate()
    check_output_dir(config.outdir, config.force)
    result = CompileResult(outdir=Path(config.outdir), source=source)
    started = time.perf_counter()
    for name, step in STEPS:
        progress(name)
        step_start = time.perf_counter()
        step(config, result)
        result.timings[name] = round(time.perf_counter() - step_start, 3)
    result.timings["compile"] = round(time.perf_counter() - started, 3)
    options = {key: value for key, value in asdict(config).items() if key not in ("outdir", "force")}
    options.update(top=TOP_NAME, verilog=VERILOG_FILE, model=str(Path(config.model).name))
    description = result.network.to_json()
    description["compile"] = options
    description["mappings"] = [mapping.to_json() for mapping in result.mappings]
    image = spram_image(result.network, result.mappings)
    with staged_directory(config.outdir, force=config.force) as staging:
        if image:
            (staging / SPRAM_IMAGE_FILE).write_bytes(np.asarray(image, "<u2").tobytes())
        (staging / VERILOG_FILE).write_text(result.verilog)
        write_json(staging / NETWORK_FILE, description)
        write_json(staging / REPORT_FILE, result.report)
    return result


def build_outdir(outdir, progress: Callable[[str], None] = lambda step: None) -> dict:
    """``snn2hw build``: the bitstream of a compiled OUTDIR for its board; report.json is rewritten with the
    measured resources, Fmax and us per inference, and returned."""
    from .backends.fpga_build import build_design  # imports the board platforms: only when building

    design = CompiledDesign.load(outdir)
    try:
        report = json.loads((design.path / REPORT_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"{design.path / REPORT_FILE} is missing or not valid JSON ({exc})") from None
    measured = build_design(design, load_board(design.options["board"]), progress=progress)
    report = merge_build_results(report, measured)
    write_text_atomically(design.path / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return report
