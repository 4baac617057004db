"""The skid buffer in Amaranth's simulator: every beat crosses once, in order, under random valid/ready
patterns, and back-to-back beats cross one per cycle."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from snn2hw.hw.skid_buffer import SkidBuffer


def _run(offer_rate: float, take_rate: float, beats: int, seed: int) -> tuple[list[int], int]:
    """Send ``beats`` numbered beats through; (the beats received, cycles taken)."""
    dut = SkidBuffer(8)
    rng = np.random.default_rng(seed)
    received: list[int] = []
    cycles = [0]

    async def testbench(ctx):
        sent = 0
        while len(received) < beats:
            offer = sent < beats and rng.random() < offer_rate
            take = bool(rng.random() < take_rate)
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, sent % 256)
            ctx.set(dut.o.ready, take)
            if offer and ctx.get(dut.i.ready):
                sent += 1
            if take and ctx.get(dut.o.valid):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycles[0] += 1
            assert cycles[0] < 20 * beats + 10, "stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return received, cycles[0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("offer_rate, take_rate", [(0.5, 0.5), (1.0, 0.3), (0.3, 1.0), (0.9, 0.9)])
def test_every_beat_crosses_once_in_order(offer_rate, take_rate, seed):
    received, _ = _run(offer_rate, take_rate, 200, seed)
    assert received == [n % 256 for n in range(200)]


def test_back_to_back_beats_cross_one_per_cycle():
    received, cycles = _run(1.0, 1.0, 100, 0)
    assert received == list(range(100)) and cycles == 101     # one cycle of latency
