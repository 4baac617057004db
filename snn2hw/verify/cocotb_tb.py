"""cocotb testbench for the emitted accelerator Verilog inside :mod:`snn2hw.verify.harness`.

Reads the stimuli file named by ``SNN2HW_STIMULI`` (npz: ``spikes`` uint8 [B, T, n_in], ``n_out``,
``max_cycles`` per sample, ``in_capacity``, ``out_capacity``, ``sample_capacity``, ``image``: the SPRAM weight
words), loads the weight image into the harness, runs the samples in
chunks that fit the harness memories and writes ``SNN2HW_RESULTS`` (npz: ``rasters`` uint8 [b, T, n_out]
and ``cycles`` int64 [b] of the b samples that finished, ``error`` str).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout

from ..hw.events import EventFormat
from .protocol import decode_outputs, encode_inputs

CLOCK_NS = 10


def plan_chunks(beats: list[list[int]], out_beats_max: int, capacity: tuple[int, int, int]) -> list[range]:
    """Split samples into consecutive runs that fit (input beats, output beats, samples) capacity."""
    chunks, start, used_in, used_out = [], 0, 0, 0
    for index, sample in enumerate(beats):
        if len(sample) > capacity[0] or out_beats_max > capacity[1]:
            raise ValueError(f"sample {index} needs more harness memory than it has")
        if index > start and (used_in + len(sample) > capacity[0] or used_out + out_beats_max > capacity[1]
                              or index - start == capacity[2]):
            chunks.append(range(start, index))
            start, used_in, used_out = index, 0, 0
        used_in += len(sample)
        used_out += out_beats_max
    chunks.append(range(start, len(beats)))
    return chunks


def split_samples(out_beats: list[int], fmt: EventFormat) -> list[list[int]]:
    """Cut the recorded output beats after every end-of-timestep + last beat."""
    samples, current = [], []
    for beat in out_beats:
        current.append(beat)
        _, eot, last = fmt.unpack(beat)
        if eot and last:
            samples.append(current)
            current = []
    return samples


def _collect(dut, samples: int, out_format: EventFormat, steps: int) -> tuple[list, list, str]:
    """(rasters, cycles, problem) of the first ``samples`` samples of a harness run, stopping at the first
    sample whose output stream is incomplete or malformed."""
    outputs = [int(dut.out_beats[i].value) for i in range(int(dut.out_count.value))]
    per_sample = split_samples(outputs, out_format)
    rasters, cycles = [], []
    for index in range(samples):
        if index >= len(per_sample):
            return rasters, cycles, "output stream ended before the final end-of-timestep"
        try:
            rasters.append(decode_outputs(per_sample[index], steps, out_format.neurons))
        except ValueError as exc:
            return rasters, cycles, str(exc)
        cycles.append(int(dut.sample_cycles[index].value))
    return rasters, cycles, ""


@cocotb.test()
async def run_stimuli(dut):
    """Run all samples through the harness and save rasters and cycle counts."""
    stimuli = np.load(os.environ["SNN2HW_STIMULI"])
    spikes, n_out, max_cycles = stimuli["spikes"], int(stimuli["n_out"]), int(stimuli["max_cycles"])
    capacity = (int(stimuli["in_capacity"]), int(stimuli["out_capacity"]), int(stimuli["sample_capacity"]))
    steps = spikes.shape[1]
    out_format = EventFormat(n_out)
    beats = [encode_inputs(sample) for sample in spikes]
    rasters, cycles, error = [], [], ""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    for port in ("go", "samples", "load_en", "load_addr", "load_data"):
        getattr(dut, port).value = 0
    image = stimuli["image"]
    for address, word in enumerate(image.tolist()):
        dut.weight_image[address].value = word
    dut.image_words.value = len(image)
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for chunk in plan_chunks(beats, steps * (n_out + 1), capacity):
        stream = [beat for index in chunk for beat in beats[index]]
        for address, beat in enumerate(stream):
            dut.in_beats[address].value = beat
        dut.samples.value = len(chunk)
        dut.go.value = 1
        await RisingEdge(dut.clk)
        dut.go.value = 0
        try:
            await with_timeout(RisingEdge(dut.finished), (len(chunk) * max_cycles + 10) * CLOCK_NS, "ns")
            expected = len(chunk)
        except SimTimeoutError:
            expected = int(dut.sample.value)
            error = f"sample {chunk.start + expected}: done did not rise within {max_cycles} cycles"
        chunk_rasters, chunk_cycles, problem = _collect(dut, expected, out_format, steps)
        if problem and not error:
            error = f"sample {len(cycles) + len(chunk_cycles)}: {problem}"
        rasters += chunk_rasters
        cycles += chunk_cycles
        if error:
            break
    np.savez(os.environ["SNN2HW_RESULTS"], rasters=np.array(rasters, np.uint8).reshape(-1, steps, n_out),
             cycles=np.array(cycles, np.int64), error=error)
    assert not error, error
