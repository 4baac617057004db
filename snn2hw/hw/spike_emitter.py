"""Spike emission from a layer's buffer of spike masks: the lowest-set-bit scan and the emitter FSM.

A layer core writes each timestep's spikes as ``groups`` masks of ``lanes`` bits (bit k of mask g: neuron
g*lanes + k fired) into one half of a double-buffered spike buffer and hands the half over; the emitter turns
it into events (see :mod:`snn2hw.hw.events`), lowest neuron first, then the end-of-timestep beat.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal

__all__ = ["lowest_set_bit", "SpikeEmitter", "SKIP_WINDOW"]


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


class SpikeEmitter:
    """Sends the spikes of the handed-over half of a layer's spike buffer, then the end-of-timestep beat.

    The core calls :meth:`hand_over` in the cycle it hands a half over and :meth:`emit` once to build the
    emitter. Costs: per group with spikes, one cycle to read its mask (the first from the cycle after the
    hand-over) and one to load it, then one per spike beat; the emitter moves to the next group with spikes at
    once if it lies within :data:`SKIP_WINDOW` groups, else spends a cycle per window it passes; the
    end-of-timestep beat follows the last group with spikes.

    Every value on the path to the buffer's read address is a register: the beat's lane, the group's spikes
    after it and whether there are any are computed when the mask is loaded and after each beat, and the next
    group to read (``ahead_*``) one cycle before it is read: at the hand-over, when a mask is loaded (the
    cycle before its beats) and when a window is passed. The lowest-set-bit logic stays off the path from the
    consumer's ``ready`` to the next mask read and off the path into the consumer."""

    def __init__(self, m: Module, groups: int, lanes: int):
        self._m, self._groups, self._lanes = m, groups, lanes
        self._window = min(SKIP_WINDOW, groups)
        self._group_bits = len(Signal(range(max(groups, 2))))
        self._none = (1 << self._group_bits) - 1          # `group` before the first: all ones, one below 0
        self.group = Signal(self._group_bits, init=self._none)   # the group read last
        # Bit g: the group g + 1 after `group` has spikes (shifted down as the emitter moves on).
        self.with_spikes = Signal(groups, name="groups_to_emit")
        self._ahead_hit = Signal()                        # a group within the window after `group` has spikes
        self._ahead_group = Signal(self._group_bits)      # the first of them
        self._ahead_shift = Signal(range(self._window + 1))  # how far `with_spikes` shifts to reach it

    def _look_ahead(self, window_bits, group, passed: int = 0) -> None:
        """Register the first group with spikes after ``group`` + ``passed``, given the window's bits
        ``window_bits`` (bit k: group ``group + passed + 1 + k``). The distances are a priority choice over the
        window's few bits, so the only carry chain is one add to ``group``."""
        m = self._m
        shift = Signal(range(self._window + 1))           # the distance from `group + passed`
        offset = Signal(range(passed + self._window + 1))  # the distance from `group`
        for k in reversed(range(self._window)):
            with m.If(window_bits[k]):
                m.d.comb += [shift.eq(k + 1), offset.eq(passed + k + 1)]
        m.d.sync += [self._ahead_hit.eq(window_bits != 0), self._ahead_group.eq(group + offset),
                     self._ahead_shift.eq(shift)]

    def hand_over(self, groups_with_spikes: Signal) -> None:
        """Take the groups with spikes of the half being handed over (bit g: group g has spikes)."""
        self._m.d.sync += self.with_spikes.eq(groups_with_spikes)
        self._look_ahead(groups_with_spikes[:self._window], self._none)

    def emit(self, mask_rd, full: Signal, emit_last: Signal, out,
             neuron_of=lambda group, lane, lanes: group * lanes + lane) -> None:
        """Send the spikes of the handed-over half (``mask_rd`` reads it at ``Cat(group, half)``), then the
        end-of-timestep beat (``last`` = ``emit_last``) on stream ``out``; clear ``full`` when that beat is
        taken. A spike in ``lane`` of ``group`` is neuron ``neuron_of(group, lane, lanes)``."""
        m, lanes, window, group, with_spikes = self._m, self._lanes, self._window, self.group, self.with_spikes
        half = Signal()
        lane = Signal(range(max(lanes, 2)))               # the spike being sent: its lane
        rest = Signal(lanes)                              # the group's spikes after it
        rest_empty = Signal()                             # rest == 0

        def load(mask):
            """Send the spikes of ``mask`` next: its lowest set bit first, then the others."""
            others, lowest = lowest_set_bit(m, mask, lanes)
            m.d.sync += [lane.eq(lowest), rest.eq(others), rest_empty.eq(others == 0)]

        def next_group():
            """Read the mask of the next group with spikes, pass a window without any, or end the timestep."""
            with m.If(self._ahead_hit):
                m.d.comb += mask_rd.addr.eq(Cat(self._ahead_group, half))
                m.d.sync += [group.eq(self._ahead_group), with_spikes.eq(with_spikes >> self._ahead_shift)]
                m.next = "SCAN"
            with m.Else():      # pass the window (moot if the timestep ends: END resets `group`)
                m.d.sync += [group.eq(group + window), with_spikes.eq(with_spikes >> window)]
                self._look_ahead(Cat(with_spikes[window:], Const(0, window))[:window], group, window)
                with m.If(with_spikes != 0):
                    m.next = "SKIP"
                with m.Else():
                    m.next = "END"

        with m.FSM(name="emitter"):
            with m.State("IDLE"):
                with m.If(full):
                    next_group()
            with m.State("SKIP"):
                next_group()
            with m.State("SCAN"):                         # `group`'s mask is on mask_rd.data
                load(mask_rd.data)
                self._look_ahead(with_spikes[:window], group)
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
                    m.d.sync += [full.eq(0), half.eq(~half), group.eq(self._none)]
                    m.next = "IDLE"
