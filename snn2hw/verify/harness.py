"""A simulation harness around the emitted accelerator, so that RTL simulation runs at Verilator's speed.

The harness (``snn_harness``) instantiates the accelerator's Verilog module as a black box (the file in
OUTDIR, as it is) and plays the host of :mod:`snn2hw.verify.protocol` in hardware: for each sample it
pulses ``start`` (cycle 0), offers the stored input beats from cycle 1 on, takes every output beat, and
when ``done`` is seen at cycle N it stores N as the sample's cycle count. The testbench only loads the
beat memory, pulses ``go`` and waits for ``finished``: no Python runs per clock cycle.

Memories (written and read by the testbench through the simulator): ``in_beats`` (input beats of all
samples back to back, each sample ending with its end-of-timestep + last beat), ``out_beats`` and
``sample_cycles``. ``load_*`` ports also write ``in_beats``; they keep the memory writable, so synthesis
cannot fold it into a constant. ``weight_image`` holds the accelerator's SPRAM weight words
(``image_words`` of them): the first ``go`` streams them into ``w_load`` before the first sample, as a
board does after reset; those cycles do not count towards any sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..hw.accelerator import TOP_NAME
from ..hw.events import EventFormat

__all__ = ["StimulusHarness", "HARNESS_NAME", "HarnessCapacity"]

HARNESS_NAME = "snn_harness"
CYCLE_BITS = 32


@dataclass(frozen=True)
class HarnessCapacity:
    """What one harness run can hold: input beats, output beats and samples."""

    in_beats: int = 1 << 15
    out_beats: int = 1 << 15
    samples: int = 512
    image_words: int = 1 << 16


class StimulusHarness(wiring.Component):
    """Ports: ``go`` (pulse: run ``samples`` samples from the start of ``in_beats``), ``samples``,
    ``finished`` (level, until the next ``go``), ``out_count`` (output beats stored), ``load_*``."""

    def __init__(self, n_in: int, n_out: int, capacity: HarnessCapacity = HarnessCapacity()):
        self.in_format, self.out_format, self.capacity = EventFormat(n_in), EventFormat(n_out), capacity
        in_width = self.in_format.index_bits + 2
        super().__init__({
            "go": In(1), "samples": In(range(capacity.samples + 1)),
            "image_words": In(range(capacity.image_words + 1)),
            "finished": Out(1), "out_count": Out(range(capacity.out_beats + 1)),
            "load_en": In(1), "load_addr": In(range(capacity.in_beats)), "load_data": In(in_width),
        })

    def elaborate(self, platform):
        m = Module()
        cap, fin, fout = self.capacity, self.in_format, self.out_format
        m.submodules.in_beats = in_beats = memory.Memory(shape=unsigned(fin.index_bits + 2), depth=cap.in_beats,
                                                         init=[])
        m.submodules.out_beats = out_beats = memory.Memory(shape=unsigned(fout.index_bits + 2),
                                                           depth=cap.out_beats, init=[])
        m.submodules.sample_cycles = sample_cycles = memory.Memory(shape=unsigned(CYCLE_BITS), depth=cap.samples,
                                                                   init=[])
        m.submodules.weight_image = weight_image = memory.Memory(shape=unsigned(16), depth=cap.image_words,
                                                                 init=[])
        image_word = weight_image.read_port(domain="comb")
        beat, loader = in_beats.read_port(domain="comb"), in_beats.write_port()
        out_wr, cycles_wr = out_beats.write_port(), sample_cycles.write_port()
        m.d.comb += [loader.en.eq(self.load_en), loader.addr.eq(self.load_addr), loader.data.eq(self.load_data)]

        start, done = Signal(), Signal()
        i_valid, i_ready = Signal(), Signal()
        o_valid, o_payload = Signal(), Signal(fout.index_bits + 2)
        w_valid, w_ready, loaded = Signal(), Signal(), Signal()
        m.submodules.dut = Instance(
            TOP_NAME, i_clk=ClockSignal(), i_rst=ResetSignal(), i_start=start, o_done=done,
            i_i_spikes__valid=i_valid, o_i_spikes__ready=i_ready, i_i_spikes__payload=beat.data,
            o_o_spikes__valid=o_valid, i_o_spikes__ready=1, o_o_spikes__payload=o_payload,
            i_w_load__valid=w_valid, o_w_load__ready=w_ready, i_w_load__payload=image_word.data,
            o_loaded=loaded)
        image_position = Signal(range(cap.image_words + 1))
        m.d.comb += image_word.addr.eq(image_position)

        position = Signal(range(cap.in_beats + 1))
        sample = Signal(range(cap.samples + 1))
        cycle = Signal(CYCLE_BITS)
        sent_last = Signal()
        last_bits = (1 << fin.index_bits) | (1 << (fin.index_bits + 1))   # eot and last
        m.d.comb += beat.addr.eq(position)

        with m.If(o_valid):
            m.d.comb += [out_wr.en.eq(1), out_wr.addr.eq(self.out_count), out_wr.data.eq(o_payload)]
            m.d.sync += self.out_count.eq(self.out_count + 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [position.eq(0), sample.eq(0), self.out_count.eq(0), self.finished.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += w_valid.eq(~loaded & (image_position < self.image_words))
                with m.If(w_valid & w_ready):
                    m.d.sync += image_position.eq(image_position + 1)
                with m.If(loaded):
                    m.next = "START"
            with m.State("START"):
                m.d.comb += start.eq(1)
                m.d.sync += [cycle.eq(1), sent_last.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += cycle.eq(cycle + 1)
                m.d.comb += i_valid.eq(~sent_last)
                with m.If(i_valid & i_ready):
                    m.d.sync += position.eq(position + 1)
                    with m.If((beat.data & last_bits) == last_bits):
                        m.d.sync += sent_last.eq(1)
                with m.If(done):
                    m.d.comb += [cycles_wr.en.eq(1), cycles_wr.addr.eq(sample), cycles_wr.data.eq(cycle)]
                    m.d.sync += sample.eq(sample + 1)
                    with m.If(sample + 1 == self.samples):
                        m.d.sync += self.finished.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "START"
        return m
