"""Spike event streams: the address-event representation used between the host and layers.

A stream carries, per timestep, one beat per spiking neuron (``index``, ascending; from a convolution, position by
position, each position's channels ascending) and then one end-of-timestep beat (``eot`` = 1). The end-of-timestep
beat of an inference's final timestep also has ``last`` = 1. Beats are packed LSB first: ``index`` (``index_bits``
wide), then ``eot``, then ``last``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, stream

__all__ = ["EventFormat", "event_layout", "event_stream"]


@dataclass(frozen=True)
class EventFormat:
    """Bit packing of one event beat for a population of ``neurons`` neurons."""

    neurons: int

    @property
    def index_bits(self) -> int:
        return max(1, (self.neurons - 1).bit_length())

    def pack(self, index: int = 0, eot: bool = False, last: bool = False) -> int:
        return index | int(eot) << self.index_bits | int(last) << (self.index_bits + 1)

    def unpack(self, word: int) -> tuple[int, bool, bool]:
        """Return (index, eot, last) of a packed beat."""
        index = word & ((1 << self.index_bits) - 1)
        return index, bool(word >> self.index_bits & 1), bool(word >> (self.index_bits + 1) & 1)


def event_layout(neurons: int) -> data.StructLayout:
    return data.StructLayout({"index": unsigned(EventFormat(neurons).index_bits), "eot": 1, "last": 1})


def event_stream(neurons: int) -> stream.Signature:
    return stream.Signature(event_layout(neurons))
