"""A layer's weight memory: block RAM initialised by the bitstream, SPRAM loaded after reset, or both.

Reads behave like a synchronous read port: the word at ``addr`` in cycle c is on ``data`` in cycle c+1.
Lanes ``[0, spram_lanes)`` come from SPRAM columns (see :mod:`snn2hw.passes.mapping`), the others from an
initialised block-RAM memory read at the same address. SPRAM contents arrive on the ``load`` stream after
reset, 16-bit words in the order of :meth:`~snn2hw.passes.mapping.LayerMapping.spram_image`; ``loaded``
rises once the last word is written (at once for a layer without SPRAM) and stays high until reset.
Reads are meaningful only once ``loaded`` is high. Binary weights (``binary_weights``) are stored as one bit b
and read out as 2b - 1.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir import Layer
from ..passes.mapping import SPRAM_DEPTH, SPRAM_WIDTH, LayerMapping

__all__ = ["WeightMemory", "SPRAMBlock", "load_stream"]


def load_stream() -> stream.Signature:
    return stream.Signature(SPRAM_WIDTH)


class SPRAMBlock(wiring.Component):
    """One 16-bit single-port RAM of ``depth`` words: write ``din`` at ``addr`` when ``we``, else read
    ``addr`` (``dout`` next cycle, held while writing). ``primitive`` instantiates the iCE40 UP5K
    ``SB_SPRAM256KA``; otherwise an Amaranth memory with the same behaviour (for Amaranth simulation)."""

    def __init__(self, depth: int, primitive: bool):
        if not 1 <= depth <= SPRAM_DEPTH:
            raise ValueError(f"SPRAM depth must be in [1, {SPRAM_DEPTH}], got {depth}")
        self.depth, self.primitive = depth, primitive
        super().__init__({"addr": In(range(SPRAM_DEPTH)), "din": In(SPRAM_WIDTH), "we": In(1),
                          "dout": Out(SPRAM_WIDTH)})

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA", i_CLOCK=ClockSignal(), i_ADDRESS=self.addr,
                i_DATAIN=self.din, i_MASKWREN=0b1111, i_WREN=self.we, i_CHIPSELECT=1, i_STANDBY=0, i_SLEEP=0,
                i_POWEROFF=1, o_DATAOUT=self.dout)
            return m
        m.submodules.mem = mem = memory.Memory(shape=SPRAM_WIDTH, depth=self.depth, init=[])
        write, read = mem.write_port(), mem.read_port()
        m.d.comb += [write.addr.eq(self.addr), write.data.eq(self.din), write.en.eq(self.we),
                     read.addr.eq(self.addr), read.en.eq(~self.we), self.dout.eq(read.data)]
        return m


class WeightMemory(wiring.Component):
    """Ports: ``addr`` (in), ``data`` (out, ``weight_lanes`` signed weights), ``load`` (in stream of 16-bit
    words), ``loaded`` (out level)."""

    def __init__(self, layer: Layer, mapping: LayerMapping, spram_primitive: bool = True):
        self.layer, self.mapping, self.spram_primitive = layer, mapping, spram_primitive
        super().__init__({
            "addr": In(range(max(mapping.weight_words, 2))),
            "data": Out(data.ArrayLayout(signed(mapping.weight_value_bits), mapping.weight_lanes)),
            "load": In(load_stream()),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        if mp.block_ram_lanes:
            m.submodules.block_ram = block_ram = memory.Memory(
                shape=data.ArrayLayout(mp.weight_bits if mp.binary_weights else signed(mp.weight_bits),
                                       mp.block_ram_lanes), depth=mp.weight_words,
                init=mp.weight_words_init(self.layer))
            read = block_ram.read_port()
            m.d.comb += read.addr.eq(self.addr)
            for k in range(mp.block_ram_lanes):
                m.d.comb += self.data[mp.spram_lanes + k].eq(self._value(read.data[k]))
        if not mp.spram_lanes:
            m.d.comb += self.loaded.eq(1)
            return m

        column = Signal(range(mp.spram_columns + 1))
        address = Signal(range(max(mp.weight_words, 2)))
        writing = self.load.valid & ~self.loaded
        m.d.comb += self.load.ready.eq(~self.loaded)
        with m.If(writing):
            m.d.sync += address.eq(address + 1)
            with m.If(address == mp.weight_words - 1):
                m.d.sync += [address.eq(0), column.eq(column + 1)]
                with m.If(column == mp.spram_columns - 1):
                    m.d.sync += self.loaded.eq(1)

        field = mp.spram_field_bits
        for c in range(mp.spram_columns):
            block = SPRAMBlock(mp.weight_words, self.spram_primitive)
            m.submodules[f"spram{c}"] = block
            m.d.comb += [block.addr.eq(Mux(self.loaded, self.addr, address)), block.din.eq(self.load.payload),
                         block.we.eq(writing & (column == c))]
            for k in range(mp.lanes_per_column):
                lane = c * mp.lanes_per_column + k
                if lane < mp.spram_lanes:
                    m.d.comb += self.data[lane].eq(self._value(block.dout[k * field:(k + 1) * field]))
        return m

    def _value(self, stored):
        """The weight a stored field holds: two's complement, or a binary weight's 2b - 1."""
        return Mux(stored[0], 1, -1) if self.mapping.binary_weights else stored.as_signed()
