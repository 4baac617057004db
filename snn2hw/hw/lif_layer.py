"""A time-multiplexed, event-driven dense LIF layer core.

The core consumes an event stream (see :mod:`snn2hw.hw.events`) and produces one. Each neuron keeps one
word, its *membrane* ``m``: between timesteps ``m = leak(v) - reset`` (what the next timestep starts from),
during integration that plus the current summed so far, so no separate accumulator is needed:

* each input spike j costs ``groups`` integration cycles, adding weight row j to the membranes
  (``m[g] += W[g, j]``, ``lanes`` neurons per cycle, pipelined read-modify-write); the next event is
  taken in the last of them, so back-to-back spikes cost ``groups`` cycles each (one more after idling);
* an end-of-timestep costs a read cycle and three cycles to fill the fire pipeline, then per group one cycle
  (``u = m + b``, ``v = clamp(u)``, ``s = v > threshold``, ``m = floor(beta_q v / 2^F) - s threshold``
  or ``floor(beta_q (1 - s) v / 2^F)``, in four pipeline stages that overlap consecutive groups: A the bias,
  B saturation and spike, C the leak, D the reset subtraction and the write), which also writes the group's
  spike mask into one half of a double-buffered spike buffer; then one cycle to hand the buffer to the
  emitter, as soon as it has finished the previous timestep's; per-neuron thresholds and betas come from
  ROMs read with the bias and travel along the stages (the leak is then a multiply ``v * beta_q[i]``
  instead of the constant shift-and-add), so the timing is the same;
* the emitter, working alongside integration of the next timestep, reads the handed-over masks of the groups
  that have spikes (registers written by the fire pass mark them), sends one beat per spike (lowest
  neuron first) and then the end-of-timestep beat;
* ``clear`` (from any state) zeroes the membranes in ``groups`` cycles and empties the spike buffer.

With accumulators (:attr:`snn2hw.passes.mapping.LayerMapping.accumulators`), integration does not touch the
membrane memory and runs beside the fire pass (:class:`_Integrator`): each timestep's current sums in
flip-flop accumulators, one per neuron, a weight word of ``integration_lanes`` per cycle (the weight added
through a per-bit gate), one pass per integration group; the fire pass, in its WAIT state until the first
group is integrated, has stage A add group g's accumulators, taken (and cleared) through a registered one-hot
selection in the cycle the group's membrane word is read, and holds its pipeline (read enables low) while
the group it reads next is not integrated yet. Such a core takes events in its integrator, not in WAIT.

Other neurons of :mod:`snn2hw.ir` use the same pipeline:

* RLeaky, one-to-one V: stage D adds ``s * V[i]`` to the membrane the next timestep starts from;
* RLeaky, dense V: V's rows follow W's in the weight memory; after the fire pass of a timestep that is not the
  last, a recurrent pass scans the new spike masks (one cycle, then one per group) and integrates row
  ``n_in + i`` for each neuron i that fired (one cycle plus ``groups``), before the hand-over;
* Synaptic: the membrane memory accumulates the synaptic current; a second memory holds the potential
  ``decay(beta_q, v) - s theta``; stage B computes ``syn = clamp(u)`` and ``v = clamp(potential + syn)``,
  stages C and D ``decay(alpha_q, syn)`` and the next potential;
* RSynaptic (Synaptic with a recurrence): the one-to-one V of stage D and the dense V rows of the recurrent pass
  add to the membrane memory, so they enter the next synaptic current, as in snnTorch;
* a convolution (:attr:`snn2hw.ir.Layer.conv`): the weight memory holds the kernel and the lanes are output
  channels of one position (:mod:`snn2hw.passes.mapping`); an input spike is decoded by a ROM into its kernel
  word base and its row and column, then each kernel offset and channel block takes a cycle in a three-stage
  pipeline (row/column ROMs -> the reached group's membrane and the kernel word -> write-back), one more cycle
  drains it before the fire pass, and the emitter numbers a slot's neuron in C,H,W order; integrated by window
  (:mod:`snn2hw.hw.conv_window`), the conv core has no weight memory: a :class:`~.conv_window.ConvWindow` takes
  the events and computes each timestep's currents, and the fire pass waits in WAIT for a complete timestep,
  adds a group's current in stage A, as with accumulators, and releases the timestep after its last group;
* a zero reset that clears the whole new membrane (RLeaky, Synaptic) reads the previous timestep's spike from
  the other half of the spike buffer with the stage-A words and forces ``v = 0`` (so ``s = 0``) in stage B.

The update is the integer LIF of :mod:`snn2hw.ir`, bit for bit the golden model.
"""

from __future__ import annotations

import contextlib

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..conv_geometry import reached_output
from ..ir import Layer, Reset
from ..passes.mapping import LayerMapping
from .conv_window import ConvWindow
from .events import event_stream
from .membrane_readout import MembraneFormat, membrane_stream
from .spike_emitter import SpikeEmitter, lowest_set_bit
from .trees import or_tree
from .weight_memory import WeightMemory, load_stream

__all__ = ["DenseLIFLayer"]


FIRE_STAGES = 4   # registered stages of the fire pass: A (bias), B (saturate, fire), C (leak), D (reset, write)


