"""cocotb testbench for the emitted accelerator Verilog (run by :mod:`snn2hw.verify.verilator`).

Reads the stimuli file named by ``SNN2HW_STIMULI`` (npz: ``spikes`` uint8 [B, T, n_in], ``n_out``,
``max_cycles``), runs every sample through :func:`~snn2hw.verify.protocol.run_inference` and writes
``SNN2HW_RESULTS`` (npz: ``rasters`` uint8 [B, T, n_out], ``cycles`` int64 [B], ``error`` str).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from .protocol import run_inference

PORTS_IN = {"start": "start", "i_valid": "i_spikes__valid", "i_payload": "i_spikes__payload",
            "o_ready": "o_spikes__ready"}
PORTS_OUT = {"i_ready": "i_spikes__ready", "o_valid": "o_spikes__valid", "o_payload": "o_spikes__payload",
             "done": "done"}


class CocotbPins:
    """:class:`~snn2hw.verify.protocol.Pins` over a cocotb DUT handle."""

    def __init__(self, dut):
        self._dut = dut
        self._inputs = {name: getattr(dut, port) for name, port in PORTS_IN.items()}
        self._outputs = {name: getattr(dut, port) for name, port in PORTS_OUT.items()}

    def drive(self, port, value):
        self._inputs[port].value = value

    async def sample(self):
        await ReadOnly()
        return {name: int(handle.value) for name, handle in self._outputs.items()}

    async def tick(self):
        await RisingEdge(self._dut.clk)


@cocotb.test()
async def run_stimuli(dut):
    """Run all samples back to back on one design instance and save rasters and cycle counts."""
    stimuli = np.load(os.environ["SNN2HW_STIMULI"])
    spikes, n_out, max_cycles = stimuli["spikes"], int(stimuli["n_out"]), int(stimuli["max_cycles"])
    rasters = np.zeros((spikes.shape[0], spikes.shape[1], n_out), np.uint8)
    cycles = np.zeros(spikes.shape[0], np.int64)
    error = ""
    Clock(dut.clk, 10, unit="ns").start()
    pins = CocotbPins(dut)
    for name in PORTS_IN:
        pins.drive(name, 0)
    dut.rst.value = 1
    for _ in range(2):
        await pins.tick()
    dut.rst.value = 0
    await pins.tick()
    done = 0
    try:
        for index, sample in enumerate(spikes):
            result = await run_inference(pins, sample, n_out, max_cycles)
            rasters[index], cycles[index] = result.raster, result.cycles
            done = index + 1
    except (TimeoutError, ValueError) as exc:
        error = f"sample {done}: {exc}"
    np.savez(os.environ["SNN2HW_RESULTS"], rasters=rasters[:done], cycles=cycles[:done], error=error)
    assert not error, error
