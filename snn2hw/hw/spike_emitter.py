"""Spike emission from a layer's buffer of spike masks: the lowest-set-bit scan and the emitter FSM.

A layer core writes each timestep's spikes as ``groups`` masks of ``lanes`` bits (bit k of mask g: neuron
g*lanes + k fired) into one half of a double-buffered spike buffer and hands the half over; the emitter turns
it into events (see :mod:`snn2hw.hw.events`) in slot order (a dense layer's lowest neuron first), then the
end-of-timestep beat.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal

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


SKIP_WINDOW = 4     # groups with spikes the emitter picks from per cycle; a window without any costs a cycle


def _first_set(m: Module, bits) -> tuple[Signal, Signal]:
    """``(index, others)``: the lowest set bit of the few ``bits`` and ``bits`` without it, as a priority
    choice (one LUT level per output bit; no carry chain)."""
    index, others = Signal(range(max(len(bits), 2))), Signal(len(bits))
    for k in reversed(range(len(bits))):
        with m.If(bits[k]):
            m.d.comb += [index.eq(k), others.eq(bits & (((1 << len(bits)) - 1) ^ (1 << k)))]
    return index, others


class SpikeEmitter:
    """Sends the spikes of the handed-over half of a layer's spike buffer, then the end-of-timestep beat.

    The core calls :meth:`hand_over` in the cycle it hands a half over and :meth:`emit` once to build the
    emitter. Two parts work side by side:

    * the fetcher walks the groups with spikes, :data:`SKIP_WINDOW` groups (a window) at a time, and reads the
      next one's mask in any cycle the read port's output (the *slot*) is free or being taken: one group per
      cycle, the next window from the cycle after the current one's last group was read; a window without
      spikes costs a cycle (none after the last group with spikes);
    * the sender takes the mask from the slot (the cycle it arrives, or with its current group's last beat)
      and offers one beat per cycle from the cycle after; back-to-back groups leave no gap.

    The end-of-timestep beat is offered the cycle after the last beat (two cycles after the hand-over without
    spikes). Everything on the paths to the buffer's read address and into the consumer is a register or one
    LUT level from one: the window's first group, the beat's lane, the group's other spikes."""

    def __init__(self, m: Module, groups: int, lanes: int):
        self._m, self._lanes = m, lanes
        self._group_bits = len(Signal(range(max(groups, 2))))
        windows = -(-groups // SKIP_WINDOW)
        # The groups with spikes not yet read: of the current window (bit k: group window_index * 4 + k) and
        # of the windows after it (bit k: the k-th group after the current window).
        self.window = Signal(SKIP_WINDOW, name="emit_window")
        self.later = Signal(max(groups - SKIP_WINDOW, 1), name="emit_later")
        self.window_index = Signal(range(windows + 1), name="emit_window_index")
        self.later_any = Signal(name="emit_later_any")   # later != 0, registered

    def hand_over(self, groups_with_spikes: Signal) -> None:
        """Take the groups with spikes of the half being handed over (bit g: group g has spikes)."""
        later = groups_with_spikes[SKIP_WINDOW:]
        self._m.d.sync += [self.window.eq(groups_with_spikes[:SKIP_WINDOW]), self.later.eq(later),
                           self.later_any.eq(later != 0), self.window_index.eq(0)]

    def emit(self, mask_rd, full: Signal, emit_last: Signal, out,
             neuron_of=lambda group, lane, lanes: group * lanes + lane) -> None:
        """Send the spikes of the handed-over half (``mask_rd`` reads it at ``Cat(group, half)``), then the
        end-of-timestep beat (``last`` = ``emit_last``) on stream ``out``; clear ``full`` when that beat is
        taken. A spike in ``lane`` of ``group`` is neuron ``neuron_of(group, lane, lanes)``."""
        m, lanes, window, later = self._m, self._lanes, self.window, self.later
        half = Signal()
        slot_full = Signal()                              # mask_rd.data holds the mask of `slot_group`, unsent
        slot_group = Signal(self._group_bits)
        sending = Signal()                                # a beat of `group` is offered
        group = Signal(self._group_bits)
        lane = Signal(range(max(lanes, 2)))               # the spike being sent: its lane
        rest = Signal(lanes)                              # the group's spikes after it
        rest_empty = Signal()                             # rest == 0

        def load(mask):
            """Send the spikes of ``mask`` next: its lowest set bit first, then the others."""
            others, lowest = lowest_set_bit(m, mask, lanes)
            m.d.sync += [lane.eq(lowest), rest.eq(others), rest_empty.eq(others == 0)]

        finishing = Signal()                              # the group's last beat moves now
        take = Signal()                                   # the sender takes the slot's mask now
        fetch = Signal()                                  # the fetcher reads the window's first group now
        m.d.comb += [finishing.eq(sending & out.ready & rest_empty),
                     take.eq(slot_full & (~sending | finishing)),
                     fetch.eq((window != 0) & (~slot_full | take))]
        first, others = _first_set(m, window)
        fetch_group = Signal(self._group_bits)
        m.d.comb += [fetch_group.eq(Cat(first, self.window_index)), mask_rd.en.eq(fetch),
                     mask_rd.addr.eq(Cat(fetch_group, half))]
        m.d.sync += slot_full.eq(fetch | (slot_full & ~take))
        with m.If(fetch):
            m.d.sync += [slot_group.eq(fetch_group), window.eq(others)]
        with m.If((window == 0) & self.later_any | fetch & (others == 0)):    # on to the next window
            m.d.sync += [window.eq(later[:SKIP_WINDOW]), later.eq(later >> SKIP_WINDOW),
                         self.later_any.eq(later[SKIP_WINDOW:] != 0), self.window_index.eq(self.window_index + 1)]
        with m.If(take):
            load(mask_rd.data)
            m.d.sync += [group.eq(slot_group), sending.eq(1)]
        with m.Elif(sending & out.ready):
            load(rest)
            with m.If(rest_empty):
                m.d.sync += sending.eq(0)

        with m.FSM(name="emitter"):
            with m.State("SEND"):
                m.d.comb += [out.valid.eq(sending), out.payload.index.eq(neuron_of(group, lane, lanes))]
                with m.If(full & (window == 0) & ~self.later_any & ~slot_full & (~sending | finishing)):
                    m.next = "END"
            with m.State("END"):
                m.d.comb += [out.valid.eq(1), out.payload.eot.eq(1), out.payload.last.eq(emit_last)]
                with m.If(out.ready):
                    m.d.sync += [full.eq(0), half.eq(~half)]
                    m.next = "SEND"
