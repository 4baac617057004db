"""The spike emitter in Amaranth's simulator, between a stand-in for a layer core (it writes each timestep's
masks into the free half of the spike buffer and hands it over) and a consumer whose ``ready`` is random: every
spike leaves once, lowest neuron first, then the end-of-timestep beat, for group counts around its window of
four; back to back when the consumer always takes."""

import numpy as np
import pytest
from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.lib import memory, stream
from amaranth.sim import Simulator

from snn2hw.hw.events import event_layout
from snn2hw.hw.spike_emitter import SpikeEmitter


class _Harness(Elaboratable):
    """A spike buffer of ``groups`` masks of ``lanes`` bits per half and its emitter. Drive ``write_group`` /
    ``write_mask`` / ``write`` to fill the free half, ``groups_in`` and ``hand`` to hand it over (taken
    while ``full`` is low)."""

    def __init__(self, groups: int, lanes: int):
        self.groups, self.lanes = groups, lanes
        self.write_group = Signal(range(max(groups, 2)))
        self.write_mask, self.write = Signal(lanes), Signal()
        self.groups_in, self.hand, self.full = Signal(groups), Signal(), Signal()
        self.out = stream.Signature(event_layout(groups * lanes)).create()

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(shape=self.lanes, depth=2 << len(self.write_group), init=[])
        write_port, read_port = buffer.write_port(), buffer.read_port()
        write_half = Signal()
        emitter = SpikeEmitter(m, self.groups, self.lanes)
        m.d.comb += [write_port.addr.eq(Cat(self.write_group, write_half)), write_port.data.eq(self.write_mask),
                     write_port.en.eq(self.write)]
        with m.If(self.hand & ~self.full):
            m.d.sync += [self.full.eq(1), write_half.eq(~write_half)]
            emitter.hand_over(self.groups_in)
        emitter.emit(read_port, self.full, Signal(), self.out)
        return m


def _run(groups: int, lanes: int, masks: np.ndarray, take_rate: float, seed: int) -> tuple[list, int]:
    """Emit ``masks`` [T, groups] (ints of ``lanes`` bits); (the beats received as (index, eot), cycles)."""
    dut = _Harness(groups, lanes)
    rng = np.random.default_rng(seed)
    received: list[tuple[int, bool]] = []
    cycles = [0]

    async def core(ctx):
        for step in masks:
            for group, mask in enumerate(step.tolist()):      # the free half, while the other one is emitted
                ctx.set(dut.write_group, group)
                ctx.set(dut.write_mask, mask)
                ctx.set(dut.write, 1)
                await ctx.tick()
            ctx.set(dut.write, 0)
            ctx.set(dut.groups_in, sum(1 << g for g, mask in enumerate(step.tolist()) if mask))
            while ctx.get(dut.full):
                await ctx.tick()
            ctx.set(dut.hand, 1)
            await ctx.tick()
            ctx.set(dut.hand, 0)

    async def consumer(ctx):
        while sum(eot for _, eot in received) < len(masks):
            take = bool(rng.random() < take_rate)
            ctx.set(dut.out.ready, take)
            if take and ctx.get(dut.out.valid):
                payload = ctx.get(dut.out.payload)
                received.append((payload.index, bool(payload.eot)))
            await ctx.tick()
            cycles[0] += 1
            assert cycles[0] < 100 * masks.size + 100, "stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(core)
    sim.add_testbench(consumer)
    sim.run()
    return received, cycles[0]


def _expected(masks: np.ndarray, lanes: int) -> list[tuple[int, bool]]:
    beats = []
    for step in masks.tolist():
        beats += [(group * lanes + lane, False) for group, mask in enumerate(step) for lane in range(lanes)
                  if mask >> lane & 1]
        beats.append((0, True))
    return beats


@pytest.mark.parametrize("groups, lanes", [(1, 1), (3, 2), (4, 4), (5, 1), (9, 3), (32, 4)])
@pytest.mark.parametrize("take_rate", [1.0, 0.4])
def test_every_spike_leaves_once_lowest_first_then_the_end_of_timestep(groups, lanes, take_rate):
    rng = np.random.default_rng(groups * 10 + lanes)
    density = rng.choice([0.0, 0.1, 0.5, 1.0], size=(12, 1))    # silent, sparse, dense and full timesteps
    bits = rng.random((12, groups, lanes)) < density[:, :, None]
    masks = (bits * (1 << np.arange(lanes))).sum(axis=2)
    received, _ = _run(groups, lanes, masks, take_rate, seed=groups)
    assert received == _expected(masks, lanes)


def test_spikes_leave_back_to_back_across_groups():
    masks = np.array([[1, 1, 0, 0, 0, 0, 0, 0, 1, 3, 1, 1]])     # 7 spikes in 6 groups; window 1 holds none
    received, cycles = _run(12, 2, masks, 1.0, seed=0)
    assert received == _expected(masks, 2)
    # 12 cycles to write the masks, the hand-over, then: first read, its mask taken, 7 beats at one per cycle
    # with one window passed, and the end-of-timestep beat
    assert cycles == 12 + 1 + 2 + 7 + 1 + 1