class DenseLIFLayer(wiring.Component):
    """One dense layer + LIF neurons. Ports: ``clear`` (in pulse), ``idle`` (out: waiting for an event),
    ``i_events`` (in stream, ``n_in`` neurons), ``o_events`` (out stream, ``n_out`` neurons), ``w_load`` /
    ``loaded``: the weight memory's SPRAM loading (see :mod:`snn2hw.hw.weight_memory`); with
    ``membrane_out``, ``o_membranes``: each group's membranes v[t] from the fire pass (stage D's cycle, see
    :mod:`snn2hw.hw.membrane_readout`)."""

    def __init__(self, layer: Layer, mapping: LayerMapping, state_bits: int, spram_primitive: bool = True,
                 membrane_out: bool = False):
        if (mapping.n_in, mapping.n_out) != (layer.n_in, layer.n_out):
            raise ValueError(f"mapping {mapping.name!r} does not match layer {layer.name!r}")
        self.layer, self.mapping, self.state_bits = layer, mapping, state_bits
        self.spram_primitive, self.membrane_out = spram_primitive, membrane_out
        readout = {"o_membranes": Out(membrane_stream(self.membrane_format))} if membrane_out else {}
        super().__init__({
            "clear": In(1),
            "idle": Out(1),
            "i_events": In(event_stream(layer.n_in)),
            "o_events": Out(event_stream(layer.n_out)),
            "w_load": In(load_stream()),
            "loaded": Out(1),
            **readout,
        })

    @property
    def membrane_format(self) -> MembraneFormat:
        """The packing of ``o_membranes`` beats."""
        return MembraneFormat.of(self.mapping, self.state_bits)

    def elaborate(self, platform):
        m = Module()
        layer, mp, lanes, groups = self.layer, self.mapping, self.mapping.lanes, self.mapping.groups
        width = mp.membrane_bits(self.state_bits, layer.threshold)
        hi = (1 << (self.state_bits - 1)) - 1
        whole_clear, dense_recurrent = layer.clears_whole_membrane, layer.recurrence == "dense"

        weights = None if mp.window else WeightMemory(layer, mp, self.spram_primitive)
        beside = mp.accumulators or mp.window      # integration runs beside the fire pass
        # A membrane word is read in the cycle it is written only when one group is integrated (the next
        # spike's read meets the last write) and in a conv layer's integration by kernel offset; elsewhere the
        # write comes first, so other cores drop the bypass (it lies on the path from the FSM state to the read
        # data).
        same_cycle = (mp.conv is not None and not mp.window) or (mp.groups == 1 and not beside)
        mem_wr, mem_rd = self._state_memory(m, "membrane", width, transparent=same_cycle)
        read_ports = [mem_rd]    # the words the fire pass reads for a group, all at the same address
        if mp.has_bias:
            m.submodules.bias = bias = memory.Memory(
                shape=data.ArrayLayout(signed(mp.bias_bits), lanes), depth=groups, init=mp.bias_words_init(layer))
            read_ports.append(bias_rd := bias.read_port())
        if mp.synaptic:
            pot_wr, pot_rd = self._state_memory(m, "potential", mp.potential_bits(self.state_bits,
                                                                                      layer.threshold))
            read_ports.append(pot_rd)
        a_width = max(width, mp.bias_bits) + 1
        param_rds = {}     # per-neuron parameter -> the read port of its ROM
        if mp.threshold_bits:
            # A threshold >= the state maximum never fires (v <= hi); it is stored as the largest u in
            # stage A's range so that `u > threshold` stays false. Only spikes subtract it.
            never = 2 * hi if mp.synaptic else (1 << (a_width - 1)) - 1     # Synaptic compares potential + syn
            compared = [theta if theta < hi else never for theta in layer.threshold.tolist()]
            param_rds["threshold"] = self._rom(m, "threshold", max(compared).bit_length(), compared)
        for what, bits in (("beta_q", mp.beta_bits), ("alpha_q", mp.alpha_bits)):
            if bits:
                param_rds[what] = self._rom(m, what, bits, getattr(layer, what).tolist())
        if mp.recurrent_bits:
            param_rds["recurrent"] = self._rom(m, "recurrent", signed(mp.recurrent_bits), layer.recurrent.tolist())
        read_ports += param_rds.values()

        group = Signal(range(max(groups, 2)))
        last_group = group == groups - 1
        # Registered "the word read now is the row's last": keeps the group compare off the path from the FSM
        # state to `i_events.ready`, and on into the upstream logic.
        row_words = mp.weight_groups                          # weight words per crossbar row (dense)
        integ_last = Signal(init=row_words == 1)
        row_base = Signal(range(max(mp.weight_words, 2)))   # j * row_words for the row being integrated
        last_step = Signal()                                  # the pending end-of-timestep ends the inference
        # Spike masks, one word per group, in two halves: the fire pass writes one while the emitter reads
        # the other. `full`: a half has been handed over and is not yet emitted. The other half holds the
        # previous timestep's spikes until the fire pass after the hand-over rewrites it.
        m.submodules.spike_buffer = spike_buffer = memory.Memory(
            shape=lanes, depth=2 << len(group), init=[])
        mask_wr, mask_rd = spike_buffer.write_port(), spike_buffer.read_port()
        own_rd = spike_buffer.read_port() if whole_clear or dense_recurrent else None
        write_half, full, emit_last = Signal(), Signal(), Signal()
        # The groups with spikes of the half being written (shifted in, group 0 first).
        with_spikes = Signal(groups, name="groups_with_spikes")
        emitter = SpikeEmitter(m, groups, lanes)

        # Integration pipeline: the read issued in one cycle is added and written back in the next.
        integ_valid = Signal()
        integ_group = Signal.like(group)
        m.d.sync += integ_valid.eq(0)
        stall = Signal()       # beside: the fire pass waits for the integration of the group it reads
        if mp.accumulators:
            accumulated = self._accumulators(m, weights, integ_valid, integ_group)
            integrator = _Integrator(m, self.i_events, weights, integ_valid, integ_group, mp)
            accumulated.block_on(integrator.lag_next)
            m.d.comb += [self.idle.eq(integrator.waiting), stall.eq(accumulated.blocked)]
        elif mp.window:
            m.submodules.window = window = ConvWindow(layer, mp)
            wiring.connect(m, wiring.flipped(self.i_events), window.i_events)
            m.d.comb += [self.idle.eq(window.idle), stall.eq(~window.ready), window.en.eq(~stall)]
        if beside:
            for port in read_ports + ([own_rd] if whole_clear else []):
                m.d.comb += port.en.eq(~stall)      # a stalled fire pass keeps the words it read
        else:
            with m.If(integ_valid):
                m.d.comb += [mem_wr.addr.eq(integ_group), mem_wr.en.eq(1)]
                for k in range(lanes):
                    m.d.comb += mem_wr.data[k].eq(mem_rd.data[k] + weights.data[k])
        conv_tap = (self._conv_integration(m, weights, mem_rd, integ_valid, integ_group)
                    if mp.conv and not mp.window else None)

        # The fire pass of one group in four registered pipeline stages: A adds the bias (and a current
        # integrated beside: accumulators or a window's) to the integrated membrane, B saturates and decides the
        # spike, C applies the leak, D the reset for the next timestep and writes back. Consecutive groups
        # overlap.
        currents = accumulated.current if mp.accumulators else window.current if mp.window else None
        stage_a = [mem_rd.data[k] + (bias_rd.data[k] if mp.has_bias else 0) + (currents[k] if beside else 0)
                   for k in range(lanes)]
        a_regs = [Signal(signed(a_width), name=f"a_u{k}") for k in range(lanes)]
        advance = [reg.eq(value) for reg, value in zip(a_regs, stage_a)]
        # Per lane, each per-neuron parameter as stages B, C and D see it; scalars are constants.
        params = {what: [(getattr(layer, what),) * 3] * lanes for what in ("threshold", "beta_q", "alpha_q")}
        params["recurrent"] = [(int(layer.recurrent[0]),) * 3] * lanes if layer.recurrence == "one_to_one" else None
        for what, port in param_rds.items():
            params[what] = []
            for k in range(lanes):
                regs = [Signal.like(port.data[k], name=f"{stage}_{what}{k}") for stage in "abc"]
                advance += [regs[0].eq(port.data[k]), regs[1].eq(regs[0]), regs[2].eq(regs[1])]
                params[what].append(tuple(regs))
        carried = {}       # per lane, words read with the group that stage B uses: potential, previous spike
        for what, port in (("potential", pot_rd if mp.synaptic else None), ("spiked", own_rd if whole_clear else None)):
            if port is not None:
                carried[what] = [Signal.like(port.data[k], name=f"a_{what}{k}") for k in range(lanes)]
                advance += [reg.eq(port.data[k]) for k, reg in enumerate(carried[what])]
        next_membrane = Signal(data.ArrayLayout(signed(width), lanes))
        next_potential = Signal.like(pot_wr.data) if mp.synaptic else None
        fired = Signal(lanes)
        for k in range(lanes):
            lane_params = {what: None if values is None else values[k] for what, values in params.items()}
            lane_carried = {what: values[k] for what, values in carried.items()}
            registers, stage_d = self._fire_lane(a_regs[k], lane_params, lane_carried, k)
            advance += registers
            m.d.comb += fired[k].eq(stage_d["spike"])
            m.d.comb += next_membrane[k].eq(stage_d["membrane"])
            if mp.synaptic:
                m.d.comb += next_potential[k].eq(stage_d["potential"])
            if self.membrane_out:
                m.d.comb += self.o_membranes.payload[k].eq(stage_d["v"])

        payload = self.i_events.payload

        def take_event():
            """Accept the offered event: integrate a spike's row, or start the fire pass on end-of-timestep."""
            m.d.comb += self.i_events.ready.eq(1)
            with m.If(self.i_events.valid):
                m.d.sync += group.eq(0)
                with m.If(payload.eot):
                    m.d.sync += last_step.eq(payload.last)
                    m.next = "DRAIN" if mp.conv else "FIRE_READ"
                with m.Else():
                    if mp.conv:
                        conv_tap.start(payload.index)
                    else:
                        m.d.sync += [row_base.eq(payload.index * row_words), integ_last.eq(row_words == 1)]
                    m.next = "INTEGRATE"

        def integrate_word():
            """Read weight word row_base + group and the membrane of `group` (or its accumulators); the sum is
            written next cycle."""
            m.d.comb += weights.addr.eq(row_base + group)
            if not mp.accumulators:
                m.d.comb += mem_rd.addr.eq(group)
            m.d.sync += [integ_valid.eq(1), integ_group.eq(group), group.eq(group + 1),
                         integ_last.eq(group == row_words - 2 if row_words >= 2 else 1)]

        def fire_reads(address):
            """Read the fire pass's words of group ``address`` (and the previous spikes of that group)."""
            for port in read_ports:
                m.d.comb += port.addr.eq(address)
            if mp.accumulators:
                accumulated.take(integrator.taken)
            if mp.window:
                m.d.comb += window.addr.eq(address)
            if whole_clear:
                row = Const(address, len(group)) if isinstance(address, int) else address[:len(group)]
                m.d.comb += own_rd.addr.eq(Cat(row, ~write_half))

        def end_of_fire():
            m.d.sync += group.eq(group + 1)
            with m.If(last_group):
                m.d.sync += group.eq(0)
                if mp.window:
                    m.d.comb += window.release.eq(1)
                if dense_recurrent:
                    with m.If(last_step):
                        m.next = "END_STEP"
                    with m.Else():
                        m.next = "REC_START"
                else:
                    m.next = "END_STEP"
            with m.Else():
                m.next = "FIRE"

        def unless_stalled():
            """The body of a cycle that reads the fire pass's next group: with integration beside, skipped (and
            the pipeline held) while that group is not integrated yet."""
            if not beside:
                return contextlib.nullcontext()
            return m.If(~stall)

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += [mem_wr.addr.eq(group), mem_wr.en.eq(1), mem_wr.data.eq(0)]
                if mp.synaptic:
                    m.d.comb += [pot_wr.addr.eq(group), pot_wr.en.eq(1), pot_wr.data.eq(0)]
                if whole_clear:     # no neuron spiked before the first timestep
                    m.d.comb += [mask_wr.addr.eq(Cat(group, Const(1, 1))), mask_wr.en.eq(1), mask_wr.data.eq(0)]
                m.d.sync += group.eq(group + 1)
                with m.If(last_group):
                    m.d.sync += group.eq(0)
                    m.next = "WAIT"
            if beside:
                with m.State("WAIT"):                     # the integrator works on its own; wait for group 0
                    with unless_stalled():
                        m.d.sync += last_step.eq(integrator.last if mp.accumulators else window.last)
                        fire_reads(0)
                        m.next = "FIRE_PRIME_1"
            else:
                with m.State("WAIT"):
                    m.d.comb += self.idle.eq(1)
                    take_event()
                with m.State("INTEGRATE"):
                    if mp.conv:
                        conv_tap.step()
                    else:
                        integrate_word()
                    with m.If(conv_tap.last if mp.conv else integ_last):
                        m.d.sync += group.eq(0)
                        m.next = "WAIT"
                        take_event()
                if mp.conv:
                    with m.State("DRAIN"):                # the last integration write
                        m.next = "FIRE_READ"
                with m.State("FIRE_READ"):
                    fire_reads(0)
                    m.next = "FIRE_PRIME_1"
            for depth in range(1, FIRE_STAGES):               # fill the pipeline: stages A .. C
                with m.State(f"FIRE_PRIME_{depth}"):
                    with unless_stalled():
                        fire_reads(depth)
                        m.d.sync += advance
                        m.next = f"FIRE_PRIME_{depth + 1}" if depth + 1 < FIRE_STAGES else "FIRE"
            with m.State("FIRE"):
                # stage D of `group`, C of `group + 1`, B of `group + 2`, A of `group + 3`; the words of
                # `group + 4` are read.
                with unless_stalled():
                    m.d.comb += [mem_wr.addr.eq(group), mem_wr.en.eq(1), mem_wr.data.eq(next_membrane),
                                 mask_wr.addr.eq(Cat(group, write_half)), mask_wr.en.eq(1),
                                 mask_wr.data.eq(fired)]
                    m.d.sync += with_spikes.eq(Cat(with_spikes[1:], fired.any()))
                    if mp.synaptic:
                        m.d.comb += [pot_wr.addr.eq(group), pot_wr.en.eq(1), pot_wr.data.eq(next_potential)]
                    fire_reads(group + FIRE_STAGES)
                    m.d.sync += advance
                    if self.membrane_out:
                        m.d.comb += self.o_membranes.valid.eq(1)
                    end_of_fire()
            if dense_recurrent:
                self._recurrent_pass(m, own_rd, write_half, group, integ_last, row_base, integrate_word)
            with m.State("END_STEP"):
                with m.If(~full):                             # hand the written half to the emitter
                    m.d.sync += [full.eq(1), emit_last.eq(last_step), write_half.eq(~write_half)]
                    emitter.hand_over(with_spikes)
                    if mp.accumulators:
                        accumulated.arm()
                    m.next = "WAIT"
        emitter.emit(mask_rd, full, emit_last, self.o_events,
                     **({"neuron_of": self._conv_neuron} if mp.conv else {}))
        # `clear` returns every register, the FSM included, to its initial value: the CLEAR state. The
        # weight memory is outside it: its SPRAM contents and `loaded` survive every inference.
        outer = Module()
        outer.submodules.core = ResetInserter(self.clear)(m)
        if weights is None:
            outer.d.comb += self.loaded.eq(1)
            return outer
        outer.submodules.weights = weights
        wiring.connect(outer, wiring.flipped(self.w_load), weights.load)
        outer.d.comb += self.loaded.eq(weights.loaded)
        return outer

    def _recurrent_pass(self, m: Module, own_rd, write_half, group, integ_last, row_base, integrate_word) -> None:
        """FSM states integrating V's row n_in + i into every membrane for each neuron i that just fired:
        REC_START reads group 0's new mask, REC_SCAN moves past groups without spikes (one cycle each),
        REC_ROW picks the lowest remaining neuron of a group, REC_INTEGRATE adds its row (``weight_groups``
        cycles)."""
        mp, lanes, groups = self.mapping, self.mapping.lanes, self.mapping.groups
        scan = Signal.like(group, name="rec_group")
        bits = Signal(lanes, name="rec_bits")
        remaining, lane = lowest_set_bit(m, bits, lanes)

        def next_mask():
            with m.If(scan == groups - 1):
                m.next = "END_STEP"
            with m.Else():
                m.d.comb += own_rd.addr.eq(Cat((scan + 1)[:len(scan)], write_half))
                m.d.sync += scan.eq(scan + 1)
                m.next = "REC_SCAN"

        with m.State("REC_START"):
            m.d.comb += own_rd.addr.eq(Cat(Const(0, len(scan)), write_half))
            m.d.sync += scan.eq(0)
            m.next = "REC_SCAN"
        with m.State("REC_SCAN"):                             # `scan`'s new spike mask is on own_rd.data
            with m.If(own_rd.data == 0):
                next_mask()
            with m.Else():
                m.d.sync += bits.eq(own_rd.data)
                m.next = "REC_ROW"
        with m.State("REC_ROW"):
            row_words = mp.weight_groups
            m.d.sync += [row_base.eq((mp.n_in + scan * lanes + lane) * row_words), bits.eq(remaining),
                         group.eq(0), integ_last.eq(row_words == 1)]
            m.next = "REC_INTEGRATE"
        with m.State("REC_INTEGRATE"):
            integrate_word()
            with m.If(integ_last):
                m.d.sync += group.eq(0)
                with m.If(bits != 0):
                    m.next = "REC_ROW"
                with m.Else():
                    next_mask()

    def _conv_integration(self, m: Module, weights, mem_rd, write_valid, write_group) -> "_ConvTaps":
        """The conv layer's integration: for each input spike, one cycle per channel block j and kernel offset
        (ky, kx) through which it reaches an output (blocks innermost, then kx, then ky, each offset a step of
        the stride from the first that reaches one; at least one cycle), three pipeline stages: S0 reads the
        row and column ROMs (the first group of the output row / column the offset reaches, if any) at the
        spike's decoded row and column bases; S1 adds them and j to the group, reads its membrane and the
        kernel word; S2 (the dense write-back, ``write_valid`` / ``write_group``) adds the word. Consecutive
        offsets reach distinct groups; a group read in S1 while S2 writes it sees the new value (transparent
        read)."""
        mp, conv = self.mapping, self.mapping.conv
        (channels, height, width), (kh, kw), (sh, sw) = conv.in_shape, conv.kernel, conv.stride
        top, left = conv.padding[0], conv.padding[1]
        _, out_h, out_w = conv.out_shape
        blocks, offsets = mp.channel_blocks, mp.kernel_offsets
        row_reach, col_reach = mp.conv_reach()
        cycles = mp.input_integration_cycles()
        decode_layout = data.StructLayout(mp.conv_decode_fields())
        decode_init = []
        for index, spike_cycles in enumerate(cycles.tolist()):
            c, y, x = index // (height * width), index // width % height, index % width
            (ky, _), (kx, nx) = row_reach[y], col_reach[x]
            decode_init.append({"kernel": (c * offsets + ky * kw + kx) * blocks, "row": y * kh + ky,
                                "column": x * kw + kx, "column_span": max(nx - 1, 0) * sw,
                                "rest": spike_cycles - 1, "single": int(spike_cycles == 1)})
        m.submodules.input_decode = decode = memory.Memory(shape=decode_layout, depth=mp.n_in, init=decode_init)
        decode_rd = decode.read_port()
        target = data.StructLayout({"hit": 1, "group": range(max(mp.groups, 2))})

        def reach(size, kernel, stride, pad, out, scale):
            """Per input index and kernel offset: the output index it reaches times ``scale``, or no hit."""
            reached = [reached_output(i, k, stride, pad, out) for i in range(size) for k in range(kernel)]
            return [{"hit": int(o is not None), "group": o * scale if o is not None else 0} for o in reached]

        m.submodules.row_groups = rows = memory.Memory(shape=target, depth=max(height * kh, 2),
                                                      init=reach(height, kh, sh, top, out_h, out_w * blocks))
        m.submodules.column_groups = cols = memory.Memory(shape=target, depth=max(width * kw, 2),
                                                         init=reach(width, kw, sw, left, out_w, blocks))
        row_rd, col_rd = rows.read_port(), cols.read_port()
        return _ConvTaps(m, decode_rd, row_rd, col_rd, weights, mem_rd, write_valid, write_group, mp)

    def _accumulators(self, m: Module, weights, write_valid, write_group) -> "_Accumulators":
        """Flip-flop accumulators, one per neuron: weight word group g read in one cycle adds lane k to neuron
        ``g * weight_lanes + k`` in the next (``write_valid``, ``write_group``)."""
        mp = self.mapping
        sums = [Signal(signed(mp.acc_bits), name=f"acc{i}") for i in range(mp.n_out)]
        for g in range(mp.weight_groups):
            neurons = range(g * mp.weight_lanes, min((g + 1) * mp.weight_lanes, mp.n_out))
            adding = Signal(name=f"acc_add{g}")
            m.d.comb += adding.eq(write_valid & (write_group == g))
            # An unconditional add of a gated weight: the gate is per weight bit, not per accumulator bit.
            m.d.sync += [sums[i].eq(sums[i] + Mux(adding, weights.data[i - neurons.start], 0)) for i in neurons]
        return _Accumulators(m, sums, mp)

    def _conv_neuron(self, group, lane, lanes):
        """The neuron of a conv layer's slot: ``(j * lanes + lane) * P + p`` for group ``p * m + j``."""
        blocks, positions = self.mapping.channel_blocks, self.mapping.conv.positions
        shift = blocks.bit_length() - 1
        return ((group[:shift] * lanes if shift else 0) + lane) * positions + (group >> shift)

    def _state_memory(self, m: Module, name: str, width: int, transparent: bool = False):
        """The write and read ports of a new per-neuron state memory (``groups`` words of ``lanes`` signed
        ``width``-bit values); a ``transparent`` read of the word being written sees the new value."""
        mem = memory.Memory(shape=data.ArrayLayout(signed(width), self.mapping.lanes), depth=self.mapping.groups,
                            init=[])
        m.submodules[name] = mem
        write = mem.write_port()
        return write, mem.read_port(transparent_for=(write,) if transparent else ())

    def _rom(self, m: Module, name: str, shape, values: list[int]):
        """A read port of a ROM of per-neuron ``values`` (``shape``: unsigned bits or a signed shape), one
        word of lanes per group."""
        rom = memory.Memory(shape=data.ArrayLayout(shape, self.mapping.lanes), depth=self.mapping.groups,
                            init=self.mapping.group_words(values))
        m.submodules[name] = rom
        return rom.read_port()

    def _fire_lane(self, u, params: dict, carried: dict, k: int) -> tuple[list, dict]:
        """One lane's stages B, C and D: the assignments of the stage B and C registers, and stage D's
        combinational ``spike``, ``membrane`` (the next timestep's starting word), with ``membrane_out`` ``v``
        (stage B's saturated state) and, Synaptic, ``potential``. ``params[what]`` holds a parameter as stages
        B, C and D see it."""
        layer = self.layer
        lo, hi = -(1 << (self.state_bits - 1)), (1 << (self.state_bits - 1)) - 1
        threshold_b, _, threshold_d = params["threshold"]
        v, spike = Signal(signed(self.state_bits), name=f"b_v{k}"), Signal(name=f"b_s{k}")
        registers = []
        if layer.synaptic:
            syn = Signal(signed(self.state_bits), name=f"b_syn{k}")
            registers.append(syn.eq(clamp(u, lo, hi)))
            u = carried["potential"] + clamp(u, lo, hi)     # v's sum before saturation
        fires = (u > threshold_b) if not isinstance(threshold_b, int) or threshold_b < hi else 0
        saturated = clamp(u, lo, hi)
        if "spiked" in carried:           # a spike at t-1 clears the whole new membrane: v = 0, no spike
            saturated, fires = Mux(carried["spiked"], 0, saturated), ~carried["spiked"] & fires
        registers += [v.eq(saturated), spike.eq(fires)]
        # stage C: the leak (a zero reset of the old membrane is a mux, so it goes here too)
        reset = Reset.NONE if layer.clears_whole_membrane else layer.reset
        c_spike, c_leaked = Signal(name=f"c_s{k}"), Signal(signed(self.state_bits), name=f"c_leak{k}")
        leaked = self._decay(v, params["beta_q"][1])
        registers += [c_spike.eq(spike), c_leaked.eq(Mux(spike, 0, leaked) if reset is Reset.ZERO else leaked)]
        if layer.synaptic:
            c_syn = Signal(signed(self.state_bits), name=f"c_syn{k}")
            registers.append(c_syn.eq(self._decay(syn, params["alpha_q"][1])))
        stage_d = {"spike": c_spike}
        if self.membrane_out:
            stage_d["v"] = Signal.like(v, name=f"c_v{k}")
            registers.append(stage_d["v"].eq(v))
        # stage D: the reset subtraction and a one-to-one V
        subtracted = c_leaked - Mux(c_spike, threshold_d, 0) if reset is Reset.SUBTRACT else c_leaked
        feedback = Mux(c_spike, params["recurrent"][2], 0) if params["recurrent"] is not None else 0
        if layer.synaptic:
            return registers, {**stage_d, "potential": subtracted, "membrane": c_syn + feedback}
        return registers, {**stage_d, "membrane": subtracted + feedback}

    def _decay(self, value, factor):
        """``floor(factor * value / 2^F)``; ``factor`` is an int (shift-and-add) or a per-neuron signal."""
        product = shift_add_product(value, factor) if isinstance(factor, int) else value * factor
        return product >> self.layer.frac_bits      # arithmetic shift of a signed product: floor

