"""A simulation harness around the emitted accelerator, so that RTL simulation runs at Verilator's speed.

The harness (``snn_harness``) instantiates the accelerator's Verilog module as a black box (the file in
OUTDIR, as it is) and plays the host of :mod:`snn2hw.verify.protocol` in hardware: for each sample it
pulses ``start`` (cycle 0), offers the stored input beats from cycle 1 on, takes every output beat, and
when ``done`` is seen at cycle N it stores N as the sample's cycle count. No Python runs per clock cycle.

Its memories live outside it, in the simulation top ``rtl_templates/snn_sim_top.sv`` (which loads and
dumps them as files): the harness reads ``in_beats`` (input beats of all samples back to back, each sample
ending with its end-of-timestep + last beat) and ``weight_image`` through address/data ports and writes
``out_beats`` and ``sample_cycles`` through enable/address/data ports. The first ``go`` streams
``image_words`` words of ``weight_image`` (the accelerator's SPRAM weight words) into ``w_load`` before
the first sample, as a board does after reset; those cycles do not count towards any sample. The beats of the
accelerator's membrane readout (``o_membranes``) are written through ``mem_en``/``mem_addr``/``mem_data``,
``mem_count`` of them, all samples back to back.

Timeouts: a sample whose ``done`` has not risen by cycle ``max_cycles``, or a weight image load that
takes no word (and does not finish) for ``max_cycles`` cycles, ends the run with ``timed_out``;
``completed`` tells how many samples finished before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.accelerator import TOP_NAME
from ..hw.events import EventFormat

__all__ = ["StimulusHarness", "HARNESS_NAME", "HarnessCapacity", "CYCLE_BITS", "IMAGE_WORD_BITS", "beat_width"]

HARNESS_NAME = "snn_harness"
CYCLE_BITS = 32
IMAGE_WORD_BITS = 16


def beat_width(neurons: int) -> int:
    """Bits of one packed event beat of a population of ``neurons`` (index, eot, last)."""
    return EventFormat(neurons).index_bits + 2


@dataclass(frozen=True)
class HarnessCapacity:
    """What one harness run can hold: input beats, output beats, samples, weight image words and membrane
    readout beats."""

    in_beats: int = 1 << 20
    out_beats: int = 1 << 20
    samples: int = 1 << 14
    image_words: int = 1 << 16
    membrane_beats: int = 1 << 16


class StimulusHarness(wiring.Component):
    """Ports: ``go`` (pulse: run ``samples`` samples from the start of ``in_beats``), ``samples``,
    ``image_words``, ``max_cycles``; ``finished`` (level, until the next ``go``), ``timed_out``,
    ``completed`` (samples finished), ``out_count`` (output beats stored), ``mem_count`` (membrane beats
    stored), ``loaded`` (the accelerator's); the memory ports ``in_addr``/``in_data``,
    ``image_addr``/``image_data`` (combinational reads) and ``out_en``/``out_addr``/``out_data``,
    ``cycles_en``/``cycles_addr``/``cycles_data``, ``mem_en``/``mem_addr``/``mem_data`` (writes;
    ``membrane_width`` bits a beat)."""

    def __init__(self, n_in: int, n_out: int, membrane_width: int, capacity: HarnessCapacity = HarnessCapacity()):
        self.in_format, self.capacity = EventFormat(n_in), capacity
        super().__init__({
            "go": In(1), "samples": In(range(capacity.samples + 1)),
            "image_words": In(range(capacity.image_words + 1)), "max_cycles": In(CYCLE_BITS),
            "finished": Out(1), "timed_out": Out(1), "completed": Out(range(capacity.samples + 1)),
            "out_count": Out(range(capacity.out_beats + 1)), "loaded": Out(1),
            "in_addr": Out(range(capacity.in_beats)), "in_data": In(beat_width(n_in)),
            "image_addr": Out(range(capacity.image_words)), "image_data": In(IMAGE_WORD_BITS),
            "out_en": Out(1), "out_addr": Out(range(capacity.out_beats)), "out_data": Out(beat_width(n_out)),
            "cycles_en": Out(1), "cycles_addr": Out(range(capacity.samples)), "cycles_data": Out(CYCLE_BITS),
            "mem_count": Out(range(capacity.membrane_beats + 1)), "mem_en": Out(1),
            "mem_addr": Out(range(capacity.membrane_beats)), "mem_data": Out(membrane_width),
        })

    def elaborate(self, platform):
        m = Module()
        cap, fin = self.capacity, self.in_format

        start, done = Signal(), Signal()
        i_valid, i_ready, o_valid = Signal(), Signal(), Signal()
        w_valid, w_ready = Signal(), Signal()
        m.submodules.dut = Instance(
            TOP_NAME, i_clk=ClockSignal(), i_rst=ResetSignal(), i_start=start, o_done=done,
            i_i_spikes__valid=i_valid, o_i_spikes__ready=i_ready, i_i_spikes__payload=self.in_data,
            o_o_spikes__valid=o_valid, i_o_spikes__ready=1, o_o_spikes__payload=self.out_data,
            i_w_load__valid=w_valid, o_w_load__ready=w_ready, i_w_load__payload=self.image_data,
            o_loaded=self.loaded, o_o_membranes__valid=self.mem_en, o_o_membranes__payload=self.mem_data)
        image_position = Signal(range(cap.image_words + 1))
        position = Signal(range(cap.in_beats + 1))
        cycle = Signal(CYCLE_BITS)
        sent_last = Signal()
        last_bits = (1 << fin.index_bits) | (1 << (fin.index_bits + 1))   # eot and last
        m.d.comb += [self.image_addr.eq(image_position), self.in_addr.eq(position),
                     self.out_en.eq(o_valid), self.out_addr.eq(self.out_count),
                     self.cycles_addr.eq(self.completed), self.cycles_data.eq(cycle)]
        m.d.comb += self.mem_addr.eq(self.mem_count)
        with m.If(o_valid):
            m.d.sync += self.out_count.eq(self.out_count + 1)
        with m.If(self.mem_en):
            m.d.sync += self.mem_count.eq(self.mem_count + 1)

        def time_out():
            m.d.sync += [self.finished.eq(1), self.timed_out.eq(1)]
            m.next = "IDLE"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [position.eq(0), self.completed.eq(0), self.out_count.eq(0), cycle.eq(0),
                                 self.mem_count.eq(0), self.finished.eq(0), self.timed_out.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += w_valid.eq(~self.loaded & (image_position < self.image_words))
                m.d.sync += cycle.eq(cycle + 1)
                with m.If(self.loaded):
                    m.next = "START"
                with m.Elif(w_valid & w_ready):
                    m.d.sync += [image_position.eq(image_position + 1), cycle.eq(0)]
                with m.Elif(cycle + 1 == self.max_cycles):
                    time_out()
            with m.State("START"):
                m.d.comb += start.eq(1)
                m.d.sync += [cycle.eq(1), sent_last.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += cycle.eq(cycle + 1)
                m.d.comb += i_valid.eq(~sent_last)
                with m.If(i_valid & i_ready):
                    m.d.sync += position.eq(position + 1)
                    with m.If((self.in_data & last_bits) == last_bits):
                        m.d.sync += sent_last.eq(1)
                with m.If(done):
                    m.d.comb += self.cycles_en.eq(1)
                    m.d.sync += self.completed.eq(self.completed + 1)
                    with m.If(self.completed + 1 == self.samples):
                        m.d.sync += self.finished.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "START"
                with m.Elif(cycle == self.max_cycles):
                    time_out()
        return m
