"""Simulate a compiled design on input spikes: the RTL (Verilog on disk, Verilator's standalone program of
the simulation top, for throughput) or the golden model. ``verify`` runs the same top under cocotb."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden
from ..backends.cycle_model import batch_cycles, inference_cycles
from ..backends.design import CompiledDesign
from ..hw.accelerator import membrane_format, spram_image
from ..errors import VerificationError
from .verilator import DRIVERS, RtlSimulator

__all__ = ["SimulationResult", "simulate_design", "cycle_budget", "rtl_simulator", "cached_rtl_simulator", "ENGINES"]

ENGINES = ("rtl", "golden")


@dataclass(frozen=True)
class SimulationResult:
    """Output spikes uint8 [B, T, n_out], the last layer's membranes int64 [B, T, n_out] (the membrane
    readout, for rtl) and cycles per inference (measured for rtl, modelled for golden)."""

    outputs: np.ndarray
    membranes: np.ndarray
    cycles: list[int]
    engine: str


def cycle_budget(design: CompiledDesign, timesteps: int) -> int:
    """A timeout twice the cycles of the busiest possible inference (every neuron firing every step)."""
    busiest = [np.ones((timesteps, design.network.n_in), np.uint8)]
    busiest += [np.ones((timesteps, layer.n_out), np.uint8) for layer in design.network.layers]
    return 2 * inference_cycles(design.mappings, busiest) + 100


def rtl_simulator(design: CompiledDesign, waves: bool = False, build: bool = True,
                  driver: str = "program") -> RtlSimulator:
    """The design's Verilator simulator for ``driver`` (see :data:`~snn2hw.verify.verilator.DRIVERS`),
    cached in ``OUTDIR/.sim``; with ``build=False`` an uncached one is not built (check ``.built``)."""
    network, mappings = design.network, design.mappings
    return RtlSimulator(design.verilog_path, network.n_in, membrane_format(network, mappings), design.path / ".sim",
                        waves=waves, build=build, image=spram_image(network, mappings), driver=driver)


def cached_rtl_simulator(design: CompiledDesign) -> RtlSimulator | None:
    """The design's simulator of whichever driver is already built (``simulate``'s program first, then
    ``verify``'s cocotb build), or None; nothing is built."""
    for driver in DRIVERS:
        simulator = rtl_simulator(design, build=False, driver=driver)
        if simulator.built:
            return simulator
    return None


def simulate_design(design: CompiledDesign, inputs: np.ndarray, engine: str = "rtl",
                    vcd_path: Path | None = None) -> SimulationResult:
    """Run ``inputs`` ([B, T, n_in] or [T, n_in], 0/1) through the design with the chosen engine."""
    batch = golden.as_batch(inputs, design.network.n_in)
    if engine == "golden":
        trace = golden.run(design.network, batch)
        return SimulationResult(trace.output, trace.membranes[-1],
                                batch_cycles(design.network, design.mappings, batch, trace), engine)
    if engine != "rtl":
        raise VerificationError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    simulator = rtl_simulator(design, waves=vcd_path is not None)
    results, error = simulator.run(batch, design.network.n_out, cycle_budget(design, batch.shape[1]), vcd_path)
    if error:
        raise VerificationError(f"RTL simulation failed at {error}")
    return SimulationResult(np.stack([r.raster for r in results]).astype(np.uint8),
                            np.stack([r.membranes for r in results]), [r.cycles for r in results], engine)
