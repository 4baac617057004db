"""Spike emission from a layer's buffer of spike masks: the lowest-set-bit scan and the emitter FSM.

A layer core writes each timestep's spikes as ``groups`` masks of ``lanes`` bits (bit k of mask g: neuron
g*lanes + k fired) into one half of a double-buffered spike buffer and hands the half over; the emitter turns
it into events (see :mod:`snn2hw.hw.events`), lowest neuron first, then the end-of-timestep beat.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal

__all__ = ["lowest_set_bit", "emit_spikes", "SKIP_WINDOW"]


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


SKIP_WINDOW = 4     # groups the emitter looks ahead for the next group with spikes, per cycle


def emit_spikes(m: Module, mask_rd, full: Signal, emit_last: Signal, with_spikes: Signal, groups: int,
                lanes: int, out, neuron_of=lambda group, lane, lanes: group * lanes + lane) -> None:
    """Send the spikes of the handed-over half of the spike buffer (``mask_rd`` reads it at
    ``Cat(group, half)``), then the end-of-timestep beat (``last`` = ``emit_last``) on stream ``out``; clear
    ``full`` when that beat is taken. ``with_spikes`` (bit g: group g has spikes), loaded by the core with
    the hand-over, is shifted down as the emitter moves on. A spike in ``lane`` of ``group`` is neuron
    ``neuron_of(group, lane, lanes)``. Costs: per group with spikes, one cycle to read its mask (the first
    from the cycle after the hand-over) and one to load it, then one per spike beat; the emitter moves to the
    next group with spikes at once if it lies within :data:`SKIP_WINDOW` groups, else spends a cycle per
    window it passes; the end-of-timestep beat follows the last group with spikes.

    The beat's lane, the group's spikes after it and whether there are any are registers, computed when the
    mask is loaded and after each beat: the lowest-set-bit logic stays off the path from the consumer's
    ``ready`` to the next mask read and off the path into the consumer."""
    group_bits = len(mask_rd.addr) - 1
    none = (1 << group_bits) - 1                          # `group` before the first: all ones, one below 0
    group, half = Signal(group_bits, init=none), Signal()  # the group read last
    lane = Signal(range(max(lanes, 2)))                   # the spike being sent: its lane
    rest = Signal(lanes)                                  # the group's spikes after it
    rest_empty = Signal()                                 # rest == 0
    window = min(SKIP_WINDOW, groups)
    _, step = lowest_set_bit(m, with_spikes[:window], window)

    def load(mask):
        """Send the spikes of ``mask`` next: its lowest set bit first, then the others."""
        others, lowest = lowest_set_bit(m, mask, lanes)
        m.d.sync += [lane.eq(lowest), rest.eq(others), rest_empty.eq(others == 0)]

    def next_group():
        """Read the mask of the next group with spikes (``with_spikes`` bit 0 is the group after ``group``),
        pass a window without any, or end the timestep."""
        with m.If(with_spikes[:window] != 0):
            target = (group + 1 + step)[:group_bits]
            m.d.comb += mask_rd.addr.eq(Cat(target, half))
            m.d.sync += [group.eq(target), with_spikes.eq(with_spikes >> (step + 1))]
            m.next = "SCAN"
        with m.Elif(with_spikes != 0):
            m.d.sync += [group.eq(group + window), with_spikes.eq(with_spikes >> window)]
            m.next = "SKIP"
        with m.Else():
            m.next = "END"

    with m.FSM(name="emitter"):
        with m.State("IDLE"):
            with m.If(full):
                next_group()
        with m.State("SKIP"):
            next_group()
        with m.State("SCAN"):                             # `group`'s mask is on mask_rd.data
            load(mask_rd.data)
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
                m.d.sync += [full.eq(0), half.eq(~half), group.eq(none)]
                m.next = "IDLE"
