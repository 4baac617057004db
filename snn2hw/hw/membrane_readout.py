"""The membrane readout: the last layer's membranes, one word of ``lanes`` neurons per beat.

During the fire pass of every timestep the last layer core sends, for each group g in order 0 .. groups-1,
one beat holding the membranes v[t] of its ``lanes`` slots: neurons ``g*lanes .. g*lanes + lanes - 1``, or
for a convolution layer those of :meth:`snn2hw.passes.mapping.LayerMapping.slot_neurons` (the saturated state
after the update, before any reset, as :func:`snn2hw.golden.run` records it; slots past ``n_out`` are
padding). There is no backpressure: a receiver takes every beat (``valid`` for one cycle), or leaves the
port unconnected (the board top, where synthesis then removes its registers). Values are packed LSB first,
lane 0 in the lowest ``bits`` bits, each two's complement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

__all__ = ["MembraneFormat", "membrane_stream"]


@dataclass(frozen=True)
class MembraneFormat:
    """The beats of ``n_out`` neurons in ``groups`` groups of ``lanes``, ``bits``-bit signed values; ``slots``
    names each slot's neuron (None: slot order is neuron order)."""

    n_out: int
    lanes: int
    groups: int
    bits: int
    slots: tuple[int, ...] | None = None

    @classmethod
    def of(cls, mapping, state_bits: int) -> "MembraneFormat":
        """The readout of a layer core with :class:`~snn2hw.passes.mapping.LayerMapping` ``mapping``: its
        groups of lanes of ``state_bits``-bit membranes, in its slot order."""
        slots = tuple(mapping.slot_neurons().tolist()) if mapping.conv is not None else None
        return cls(mapping.n_out, mapping.lanes, mapping.groups, state_bits, slots)

    @property
    def width(self) -> int:
        """Bits of one packed beat."""
        return self.lanes * self.bits

    def layout(self) -> data.ArrayLayout:
        return data.ArrayLayout(signed(self.bits), self.lanes)

    def decode(self, beats: np.ndarray | list[int], steps: int) -> np.ndarray:
        """int64 [T, n_out] membranes of one inference's ``steps * groups`` packed beats (Python ints)."""
        if len(beats) != steps * self.groups:
            raise ValueError(f"{len(beats)} membrane beats for {steps} timesteps of {self.groups} groups")
        mask, sign = (1 << self.bits) - 1, 1 << (self.bits - 1)
        values = [((int(beat) >> (k * self.bits) & mask) ^ sign) - sign for beat in beats for k in range(self.lanes)]
        by_slot = np.array(values, np.int64).reshape(steps, self.groups * self.lanes)
        if self.slots is None:
            return by_slot[:, :self.n_out]
        by_neuron = np.zeros((steps, self.n_out + 1), np.int64)
        by_neuron[:, list(self.slots)] = by_slot
        return by_neuron[:, :self.n_out]


def membrane_stream(fmt: MembraneFormat) -> wiring.Signature:
    """``valid`` and ``payload`` (the lanes' values), no ``ready``: see the module docstring."""
    return wiring.Signature({"valid": Out(1), "payload": Out(fmt.layout())})