def clamp(value, lo: int, hi: int):
    """``value`` saturated to [lo, hi]."""
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


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


class _ConvTaps:
    """The counters and pipeline registers of a conv layer's integration (see
    :meth:`DenseLIFLayer._conv_integration`): :meth:`start` on taking a spike, :meth:`step` in each
    integration cycle; ``last`` is high in a spike's last one. The offsets are counted from the spike's first
    reaching one (``dy``, ``dx``); its decoded word says how far the columns go and how many cycles follow
    the first."""

    def __init__(self, m: Module, decode_rd, row_rd, col_rd, weights, mem_rd, write_valid, write_group, mp):
        self.m, self.decode_rd, self.mp = m, decode_rd, mp
        (kh, kw), (sh, sw) = mp.conv.kernel, mp.conv.stride
        blocks = mp.channel_blocks
        self.dy, self.dx = Signal(range(kh + sh), name="tap_dy"), Signal(range(kw + sw), name="tap_dx")
        self.j = Signal(range(max(blocks, 2)), name="tap_block")
        self.row_word = Signal(range((kh + sh) * kw * blocks), name="tap_row_word")   # dy * kw * blocks
        self.first = Signal(name="tap_first")       # the spike's first integration cycle
        self.left = Signal.like(decode_rd.data.rest, name="tap_left")   # cycles after the current one
        self.then_last = Signal(name="tap_then_last")   # registered: the next cycle is the spike's last
        self.last = Signal(name="tap_last")
        m.d.comb += self.last.eq(Mux(self.first, decode_rd.data.single, self.then_last))
        s1_valid, s1_block = Signal(name="s1_valid"), Signal.like(self.j, name="s1_block")
        s1_word = Signal.like(decode_rd.data.kernel, name="s1_word")
        self.s0_active = Signal(name="s0_active")
        m.d.comb += [decode_rd.en.eq(0), row_rd.addr.eq(decode_rd.data.row + self.dy),
                     col_rd.addr.eq(decode_rd.data.column + self.dx)]
        m.d.sync += [s1_valid.eq(self.s0_active), s1_block.eq(self.j),
                     s1_word.eq(decode_rd.data.kernel + self.row_word + self.dx * blocks + self.j)]
        hit = Signal(name="s1_hit")
        m.d.comb += hit.eq(s1_valid & row_rd.data.hit & col_rd.data.hit)
        with m.If(s1_valid):
            m.d.comb += [mem_rd.addr.eq(row_rd.data.group + col_rd.data.group + s1_block), weights.addr.eq(s1_word)]
        m.d.sync += [write_valid.eq(hit), write_group.eq(row_rd.data.group + col_rd.data.group + s1_block)]

    def start(self, index) -> None:
        """Take spike ``index``: decode it, offsets from its first reaching one, block 0."""
        self.m.d.comb += [self.decode_rd.addr.eq(index), self.decode_rd.en.eq(1)]
        self.m.d.sync += [self.dy.eq(0), self.dx.eq(0), self.j.eq(0), self.row_word.eq(0), self.first.eq(1)]

    def step(self) -> None:
        """One offset and block of the current spike (S0); ``last`` is high in its last cycle."""
        m, blocks, mp = self.m, self.mp.channel_blocks, self.mp
        (_, kw), (sh, sw) = mp.conv.kernel, mp.conv.stride
        left = Mux(self.first, self.decode_rd.data.rest, self.left)
        m.d.comb += self.s0_active.eq(1)
        m.d.sync += [self.first.eq(0), self.left.eq(left - 1), self.then_last.eq(left == 1)]
        with m.If(self.j == blocks - 1):
            m.d.sync += self.j.eq(0)
            with m.If(self.dx == self.decode_rd.data.column_span):
                m.d.sync += [self.dx.eq(0), self.dy.eq(self.dy + sh),
                             self.row_word.eq(self.row_word + sh * kw * blocks)]
            with m.Else():
                m.d.sync += self.dx.eq(self.dx + sw)
        with m.Else():
            m.d.sync += self.j.eq(self.j + 1)


