"""One sample's activity for report.html: spikes and membranes of every layer, and where its cycles go.

The sample is the first of the report's reference stimuli. :func:`golden_sample` takes everything from the
golden model and the cycle model; :func:`snn2hw.verify.sample.observed_sample` replaces the output spikes
and the cycle count with an RTL simulation when one is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import golden
from ..passes.mapping import LayerMapping
from .cycle_model import inference_cycles
from .design import CompiledDesign
from .report import reference_stimuli

__all__ = ["SampleTrace", "golden_sample", "stage_cycles", "SAMPLE_NAME"]

SAMPLE_NAME = "reference stimulus 0"


@dataclass(frozen=True)
class SampleTrace:
    """Rasters [T, n] of the input and of each layer, membranes [T, n] of each layer, and provenance.

    ``source`` is ``"rtl"`` when the output layer's spikes and ``cycles`` were measured in RTL simulation,
    ``"golden"`` when everything comes from the golden and cycle models; ``note`` says so in words.
    ``stages`` [input, layer 1, ...] with ``stage_cycles``: the cycles each adds to this inference
    (cycle model).
    """

    stimulus: str
    inputs: np.ndarray
    layers: list[str]
    spikes: list[np.ndarray]
    membranes: list[np.ndarray]
    thresholds: list[int | np.ndarray]   # per layer: its threshold, or per-neuron thresholds
    cycles: int
    stages: list[str]
    stage_cycles: list[int]
    source: str
    note: str


def stage_cycles(mappings: tuple[LayerMapping, ...], rasters: list[np.ndarray]) -> list[int]:
    """The cycles each stage adds to one inference: [input stream, layer 1, ..., layer L], summing to the
    inference's cycles. Layer l's share is the latency of the network cut after layer l minus that of the
    network cut before it (``rasters`` as for :func:`inference_cycles`)."""
    totals = [inference_cycles(mappings[:count], rasters[:count + 1]) for count in range(len(mappings) + 1)]
    return [totals[0]] + [after - before for before, after in zip(totals, totals[1:])]


def golden_sample(design: CompiledDesign) -> SampleTrace:
    """The first reference stimulus through the golden model, cycles from the cycle model."""
    network = design.network
    inputs = reference_stimuli(network.n_in, design.timesteps)[:1]
    trace = golden.run(network, inputs)
    spikes = [layer_spikes[0] for layer_spikes in trace.spikes]
    rasters = [inputs[0]] + spikes
    shares = stage_cycles(design.mappings, rasters)
    return SampleTrace(stimulus=SAMPLE_NAME, inputs=inputs[0], layers=[layer.name for layer in network.layers],
                       spikes=spikes, membranes=[membrane[0] for membrane in trace.membranes],
                       thresholds=[layer.threshold for layer in network.layers],
                       cycles=inference_cycles(design.mappings, rasters), stages=["input"] + [
                           layer.name for layer in network.layers], stage_cycles=shares, source="golden",
                       note="Spikes and membranes from the golden model (the RTL equals it bit for bit, as "
                            "snn2hw verify checks); cycles from the cycle model.")
