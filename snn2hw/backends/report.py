"""report.json: board, resource estimate, latency from the cycle model, per-layer shapes, timings."""

from __future__ import annotations

import numpy as np

from ..golden import Trace
from ..ir import Network, json_value
from ..passes.mapping import LayerMapping
from .boards import Board
from .cycle_model import batch_cycles, inference_cycles
from .resources import design_cost, estimate_resources

__all__ = ["reference_stimuli", "latency_report", "build_report", "merge_build_results", "REFERENCE_RATE", "REFERENCE_SAMPLES"]

REFERENCE_RATE = 0.13       # MNIST's mean pixel intensity, as in BENCHMARKS.md
REFERENCE_SAMPLES = 16
REFERENCE_SEED = 0


def reference_stimuli(n_in: int, timesteps: int) -> np.ndarray:
    """The fixed stimuli the report's latency is modelled on: Bernoulli(0.13) spikes, seed 0."""
    rng = np.random.default_rng(REFERENCE_SEED)
    return (rng.random((REFERENCE_SAMPLES, timesteps, n_in)) < REFERENCE_RATE).astype(np.uint8)


def latency_report(network: Network, mappings: tuple[LayerMapping, ...], timesteps: int,
                   reference: Trace | None = None) -> dict:
    """Cycles per inference from the cycle model: mean over the reference stimuli (``reference``: the golden
    model's trace on them, if already computed), and the bound when every neuron of every layer fires at
    every timestep."""
    cycles = batch_cycles(network, mappings, reference_stimuli(network.n_in, timesteps), reference)
    mean = float(np.mean(cycles))
    everything = [np.ones((timesteps, network.n_in), np.uint8)]
    everything += [np.ones((timesteps, layer.n_out), np.uint8) for layer in network.layers]
    return {"timesteps": timesteps, "cycles_per_timestep": round(mean / timesteps, 2),
            "cycles_per_inference": round(mean, 2), "cycles_per_inference_max": inference_cycles(mappings, everything),
            "us_per_inference": None, "source": "model",
            "stimulus": f"Bernoulli({REFERENCE_RATE}) input spikes, {REFERENCE_SAMPLES} samples, seed {REFERENCE_SEED}"}


def build_report(network: Network, mappings: tuple[LayerMapping, ...], board: Board, timesteps: int,
                 quantization: dict, timings: dict, reference: Trace | None = None) -> dict:
    layers = []
    memories = design_cost(network, mappings, board).memories
    for layer, mapping in zip(network.layers, mappings):
        width = mapping.membrane_bits(network.state_bits, layer.threshold)
        placed = [memory for memory in memories if memory.layer == layer.name]
        weights_in = [memory.kind for memory in placed if memory.name.startswith("weights")]
        layers.append({"name": layer.name, "neurons": layer.n_out, "fan_in": layer.n_in,
                       "weight_bits": mapping.weight_bits, "memory": "+".join(weights_in) or "logic",
                       "lanes": mapping.lanes,
                       "spram_lanes": mapping.spram_lanes, "groups": mapping.groups, "acc_bits": mapping.acc_bits,
                       "integration_lanes": mapping.weight_lanes, "cycles_per_input_spike": mapping.integration_cycles,
                       "membrane_bits": width, "neuron": layer.neuron, "reset": layer.reset.value,
                       "beta": json_value(layer.beta), "alpha": json_value(layer.alpha),
                       "threshold": json_value(layer.threshold),
                       "memories": {memory.name: {"width": memory.width, "depth": memory.depth, "kind": memory.kind,
                                                  "blocks": memory.blocks} for memory in placed}})
    return {"board": board.name, "device": board.device,
            "resources": estimate_resources(network, mappings, board), "resources_source": "estimate",
            "fmax_mhz": None, "latency": latency_report(network, mappings, timesteps, reference),
            "state_bits": network.state_bits, "layers": layers, "quantization": quantization,
            "tools": {}, "timings_s": timings}


def merge_build_results(report: dict, measured: dict) -> dict:
    """report.json after a build: nextpnr's utilization and Fmax replace the estimate, and the latency
    gains microseconds (cycles / Fmax)."""
    merged = dict(report)
    merged["resources"] = measured["resources"]
    merged["resources_source"] = "nextpnr"
    merged["fmax_mhz"] = measured["fmax_mhz"]
    merged["cells"] = measured["cells"]
    merged["bitstream"] = measured["bitstream"]
    merged["tools"] = measured["tools"]
    merged["timings_s"] = {**report.get("timings_s", {}), **measured["timings_s"]}
    latency = dict(report["latency"])
    if measured["fmax_mhz"]:
        latency["us_per_inference"] = round(latency["cycles_per_inference"] / measured["fmax_mhz"], 2)
    merged["latency"] = latency
    return merged