class _Accumulators:
    """A layer's flip-flop accumulators (see :meth:`DenseLIFLayer._accumulators`) as the fire pass sees them:
    each :meth:`take` (in the cycle a group's membrane word is read, groups in order from 0, group 0 again
    after :meth:`arm`) puts the next group's sums on ``current`` the cycle after, as a read port would, and
    clears them. The group taken is a registered one-hot selection, so no address decoding lies on the path
    into ``current``.

    ``blocked`` (a register, see :meth:`block_on`) says the selected group cannot be taken yet; the facts it
    needs about the selected group are shift registers of per-group flags, bit 0 for the selected group."""

    def __init__(self, m: Module, sums: list, mp: LayerMapping):
        self.m, self.sums, self.mp = m, sums, mp
        self.current = [Signal(signed(mp.acc_bits), name=f"a_acc{k}") for k in range(mp.lanes)]
        self.selected = Signal(mp.groups, name="acc_take", init=1)
        self.blocked = Signal(name="acc_blocked", init=1)   # group 0, nothing integrated yet
        self._take, self._arm = Signal(name="acc_taking"), Signal(name="acc_arming")
        needs, completes = mp.pass_ties()
        # completing[c]: the fire groups that complete more than c integration groups
        completing = [sum(1 << g for g, done in enumerate(completes) if len(done) > c)
                      for c in range(max(map(len, completes)))]
        # straddling: the fire groups that complete an integration group and hold neurons of the next, so need
        # two passes beyond those fully taken before them
        straddling = sum(1 << g for g, (need, done) in enumerate(zip(needs, completes)) if done and need > done[0] + 1)
        self._remaining = self._flags("acc_remaining", (1 << mp.groups) - 1)
        self._straddling = self._flags("acc_straddling", straddling)
        self._completing = [self._flags(f"acc_completing{c}", mask) for c, mask in enumerate(completing)]

    def _flags(self, name: str, init: int) -> tuple[Signal, Signal]:
        """Per-group flags ``init`` from the selected group on (register, its next value): shifted down by a
        take, reloaded by an arm."""
        flags, following = Signal(self.mp.groups, name=name, init=init), Signal(self.mp.groups, name=f"{name}_next")
        self.m.d.comb += following.eq(Mux(self._arm, init, Mux(self._take, flags >> 1, flags)))
        self.m.d.sync += flags.eq(following)
        return flags, following

    def arm(self) -> None:
        """The next :meth:`take` takes group 0."""
        self.m.d.comb += self._arm.eq(1)
        self.m.d.sync += self.selected.eq(1)

    def block_on(self, lag_next) -> None:
        """Keep ``blocked`` for the next cycle: the group then selected is not taken while ``lag``
        (:class:`_Integrator`, ``lag_next`` its next value) counts fewer integrated passes than it needs (one,
        or two where it straddles integration groups)."""
        remaining, straddling = self._remaining[1], self._straddling[1]
        self.m.d.sync += self.blocked.eq(remaining[0] & Mux(straddling[0], lag_next < 2, lag_next == 0))

    def take(self, completed) -> None:
        """Take the selected group (none once every group was taken) and select the next; ``completed`` is
        driven with the number of integration groups that completes."""
        m, lanes = self.m, self.mp.lanes
        m.d.comb += self._take.eq(1)
        m.d.sync += self.selected.eq(self.selected << 1)
        m.d.comb += completed.eq(sum(flags[0] for flags, _ in self._completing))
        for k in range(lanes):
            terms = [Mux(self.selected[g], self.sums[g * lanes + k], 0) for g in range(self.mp.groups)
                     if g * lanes + k < len(self.sums)]
            m.d.sync += self.current[k].eq(or_tree(terms))
        for g in range(self.mp.groups):
            with m.If(self.selected[g]):
                m.d.sync += [self.sums[i].eq(0) for i in range(g * lanes, min((g + 1) * lanes, len(self.sums)))]


