"""A time-multiplexed, event-driven dense LIF layer core.

The core consumes an event stream (see :mod:`snn2hw.hw.events`) and produces one. Each neuron keeps one
word, its *membrane* ``m``: between timesteps ``m = leak(v) - reset`` (what the next timestep starts from),
during integration that plus the current summed so far, so no separate accumulator is needed:

* each input spike j costs ``groups`` integration cycles, adding weight row j to the membranes
  (``m[g] += W[g, j]``, ``lanes`` neurons per cycle, pipelined read-modify-write); the next event is
  taken in the last of them, so back-to-back spikes cost ``groups`` cycles each (one more after idling);
* an end-of-timestep costs a read cycle and two cycles to fill the fire pipeline, then per group one cycle
  (``u = m + b``, ``v = clamp(u)``, ``s = v > threshold``, ``m = floor(beta_q v / 2^F) - s threshold``
  or ``floor(beta_q (1 - s) v / 2^F)``, in three pipeline stages that overlap consecutive groups), which
  also writes the group's spike mask into one half of a double-buffered spike buffer; then one cycle to
  hand the buffer to the emitter, as soon as it has finished the previous timestep's; per-neuron thresholds
  and betas come from ROMs read with the bias and travel along stages A and B (the leak is then a multiply
  ``v * beta_q[i]`` instead of the constant shift-and-add), so the timing is the same;
* the emitter, working alongside integration of the next timestep, reads the handed-over masks group
  by group (one cycle per group without spikes), sends one beat per spike (lowest neuron first) and then
  the end-of-timestep beat;
* ``clear`` (from any state) zeroes the membranes in ``groups`` cycles and empties the spike buffer.

The update is the integer LIF of :mod:`snn2hw.ir`, bit for bit the golden model.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..ir import Layer, Reset
from ..passes.mapping import LayerMapping
from .events import event_stream
from .weight_memory import WeightMemory, load_stream

__all__ = ["DenseLIFLayer"]


class DenseLIFLayer(wiring.Component):
    """One dense layer + LIF neurons. Ports: ``clear`` (in pulse), ``idle`` (out: waiting for an event),
    ``i_events`` (in stream, ``n_in`` neurons), ``o_events`` (out stream, ``n_out`` neurons), ``w_load`` /
    ``loaded``: the weight memory's SPRAM loading (see :mod:`snn2hw.hw.weight_memory`)."""

    def __init__(self, layer: Layer, mapping: LayerMapping, state_bits: int, spram_primitive: bool = True):
        if (mapping.n_in, mapping.n_out) != (layer.n_in, layer.n_out):
            raise ValueError(f"mapping {mapping.name!r} does not match layer {layer.name!r}")
        self.layer, self.mapping, self.state_bits = layer, mapping, state_bits
        self.spram_primitive = spram_primitive
        super().__init__({
            "clear": In(1),
            "idle": Out(1),
            "i_events": In(event_stream(layer.n_in)),
            "o_events": Out(event_stream(layer.n_out)),
            "w_load": In(load_stream()),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer, mp, lanes, groups = self.layer, self.mapping, self.mapping.lanes, self.mapping.groups
        width = mp.membrane_bits(self.state_bits, layer.threshold)
        hi = (1 << (self.state_bits - 1)) - 1

        weights = WeightMemory(layer, mp, self.spram_primitive)
        m.submodules.membrane = membrane = memory.Memory(
            shape=data.ArrayLayout(signed(width), lanes), depth=groups, init=[])
        mem_wr = membrane.write_port()
        mem_rd = membrane.read_port(transparent_for=(mem_wr,))   # a group read as it is written sees the new sum
        if mp.has_bias:
            m.submodules.bias = bias = memory.Memory(
                shape=data.ArrayLayout(signed(mp.bias_bits), lanes), depth=groups, init=mp.bias_words_init(layer))
            bias_rd = bias.read_port()
        a_width = max(width, mp.bias_bits) + 1
        param_rds = {}     # per-neuron parameter -> the read port of its ROM
        if mp.threshold_bits:
            # A threshold >= the state maximum never fires (v <= hi); it is stored as the largest u in
            # stage A's range so that `u > threshold` stays false. Only spikes subtract it.
            never = (1 << (a_width - 1)) - 1
            compared = [theta if theta < hi else never for theta in layer.threshold.tolist()]
            param_rds["threshold"] = self._rom(m, "threshold", max(compared).bit_length(), compared)
        if mp.beta_bits:
            param_rds["beta_q"] = self._rom(m, "beta_q", mp.beta_bits, layer.beta_q.tolist())

        group = Signal(range(max(groups, 2)))
        last_group = group == groups - 1
        row_base = Signal(range(max(mp.weight_words, 2)))   # j * groups for the event being integrated
        last_step = Signal()                                  # the pending end-of-timestep ends the inference
        # Spike masks, one word per group, in two halves: the fire pass writes one while the emitter reads
        # the other. `full`: a half has been handed over and is not yet emitted.
        m.submodules.spike_buffer = spike_buffer = memory.Memory(
            shape=lanes, depth=2 << len(group), init=[])
        mask_wr, mask_rd = spike_buffer.write_port(), spike_buffer.read_port()
        write_half, full, emit_last = Signal(), Signal(), Signal()

        # Integration pipeline: the read issued in one cycle is added and written back in the next.
        integ_valid = Signal()
        integ_group = Signal.like(group)
        m.d.sync += integ_valid.eq(0)
        with m.If(integ_valid):
            m.d.comb += [mem_wr.addr.eq(integ_group), mem_wr.en.eq(1)]
            for k in range(lanes):
                m.d.comb += mem_wr.data[k].eq(mem_rd.data[k] + weights.data[k])

        # The fire pass of one group in three registered pipeline stages: A adds the bias to the integrated
        # membrane, B saturates and decides the spike, C applies leak and reset for the next timestep and
        # writes back. Consecutive groups overlap.
        stage_a = [mem_rd.data[k] + (bias_rd.data[k] if mp.has_bias else 0) for k in range(lanes)]
        a_regs = [Signal(signed(a_width), name=f"a_u{k}") for k in range(lanes)]
        b_regs = [(Signal(signed(self.state_bits), name=f"b_v{k}"), Signal(name=f"b_s{k}")) for k in range(lanes)]
        advance = [reg.eq(value) for reg, value in zip(a_regs, stage_a)]
        # Per lane, each per-neuron parameter as stage B ([0]) and stage C ([1]) see it; scalars are constants.
        params = {what: [(getattr(layer, what),) * 2] * lanes for what in ("threshold", "beta_q")}
        for what, port in param_rds.items():
            params[what] = []
            for k in range(lanes):
                a_reg, b_reg = (Signal.like(port.data[k], name=f"{stage}_{what}{k}") for stage in "ab")
                advance += [a_reg.eq(port.data[k]), b_reg.eq(a_reg)]
                params[what].append((a_reg, b_reg))
        for k, ((v, spike), u) in enumerate(zip(b_regs, a_regs)):
            advance += self._saturate_and_fire(u, v, spike, params["threshold"][k][0])
        next_membrane = Signal(data.ArrayLayout(signed(width), lanes))
        fired = Signal(lanes)
        for k, (v, spike) in enumerate(b_regs):
            leaked = self._leak_and_reset(v, spike, params["beta_q"][k][1], params["threshold"][k][1])
            m.d.comb += [next_membrane[k].eq(leaked), fired[k].eq(spike)]

        payload = self.i_events.payload
        read_ports = [mem_rd] + ([bias_rd] if mp.has_bias else []) + list(param_rds.values())

        def take_event():
            """Accept the offered event: integrate a spike's row, or start the fire pass on end-of-timestep."""
            m.d.comb += self.i_events.ready.eq(1)
            with m.If(self.i_events.valid):
                m.d.sync += group.eq(0)
                with m.If(payload.eot):
                    m.d.sync += last_step.eq(payload.last)
                    m.next = "FIRE_READ"
                with m.Else():
                    m.d.sync += row_base.eq(payload.index * groups)
                    m.next = "INTEGRATE"

        def next_group_or_end():
            m.d.sync += group.eq(group + 1)
            with m.If(last_group):
                m.d.sync += group.eq(0)
                m.next = "END_STEP"
            with m.Else():
                m.next = "FIRE"

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += [mem_wr.addr.eq(group), mem_wr.en.eq(1), mem_wr.data.eq(0)]
                m.d.sync += group.eq(group + 1)
                with m.If(last_group):
                    m.d.sync += group.eq(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.idle.eq(1)
                take_event()
            with m.State("INTEGRATE"):
                m.d.comb += [weights.addr.eq(row_base + group), mem_rd.addr.eq(group)]
                m.d.sync += [integ_valid.eq(1), integ_group.eq(group), group.eq(group + 1)]
                with m.If(last_group):
                    m.d.sync += group.eq(0)
                    m.next = "WAIT"
                    take_event()
            with m.State("FIRE_READ"):
                for port in read_ports:
                    m.d.comb += port.addr.eq(0)
                m.next = "FIRE_PRIME_A"
            with m.State("FIRE_PRIME_A"):
                for port in read_ports:
                    m.d.comb += port.addr.eq(1)
                m.d.sync += advance
                m.next = "FIRE_PRIME_B"
            with m.State("FIRE_PRIME_B"):
                for port in read_ports:
                    m.d.comb += port.addr.eq(2)
                m.d.sync += advance
                m.next = "FIRE"
            with m.State("FIRE"):
                # stage C of `group`, B of `group + 1`, A of `group + 2`; the words of `group + 3` are read.
                m.d.comb += [mem_wr.addr.eq(group), mem_wr.en.eq(1), mem_wr.data.eq(next_membrane),
                             mask_wr.addr.eq(Cat(group, write_half)), mask_wr.en.eq(1), mask_wr.data.eq(fired)]
                for port in read_ports:
                    m.d.comb += port.addr.eq(group + 3)
                m.d.sync += advance
                next_group_or_end()
            with m.State("END_STEP"):
                with m.If(~full):                             # hand the written half to the emitter
                    m.d.sync += [full.eq(1), emit_last.eq(last_step), write_half.eq(~write_half)]
                    m.next = "WAIT"
        self._emitter(m, mask_rd, full, emit_last, len(group))
        # `clear` returns every register, the FSM included, to its initial value: the CLEAR state. The
        # weight memory is outside it: its SPRAM contents and `loaded` survive every inference.
        outer = Module()
        outer.submodules.core = ResetInserter(self.clear)(m)
        outer.submodules.weights = weights
        wiring.connect(outer, wiring.flipped(self.w_load), weights.load)
        outer.d.comb += self.loaded.eq(weights.loaded)
        return outer

    def _emitter(self, m: Module, mask_rd, full: Signal, emit_last: Signal, group_bits: int) -> None:
        """Send the spikes of the handed-over half of the spike buffer (``mask_rd`` reads it), then the
        end-of-timestep beat (``last`` = ``emit_last``); clear ``full`` when that beat is taken."""
        lanes, groups = self.mapping.lanes, self.mapping.groups
        group, half = Signal(group_bits), Signal()
        bits = Signal(lanes)                                  # the current group's spikes not yet sent
        lowest, remaining = Signal(lanes), Signal(lanes)      # its lowest set bit alone, and the others
        lane = Signal(range(max(lanes, 2)))                   # the index of that bit
        # Carry-chain arithmetic instead of a priority-mux chain (this is on the path into the next layer):
        # x & -x isolates the lowest set bit, x & (x - 1) clears it; the index is an OR of one-hot bits.
        m.d.comb += [lowest.eq(bits & (~bits + 1)), remaining.eq(bits & (bits - 1))]
        for b in range(len(lane)):
            m.d.comb += lane[b].eq((lowest & sum(1 << k for k in range(lanes) if k >> b & 1)).any())
        out = self.o_events

        following = Signal(group_bits)
        m.d.comb += following.eq(group + 1)

        def next_group():
            with m.If(group == groups - 1):
                m.next = "END"
            with m.Else():
                m.d.comb += mask_rd.addr.eq(Cat(following, half))
                m.d.sync += group.eq(following)
                m.next = "SCAN"

        with m.FSM(name="emitter"):
            with m.State("IDLE"):
                with m.If(full):
                    m.d.comb += mask_rd.addr.eq(Cat(Const(0, group_bits), half))
                    m.d.sync += group.eq(0)
                    m.next = "SCAN"
            with m.State("SCAN"):                             # `group`'s mask is on mask_rd.data
                with m.If(mask_rd.data == 0):
                    next_group()
                with m.Else():
                    m.d.sync += bits.eq(mask_rd.data)
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [out.valid.eq(1), out.payload.index.eq(group * lanes + lane)]
                with m.If(out.ready):
                    m.d.sync += bits.eq(remaining)
                    with m.If(remaining == 0):
                        next_group()
            with m.State("END"):
                m.d.comb += [out.valid.eq(1), out.payload.eot.eq(1), out.payload.last.eq(emit_last)]
                with m.If(out.ready):
                    m.d.sync += [full.eq(0), half.eq(~half)]
                    m.next = "IDLE"

    def _rom(self, m: Module, name: str, bits: int, values: list[int]):
        """A read port of a ROM of per-neuron ``values`` (unsigned ``bits``), one word of lanes per group."""
        rom = memory.Memory(shape=data.ArrayLayout(bits, self.mapping.lanes), depth=self.mapping.groups,
                            init=self.mapping.group_words(values))
        m.submodules[name] = rom
        return rom.read_port()

    def _saturate_and_fire(self, u, v, spike, threshold) -> list:
        """``v = clamp(u)`` and ``spike = v > threshold`` (as ``u > threshold``: equivalent whenever the
        threshold is below the state maximum; above it nothing fires). ``threshold`` is an int or, per
        neuron, a signal that already holds an unreachable value for such thresholds."""
        lo, hi = -(1 << (self.state_bits - 1)), (1 << (self.state_bits - 1)) - 1
        fires = (u > threshold) if not isinstance(threshold, int) or threshold < hi else 0
        return [v.eq(Mux(u > hi, hi, Mux(u < lo, lo, u))), spike.eq(fires)]

    def _leak_and_reset(self, v, spike, beta_q, threshold):
        """The membrane the next timestep integrates onto: ``floor(beta_q * v / 2^F) - spike * threshold``
        (subtract), ``floor(beta_q * (1 - spike) * v / 2^F)`` (zero), ``floor(beta_q * v / 2^F)`` (none).
        ``beta_q`` and ``threshold`` are ints (the layer's) or per-neuron signals. Padding lanes stay at 0."""
        layer = self.layer
        product = shift_add_product(v, beta_q) if isinstance(beta_q, int) else v * beta_q
        decayed = product >> layer.frac_bits      # arithmetic shift of a signed product: floor
        if layer.reset is Reset.ZERO:
            return Mux(spike, 0, decayed)
        if layer.reset is Reset.SUBTRACT:
            return decayed - Mux(spike, threshold, 0)
        return decayed


def shift_add_product(value, factor: int):
    """``value * factor`` for a constant ``factor >= 0``, as a sum of shifted copies of ``value`` whose
    signs follow the canonical signed-digit form of ``factor`` (fewest non-zero digits): an exact product
    without a multiplier."""
    terms, digit_position = [], 0
    while factor:
        if factor & 1:
            digit = 2 - (factor & 3)          # +1 if factor = ...01, -1 if ...11
            terms.append((digit, digit_position))
            factor -= digit
        factor >>= 1
        digit_position += 1
    total = 0
    for digit, shift in terms:
        term = value.as_signed() << shift if shift else value.as_signed()
        total = total + term if digit > 0 else total - term
    return total
