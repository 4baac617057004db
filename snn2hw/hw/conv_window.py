"""A convolution's integration by output position (:attr:`snn2hw.passes.mapping.LayerMapping.window`).

Instead of adding a kernel word per input spike and reached output, the core collects a timestep's input
spikes as a bitmap and then computes every group's current at once from the spikes in its window, with the
kernel held in logic (a constant per weight, or per channel block a choice of constants):

* each input spike sets its bit in the *collecting* bitmap, one event per cycle; the end-of-timestep moves
  that bitmap to the *summing* one (and clears it) and starts a *current pass*, once the previous pass has left
  the summing bitmap and one of the two halves of the current memory is free (until then only the
  end-of-timestep waits; spikes of the next timestep keep coming);
* the current pass takes one group per cycle, in slot order (``g = p * m + j``, position p in raster order,
  channel block j), through four registered stages: S0 selects the kernel's input rows of the group's output
  row, S1 the window of its output column (bits outside the input are 0), S2 sums per lane the kernel weights
  whose input spiked, S3 writes the sums into the pass's half of the current memory;
* the fire pass reads a group's current at ``addr`` with its membrane word (on ``current`` the cycle after) once
  ``ready`` says a pass is complete, and ``release`` hands the half back after its last group.

So the integration of timestep t + 1 and the current pass of t run beside the fire pass of t - 1, and a spike
costs one cycle whatever the kernel. The sums are the same integers as the golden model's ``W x[t]``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..ir import Layer
from ..passes.mapping import LayerMapping, index_bits
from .events import event_stream
from .trees import sum_tree

__all__ = ["ConvWindow"]


class ConvWindow(wiring.Component):
    """Ports: ``i_events`` (in stream), ``addr`` (in: the fire pass's group), ``current`` (out: that group's
    current, one cycle after ``addr``, read while ``en``), ``en`` (in), ``ready`` (out: a pass is complete),
    ``last`` (out: its timestep ends the inference), ``release`` (in pulse: the fire pass is done with it),
    ``idle`` (out: the next event of any kind would be taken)."""

    def __init__(self, layer: Layer, mapping: LayerMapping):
        if mapping.conv is None or not mapping.window:
            raise ValueError(f"layer {mapping.name!r} is not a conv layer mapped to integrate by window")
        self.layer, self.mapping = layer, mapping
        super().__init__({
            "i_events": In(event_stream(mapping.n_in)),
            "addr": In(range(max(mapping.groups, 2))),
            "en": In(1),
            "current": Out(data.ArrayLayout(signed(mapping.acc_bits), mapping.lanes)),
            "ready": Out(1),
            "last": Out(1),
            "release": In(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        groups = mp.groups
        group_bits = index_bits(groups)
        m.submodules.currents = currents = memory.Memory(
            shape=data.ArrayLayout(signed(mp.acc_bits), mp.lanes), depth=mp.current_words, init=[])
        write, read = currents.write_port(), currents.read_port()

        collecting, summing = Signal(mp.n_in, name="collecting"), Signal(mp.n_in, name="summing")
        held = Signal(range(3), name="passes_held")          # passes started and not released
        complete = Signal(range(3), name="passes_complete")  # passes written and not released
        running = Signal(name="pass_running")                # S0 still reads the summing bitmap
        pass_half, read_half = Signal(name="pass_half"), Signal(name="read_half")
        last_of = Signal(2, name="last_of_half")
        started, finished = Signal(), Signal()

        # events
        payload = self.i_events.payload
        can_close = Signal()
        m.d.comb += [can_close.eq(~running & (held != 2)), self.idle.eq(can_close),
                     self.i_events.ready.eq(~payload.eot | can_close)]
        with m.If(self.i_events.valid & self.i_events.ready):
            with m.If(payload.eot):
                m.d.comb += started.eq(1)
                m.d.sync += [summing.eq(collecting), collecting.eq(0), running.eq(1), pass_half.eq(~pass_half),
                             last_of.bit_select(pass_half, 1).eq(payload.last)]
            with m.Else():
                m.d.sync += collecting.bit_select(payload.index, 1).eq(1)
        m.d.sync += [held.eq(held + started - self.release), complete.eq(complete + finished - self.release)]
        with m.If(self.release):
            m.d.sync += read_half.eq(~read_half)
        m.d.comb += [self.ready.eq(complete != 0), self.last.eq(last_of.bit_select(read_half, 1)),
                     read.addr.eq(Cat(self.addr[:group_bits], read_half)), read.en.eq(self.en),
                     self.current.eq(read.data)]

        # the current pass: S0 .. S3
        stage = self._pass_pipeline(m, summing, running, started, pass_half)
        m.d.comb += [write.addr.eq(Cat(stage["group"][:group_bits], stage["half"])), write.en.eq(stage["valid"]),
                     write.data.eq(stage["sums"]), finished.eq(stage["valid"] & (stage["group"] == groups - 1))]
        return m

    def _pass_pipeline(self, m: Module, summing, running, started, pass_half) -> dict:
        """Stages S0-S2 of the current pass (module docstring); returns S3's ``valid``, ``group``, ``half`` and
        ``sums``."""
        mp, conv = self.mapping, self.mapping.conv
        (channels, height, width), (kh, kw), (sh, sw) = conv.in_shape, conv.kernel, conv.stride
        top, left = conv.padding[0], conv.padding[1]
        _, out_h, out_w = conv.out_shape
        blocks, groups = mp.channel_blocks, mp.groups

        # S0 counters: group, its block, output column and row
        group = Signal(range(max(groups, 2)), name="pass_group")
        block = Signal(range(max(blocks, 2)), name="pass_block")
        ox, oy = Signal(range(max(out_w, 2)), name="pass_x"), Signal(range(max(out_h, 2)), name="pass_y")
        with m.If(started):
            m.d.sync += [group.eq(0), block.eq(0), ox.eq(0), oy.eq(0)]
        with m.Elif(running):
            m.d.sync += [group.eq(group + 1), block.eq(block + 1)]
            with m.If(block == blocks - 1):
                m.d.sync += [block.eq(0), ox.eq(ox + 1)]
                with m.If(ox == out_w - 1):
                    m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
            with m.If(group == groups - 1):
                m.d.sync += running.eq(0)

        def staged(name, value):
            """``value`` registered: as the next stage sees it."""
            reg = Signal.like(value, name=name)
            m.d.sync += reg.eq(value)
            return reg

        # S0 -> S1: per channel and kernel row, the input row of the output row oy (0 outside the input)
        rows = [[Signal(width, name=f"s1_row_c{c}_k{ky}") for ky in range(kh)] for c in range(channels)]
        with m.Switch(oy):
            for y in range(out_h):
                with m.Case(y):
                    for c in range(channels):
                        for ky in range(kh):
                            iy = y * sh + ky - top
                            start = (c * height + iy) * width
                            m.d.sync += rows[c][ky].eq(summing[start:start + width] if 0 <= iy < height else 0)
        s1 = {"valid": staged("s1_valid", running), "group": staged("s1_group", group),
              "block": staged("s1_block", block), "x": staged("s1_x", ox), "half": staged("s1_half", ~pass_half)}

        # S1 -> S2: the window of output column x, taps in (c, ky, kx) order
        taps = [(c, ky, kx) for c in range(channels) for ky in range(kh) for kx in range(kw)]
        window = Signal(len(taps), name="s2_window")
        with m.Switch(s1["x"]):
            for x in range(out_w):
                with m.Case(x):
                    bits = []
                    for c, ky, kx in taps:
                        ix = x * sw + kx - left
                        bits.append(rows[c][ky][ix] if 0 <= ix < width else Const(0, 1))
                    m.d.sync += window.eq(Cat(*bits))
        s2 = {name: staged(f"s2_{name}", s1[name]) for name in ("valid", "group", "block", "half")}

        # S2 -> S3: per lane, the sum of the kernel weights whose input spiked
        kernel = mp.conv.kernel_of(self.layer.weight, self.layer.name)       # [K, C, kh, kw]
        sums = Signal(data.ArrayLayout(signed(mp.acc_bits), mp.lanes), name="s3_sums")
        for k in range(mp.lanes):
            terms = []
            for t, (c, ky, kx) in enumerate(taps):
                per_block = [int(kernel[j * mp.lanes + k, c, ky, kx]) for j in range(blocks)]
                if any(per_block):
                    terms.append(_weight_if(m, window[t], per_block, s2["block"]))
            m.d.sync += sums[k].eq(sum_tree(terms))
        s3 = {name: staged(f"s3_{name}", s2[name]) for name in ("valid", "group", "half")}
        return {**s3, "sums": sums}


def _weight_if(m: Module, bit, per_block: list[int], block):
    """``per_block[block]`` where ``bit`` is set, else 0 (a constant when there is one block)."""
    bits = max(abs(w) for w in per_block).bit_length() + 1
    if len(per_block) == 1:
        value = Const(per_block[0], signed(bits))
    else:
        value = Signal(signed(bits), name="block_weight")
        with m.Switch(block):
            for j, w in enumerate(per_block):
                with m.Case(j):
                    m.d.comb += value.eq(w)
    return bit.replicate(bits).as_signed() & value
