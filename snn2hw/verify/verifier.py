"""``snn2hw verify``: drive the Verilog on disk with random and edge-case stimuli and compare every output
spike and every membrane of the last layer (the membrane readout) with the golden model (exact equality). On a
mismatch, report the first divergence and keep a VCD.

The RTL runs in Verilator under cocotb (:data:`VERIFY_DRIVER`: the simulation top and harness of
:mod:`snn2hw.verify.verilator`, clocked by the cocotb test :mod:`snn2hw.verify.cocotb_sim_tb` through
``cocotb_tools.runner``), the waveforms too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import golden
from ..backends.cycle_model import batch_cycles
from ..backends.design import CompiledDesign
from ..errors import Snn2hwError
from .simulate import cycle_budget, rtl_simulator

__all__ = ["make_stimuli", "Divergence", "VerifyOutcome", "verify_design", "first_divergence",
           "FAILURE_VCD", "VERIFY_DRIVER"]

FAILURE_VCD = "verify_failure.vcd"
VERIFY_DRIVER = "cocotb"


def make_stimuli(n_in: int, timesteps: int, samples: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``samples`` stimuli [samples, T, n_in] with their names: edge cases first (silence, every input
    firing, a saturating burst then silence, one input firing alone), then random rates."""
    rng = np.random.default_rng(seed)
    half = max(1, timesteps // 2)
    burst = np.zeros((timesteps, n_in), np.uint8)
    burst[:half] = 1
    lone = np.zeros((timesteps, n_in), np.uint8)
    lone[:, rng.integers(n_in)] = 1
    cases = [("silence", np.zeros((timesteps, n_in), np.uint8)),
             ("all inputs firing", np.ones((timesteps, n_in), np.uint8)),
             ("saturating burst then silence", burst), ("one input firing", lone)]
    stimuli, names = [], []
    for index in range(samples):
        if index < len(cases):
            name, spikes = cases[index]
        else:
            rate = float(rng.choice([0.02, 0.1, 0.3, 0.6, 0.9]))
            name, spikes = f"random rate {rate}", (rng.random((timesteps, n_in)) < rate).astype(np.uint8)
        stimuli.append(spikes)
        names.append(name)
    return np.stack(stimuli), names


@dataclass(frozen=True)
class Divergence:
    """The first output where RTL and golden model differ: ``quantity`` "spike" (``expected`` and ``got`` are
    spikes) or "membrane" (the spikes agree there; ``expected`` and ``got`` are membranes)."""

    sample: int
    stimulus: str
    layer: str
    neuron: int
    timestep: int
    quantity: str
    expected: int
    got: int
    membrane: int
    membrane_before: int

    def describe(self) -> str:
        where = (f"first divergence: sample {self.sample} ({self.stimulus}), layer {self.layer!r}, "
                 f"neuron {self.neuron}, timestep {self.timestep}: ")
        if self.quantity == "membrane":
            return (f"{where}expected membrane {self.expected}, got {self.got} (the spikes agree; golden "
                    f"membrane was {self.membrane_before} at t-1)")
        return (f"{where}expected spike {self.expected}, got {self.got} (golden membrane {self.membrane}, was "
                f"{self.membrane_before} at t-1)")


@dataclass
class VerifyOutcome:
    samples: int
    matched: int
    divergence: Divergence | None = None
    error: str = ""
    rtl_cycles: list[int] = field(default_factory=list)
    model_cycles: list[int] = field(default_factory=list)
    vcd: Path | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None and not self.error and self.matched == self.samples


def first_divergence(trace: golden.Trace, got: np.ndarray, got_membranes: np.ndarray, layer: str,
                     names: list[str]) -> Divergence | None:
    """Locate the first (sample, timestep, neuron), in that order, where the RTL's output spikes ``got`` or
    last-layer membranes ``got_membranes`` ([S, T, n_out], the first S samples) differ from ``trace``'s."""
    done = len(got)
    expected, membranes = trace.output[:done], trace.membranes[-1][:done]
    spike_differs = expected != got
    where = np.argwhere(spike_differs | (membranes != got_membranes))
    if where.size == 0:
        return None
    at = sample, step, neuron = tuple(int(i) for i in where[0])
    spike = bool(spike_differs[at])
    return Divergence(sample=sample, stimulus=names[sample], layer=layer, neuron=neuron, timestep=step,
                      quantity="spike" if spike else "membrane",
                      expected=int(expected[at] if spike else membranes[at]),
                      got=int(got[at] if spike else got_membranes[at]), membrane=int(membranes[at]),
                      membrane_before=int(membranes[sample, step - 1, neuron]) if step else 0)


def _dump_vcd(design: CompiledDesign, spikes: np.ndarray, budget: int, path: Path) -> Path:
    """Simulate one sample [1, T, n_in] again on a traced build and keep its waveform at ``path``."""
    rtl_simulator(design, waves=True, driver=VERIFY_DRIVER).run(spikes, design.network.n_out, budget, vcd_path=path)
    return path


def verify_design(design: CompiledDesign, samples: int, seed: int, keep_vcd: bool = True,
                  vcd_path: Path | None = None) -> VerifyOutcome:
    """Simulate the Verilog file in ``design`` on ``samples`` stimuli and compare with the golden model.

    On a mismatch the failing sample's waveform is kept in OUTDIR (unless ``keep_vcd`` is False); with
    ``vcd_path`` the first sample's waveform is written there whatever the outcome."""
    if samples < 1:
        raise Snn2hwError(f"--samples must be >= 1, got {samples}")
    spikes, names = make_stimuli(design.network.n_in, design.timesteps, samples, seed)
    trace = golden.run(design.network, spikes)
    outcome = VerifyOutcome(samples=samples, matched=0,
                            model_cycles=batch_cycles(design.network, design.mappings, spikes, trace))
    budget = cycle_budget(design, design.timesteps)
    results, error = rtl_simulator(design, driver=VERIFY_DRIVER).run(spikes, design.network.n_out, budget)
    outcome.rtl_cycles = [result.cycles for result in results]
    done = len(results)
    shape = (0, *trace.output.shape[1:])
    got = np.stack([result.raster for result in results]) if results else np.zeros(shape, np.uint8)
    got_membranes = np.stack([result.membranes for result in results]) if results else np.zeros(shape, np.int64)
    outcome.divergence = first_divergence(trace, got, got_membranes, design.network.layers[-1].name, names)
    if outcome.divergence is None and error:
        outcome.error = f"sample {done} ({names[done]}): {error.split(': ', 1)[-1]}" if done < samples else error
    bad_sample = outcome.divergence.sample if outcome.divergence else (done if outcome.error else None)
    outcome.matched = bad_sample if bad_sample is not None else samples
    if bad_sample is not None and keep_vcd:
        outcome.vcd = _dump_vcd(design, spikes[bad_sample:bad_sample + 1], budget, design.path / FAILURE_VCD)
    if vcd_path is not None:
        _dump_vcd(design, spikes[:1], budget, Path(vcd_path))
    return outcome
