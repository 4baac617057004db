"""Spike emission from a layer's buffer of spike masks: the lowest-set-bit scan and the emitter FSM.

A layer core writes each timestep's spikes as ``groups`` masks of ``lanes`` bits (bit k of mask g: neuron
g*lanes + k fired) into one half of a double-buffered spike buffer and hands the half over; the emitter turns
it into events (see :mod:`snn2hw.hw.events`), lowest neuron first, then the end-of-timestep beat.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal

__all__ = ["lowest_set_bit", "emit_spikes", "SpikeGroups"]


def lowest_set_bit(m: Module, bits: Signal, lanes: int) -> tuple[Signal, Signal]:
    """``(remaining, lane)``: ``bits`` without its lowest set bit, and that bit's index (combinational).

    Carry-chain arithmetic instead of a priority-mux chain (it is on the path into the next layer):
    x & -x isolates the lowest set bit, x & (x - 1) clears it; the index is an OR of one-hot bits."""
    lowest, remaining = Signal(lanes), Signal(lanes)
    lane = Signal(range(max(lanes, 2)))
    m.d.comb += [lowest.eq(bits & (~bits + 1)), remaining.eq(bits & (bits - 1))]
    for b in range(len(lane)):
        m.d.comb += lane[b].eq((lowest & sum(1 << k for k in range(lanes) if k >> b & 1)).any())
    return remaining, lane


class SpikeGroups:
    """The groups of a handed-over timestep that have spikes, as the core hands them to the emitter (registers
    the emitter then updates): ``any`` (there is one), ``first`` (the lowest such group) and ``later`` (bit g:
    group g, a group with spikes after ``first``)."""

    def __init__(self, groups: int):
        self.any = Signal(name="spike_groups_any")
        self.first = Signal(range(max(groups, 2)), name="spike_groups_first")
        self.later = Signal(groups, name="spike_groups_later")


def emit_spikes(m: Module, mask_rd, full: Signal, emit_last: Signal, pending: SpikeGroups, groups: int, lanes: int,
                out, neuron_of=lambda group, lane, lanes: group * lanes + lane) -> None:
    """Send the spikes of the handed-over half of the spike buffer (``mask_rd`` reads it at
    ``Cat(group, half)``), then the end-of-timestep beat (``last`` = ``emit_last``) on stream ``out``; clear
    ``full`` when that beat is taken. ``pending``, filled by the core with the hand-over, names the groups
    that have spikes. A spike in ``lane`` of ``group`` is neuron ``neuron_of(group, lane, lanes)``. Costs: one
    cycle to read the first group's mask, then per group with spikes one cycle to load its mask and one per
    spike beat; groups without spikes cost nothing.

    The beat's lane, the group's spikes after it and whether there are any are registers, computed when the
    mask is loaded and after each beat, and so is the next group with spikes: the lowest-set-bit logic stays
    off the path from the consumer's ``ready`` to the next mask read and off the path into the consumer."""
    group_bits = len(mask_rd.addr) - 1
    group, half = Signal(group_bits), Signal()
    lane = Signal(range(max(lanes, 2)))                   # the spike being sent: its lane
    rest = Signal(lanes)                                  # the group's spikes after it
    rest_empty = Signal()                                 # rest == 0

    def load(mask):
        """Send the spikes of ``mask`` next: its lowest set bit first, then the others."""
        others, lowest = lowest_set_bit(m, mask, lanes)
        m.d.sync += [lane.eq(lowest), rest.eq(others), rest_empty.eq(others == 0)]

    def next_group():
        """Read the mask of the next group with spikes, or end the timestep."""
        with m.If(pending.any):
            m.d.comb += mask_rd.addr.eq(Cat(pending.first[:group_bits], half))
            m.d.sync += group.eq(pending.first)
            m.next = "SCAN"
        with m.Else():
            m.next = "END"

    later, following = lowest_set_bit(m, pending.later, groups)
    with m.FSM(name="emitter"):
        with m.State("IDLE"):
            with m.If(full):
                next_group()
        with m.State("SCAN"):                             # `group`'s mask is on mask_rd.data
            load(mask_rd.data)
            m.d.sync += [pending.any.eq(pending.later != 0), pending.first.eq(following),
                         pending.later.eq(later)]
            m.next = "SEND"
        with m.State("SEND"):
            m.d.comb += [out.valid.eq(1), out.payload.index.eq(neuron_of(group, lane, lanes))]
            with m.If(out.ready):
                load(rest)
                with m.If(rest_empty):
                    next_group()
        with m.State("END"):
            m.d.comb += [out.valid.eq(1), out.payload.eot.eq(1), out.payload.last.eq(emit_last)]
            with m.If(out.ready):
                m.d.sync += [full.eq(0), half.eq(~half)]
                m.next = "IDLE"
