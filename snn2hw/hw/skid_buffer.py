"""A skid buffer: a register slice of a valid/ready stream at full throughput.

Every output of the slice (``o.valid``, ``o.payload`` and ``i.ready``) comes from a register, so no
combinational path crosses it in either direction: the receiver's ``ready`` logic and the sender's
``valid``/``payload`` logic end at the slice. A beat takes at least one cycle to cross; back-to-back beats
still cross one per cycle. The second register holds the beat that arrived in the cycle the receiver stopped
taking (``i.ready`` only falls a cycle later).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Ports: ``i`` (in stream of ``shape``), ``o`` (out stream of ``shape``)."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        spare, spare_valid = Signal.like(self.i.payload), Signal()
        m.d.comb += self.i.ready.eq(~spare_valid)
        taken = self.o.valid & self.o.ready
        with m.If(~self.o.valid | taken):            # the output register is free (or is freed) this cycle
            with m.If(spare_valid):
                m.d.sync += [self.o.payload.eq(spare), self.o.valid.eq(1), spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):    # the output is held: park the arriving beat
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m