class _Integrator:
    """The integration of an accumulator core, a process of its own beside the fire pass.

    Integration group w (``weight_lanes`` neurons) of timestep t is one *pass*: pass 0 integrates each spike
    of t as it arrives (taken at cycle a, its weight word read at a + 1) and keeps the spike's row in a replay
    buffer; the end-of-timestep (cycle e) closes it at e + 1; passes w >= 1 then replay the buffer, a word per
    cycle, and close the cycle after their last word. ``lag`` counts the passes closed and not yet taken by
    the fire pass (an integration group is taken with its last fire group): a pass starts (pass 0: takes an
    event) only while ``lag < weight_groups``, that is once the fire pass has taken the group from the
    previous timestep, and the fire pass takes a group only once its passes are closed. So the fire pass of
    t overlaps the integration of t + 1, and that of t's later groups."""

    def __init__(self, m: Module, i_events, weights, integ_valid, integ_group, mp: LayerMapping):
        passes = mp.weight_groups
        self.lag = Signal(range(passes + 1), name="lag")
        self.lag_next = Signal(range(passes + 1), name="lag_next")
        self.taken = Signal(range(3), name="passes_taken")   # integration groups the fire pass takes now
        self.last = Signal(name="integrated_last")       # the last end-of-timestep taken ends the inference
        self.waiting = Signal(name="integrator_waiting")
        closed = Signal(name="pass_closed")
        m.d.comb += self.lag_next.eq(self.lag + closed - self.taken)
        m.d.sync += self.lag.eq(self.lag_next)
        room = Signal(name="pass_room")
        m.d.comb += room.eq(self.lag < passes)
        spike, row = Signal(name="pass0_spike"), Signal(range(max(mp.weight_words, 2)), name="pass0_row")
        m.d.sync += spike.eq(0)
        if passes > 1:
            m.submodules.replay = replay = memory.Memory(shape=range(max(mp.weight_words, 2)), depth=mp.n_in,
                                                         init=[])
            replay_wr, replay_rd = replay.write_port(), replay.read_port()
            count, index = Signal(range(mp.n_in + 1), name="replay_count"), Signal(range(mp.n_in + 1),
                                                                                   name="replay_index")
            word = Signal(range(passes), name="replay_pass")
        with m.If(spike):                                 # pass 0: the spike taken last cycle
            m.d.comb += weights.addr.eq(row)
            m.d.sync += [integ_valid.eq(1), integ_group.eq(0)]
            if passes > 1:
                m.d.comb += [replay_wr.addr.eq(count), replay_wr.data.eq(row), replay_wr.en.eq(1)]
                m.d.sync += count.eq(count + 1)
        payload = i_events.payload
        with m.FSM(name="integrate"):
            with m.State("TAKE"):
                m.d.comb += [self.waiting.eq(1), i_events.ready.eq(room)]
                with m.If(room & i_events.valid):
                    with m.If(payload.eot):
                        m.d.sync += self.last.eq(payload.last)
                        m.next = "CLOSE"
                    with m.Else():
                        m.d.sync += [spike.eq(1), row.eq(payload.index * passes)]
            with m.State("CLOSE"):                        # the last spike's word is added this cycle
                m.d.comb += closed.eq(1)
                if passes > 1:
                    m.d.sync += [index.eq(0), word.eq(1)]
                    m.next = "REPLAY"
                else:
                    m.next = "TAKE"
            if passes > 1:
                with m.State("REPLAY"):                   # replay_rd holds entry `index` (read ahead)
                    m.d.comb += replay_rd.addr.eq(index)
                    with m.If(room & (index != count)):
                        m.d.comb += [weights.addr.eq(replay_rd.data + word), replay_rd.addr.eq(index + 1)]
                        m.d.sync += [integ_valid.eq(1), integ_group.eq(word), index.eq(index + 1)]
                    with m.If(room & (index == count)):
                        m.d.comb += [closed.eq(1), replay_rd.addr.eq(0)]
                        m.d.sync += [index.eq(0), word.eq(word + 1)]
                        with m.If(word == passes - 1):
                            m.d.sync += count.eq(0)
                            m.next = "TAKE"

