"""The sample shown in report.html, measured in RTL simulation when the design's simulator is cached."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..backends.design import CompiledDesign
from ..backends.sample_trace import SampleTrace, golden_sample
from ..errors import Snn2hwError
from .simulate import cached_rtl_simulator, cycle_budget

__all__ = ["observed_sample"]


def observed_sample(design: CompiledDesign, prefer_rtl: bool = True) -> SampleTrace:
    """:func:`golden_sample`, with the output spikes and cycles of an RTL simulation of the same stimulus
    if ``prefer_rtl`` and a Verilator build (``simulate``'s or ``verify``'s) in ``OUTDIR/.sim`` already
    exists (no new build is started).

    Hidden layers and membranes are not visible at the accelerator's ports: they stay golden, and the
    note says so, and whether the RTL output equals the golden one.
    """
    sample = golden_sample(design)
    if not prefer_rtl:
        return sample
    try:
        simulator = cached_rtl_simulator(design)
        if simulator is None:
            return dataclasses.replace(sample, note=sample.note + " No cached Verilator build of this design "
                                       "(run snn2hw verify first to show an RTL simulation here).")
        results, error = simulator.run(sample.inputs[None], design.network.n_out,
                                       cycle_budget(design, design.timesteps))
    except Snn2hwError as exc:
        return dataclasses.replace(sample, note=f"{sample.note} RTL simulation unavailable ({exc}).")
    if error or not results:
        return dataclasses.replace(sample, note=f"{sample.note} RTL simulation failed ({error}).")
    output = np.asarray(results[0].raster, dtype=np.uint8)
    agrees = np.array_equal(output, sample.spikes[-1])
    verdict = ("equal to the golden model's bit for bit" if agrees else
               "DIFFERENT from the golden model's (run snn2hw verify)")
    note = (f"Output-layer spikes and the cycle count measured in RTL simulation (Verilator, cached build), "
            f"{verdict}. Hidden-layer spikes and all membranes are internal to the hardware and come from the "
            f"golden model; the per-stage cycles come from the cycle model.")
    return dataclasses.replace(sample, spikes=sample.spikes[:-1] + [output], cycles=int(results[0].cycles),
                               source="rtl", note=note)
