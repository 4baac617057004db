"""Run the accelerator in Amaranth's Python simulator: the fast path for unit and property tests."""

from __future__ import annotations

import numpy as np
from amaranth import Value
from amaranth.sim import Simulator

from ..golden import as_batch
from ..hw.accelerator import Accelerator, membrane_format, spram_image
from ..ir import Network
from ..passes.mapping import LayerMapping
from .protocol import InferenceResult, run_inference

__all__ = ["simulate_amaranth"]


class _AmaranthPins:
    def __init__(self, ctx, dut: Accelerator):
        self._ctx = ctx
        self._inputs = {"start": dut.start, "i_valid": dut.i_spikes.valid,
                        "i_payload": Value.cast(dut.i_spikes.payload), "o_ready": dut.o_spikes.ready}
        self._outputs = {"i_ready": dut.i_spikes.ready, "o_valid": dut.o_spikes.valid,
                         "o_payload": Value.cast(dut.o_spikes.payload), "done": dut.done,
                         "m_valid": dut.o_membranes.valid, "m_payload": Value.cast(dut.o_membranes.payload)}

    def drive(self, port, value):
        self._ctx.set(self._inputs[port], value)

    async def sample(self):
        return {name: self._ctx.get(signal) for name, signal in self._outputs.items()}

    async def tick(self):
        await self._ctx.tick()


def simulate_amaranth(network: Network, mappings: tuple[LayerMapping, ...], inputs: np.ndarray,
                      max_cycles: int) -> list[InferenceResult]:
    """Simulate every sample of ``inputs`` ([B, T, n_in] or [T, n_in]) one after another on one design,
    after loading its SPRAM weights (modelled by Amaranth memories); the results hold the membrane readout."""
    batch = as_batch(inputs, network.n_in)
    dut = Accelerator(network, mappings, spram_primitive=False)
    image = spram_image(network, mappings)
    results: list[InferenceResult] = []

    async def testbench(ctx):
        ctx.set(dut.w_load.valid, 1)
        for word in image:
            ctx.set(dut.w_load.payload, word)
            await ctx.tick().until(dut.w_load.ready)
        ctx.set(dut.w_load.valid, 0)
        assert ctx.get(dut.loaded), "the accelerator did not take its whole weight image"
        pins = _AmaranthPins(ctx, dut)
        for sample in batch:
            results.append(await run_inference(pins, sample, network.n_out, max_cycles,
                                               membrane_format(network, mappings)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results
