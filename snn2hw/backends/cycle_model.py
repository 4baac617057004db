"""The cycle model: exact cycles per inference of the generated hardware, from spike activity alone.

It replays the handshakes of :mod:`snn2hw.hw.lif_layer` at beat level: every layer core is two processes,
its integrate-and-fire part and its emitter, each receiving beats on its input link and sending beats on
its output link; a beat moves when the sender offers it and the receiver waits for it (the later of the two
cycles). Costs per layer core (G = groups):

* ``start`` at cycle 0, then G clear cycles; the core waits from cycle G + 1;
* an input spike taken at cycle a: integration in cycles a+1 .. a+R, R = its input's
  ``input_integration_cycles`` (G; a conv layer: the kernel offsets through which it reaches an output, at
  least one, times the channel blocks); the core takes its next event from cycle a + R on; spikes arrive in
  the order the previous layer emits them (its slots', :meth:`~snn2hw.passes.mapping.LayerMapping.slot_neurons`);
* an end-of-timestep taken at cycle a: a read cycle (a+1), three pipeline cycles and one update cycle per
  group (a conv layer first drains its integration pipeline for a cycle); at cycle
  a + 5 + G (+ 1) the spike buffer is offered to the emitter, which takes it once it has sent the previous
  timestep's end-of-timestep beat; the core waits again the cycle after the hand-over;
* a dense recurrent layer, except after the last timestep, first spends 1 + G cycles scanning its new spikes
  and 1 + R cycles per spike integrating V's rows, then offers the buffer;
* an accumulator core (its integration beside its fire pass, :class:`~snn2hw.hw.lif_layer._Integrator`)
  takes events from cycle 1, each a cycle after the previous one, those of timestep t + 1 once the fire pass
  of t has taken integration group 0 (from the cycle after its last fire group was read); the end-of-timestep
  taken at e closes pass 0 at e+1, counted from e+2; pass w >= 1 starts at the later of the previous pass's
  close plus one and the cycle after the fire pass of t - 1 took group w, reads one word per spike of the
  timestep and closes the cycle after (counted one cycle later); the fire pass, from the cycle after its last
  hand-over (the first: G + 1), reads fire group r at the later of the cycle after group r - 1's read and the
  cycle its needed passes count; five cycles after the last group's read, the spike buffer is offered;
* a convolution integrating by window (:class:`~snn2hw.hw.conv_window.ConvWindow`) takes its spikes from cycle 1,
  each a cycle after the previous one; the end-of-timestep of t, taken at e once the current pass of t - 1 has
  run its G cycles (from the cycle after its end-of-timestep) and the fire pass of t - 2 has released its half
  (counted from s + G + 4, its fire pass having read group 0 at s), starts t's current pass, complete from
  e + G + 4; the fire pass of t reads group 0 at s, the later of that and the cycle after the previous
  hand-over, and offers the spike buffer at s + G + 4;
* the emitter, given the buffer at cycle h, reads the masks of the groups with spikes (of slots,
  :meth:`~snn2hw.passes.mapping.LayerMapping.slot_neurons`) in ``SKIP_WINDOW``-group windows: group i's at
  f_i = the later of f_(i-1) + 1 (h + 1 for the first) plus a cycle per window without spikes before its
  window (from window 0 for the first, else after the previous group's window) and the cycle its
  predecessor's mask was taken; a mask read at f is taken at the later of f + 1 and the cycle the
  previous group's last beat moved, and its spikes are offered one per cycle from the cycle after (each the
  cycle after the previous one moved); the end-of-timestep beat is offered the cycle after the last beat (at
  h+2 without spikes), and the emitter can take the next buffer the cycle after that beat moved.

The host offers its beats back to back from cycle 1 and always takes output beats; ``done`` is seen the
cycle after the final end-of-timestep beat leaves. Activity comes from the golden model's trace.
"""

from __future__ import annotations

from typing import Generator

import numpy as np

from ..golden import Trace, as_batch, run
from ..ir import Network
from ..hw.spike_emitter import SKIP_WINDOW
from ..passes.mapping import LayerMapping

__all__ = ["inference_cycles", "batch_cycles"]

_Process = Generator[tuple[str, int], int, None]
FIRE_STAGES = 4     # the fire pass reads a group, then three more, before the first one's stage D


def _host(input_raster: np.ndarray) -> _Process:
    cycle = 1
    for step in input_raster:
        for _ in range(int(step.sum()) + 1):          # spikes, then end-of-timestep
            cycle = (yield ("send", cycle)) + 1


def _core(mapping: LayerMapping, input_raster: np.ndarray, output_raster: np.ndarray,
          arrival: np.ndarray) -> _Process:
    """The integrating and firing part of a layer core: receives events (spikes of the inputs in ``arrival``
    order), hands each timestep's spikes over to its emitter."""
    groups = mapping.groups
    spike_cycles = mapping.input_integration_cycles()[arrival]
    cycle = groups + 1
    for t, in_step in enumerate(input_raster):
        for cost in spike_cycles[in_step[arrival] != 0].tolist():
            cycle = (yield ("recv", cycle)) + cost
        cycle = (yield ("recv", cycle)) + mapping.fire_cycles    # read, stages A to C, one cycle per group
        if mapping.recurrent_rows and t < len(input_raster) - 1:
            cycle += 1 + groups + int(output_raster[t].sum()) * (1 + mapping.integration_cycles)  # recurrent pass
        cycle = (yield ("send", cycle)) + 1                  # hand the spike buffer over


def _accumulator_core(mapping: LayerMapping, input_raster: np.ndarray) -> _Process:
    """The integrating and firing parts of an accumulator core (the integrator of
    :mod:`snn2hw.hw.lif_layer`), two processes whose overlap this generator works out from their ties:
    pass (t, w) starts once the fire pass of t - 1 has taken integration group w, and the fire pass of t
    takes a fire group once the passes it needs are closed."""
    passes, groups = mapping.weight_groups, mapping.groups
    needs, completes = mapping.pass_ties()
    room = [0] * passes         # pass w of the coming timestep may start from this cycle
    integrator = 1              # the integrator takes events from this cycle
    fire_ready = groups + 1     # the fire pass may start from this cycle (after the clear)
    for in_step in input_raster:
        for _ in range(int(in_step.sum())):
            integrator = (yield ("recv", max(integrator, room[0]))) + 1
        end = yield ("recv", max(integrator, room[0]))
        visible = [end + 2]       # cycle from which each closed pass of this timestep counts
        integrator = end + 2
        for w in range(1, passes):
            closing = max(integrator, room[w]) + int(in_step.sum())
            visible.append(closing + 1)
            integrator = closing + 1
        cycle = fire_ready - 1
        for g in range(groups + FIRE_STAGES):          # the cycle each fire group is read (and taken)
            cycle = max(cycle + 1, visible[needs[g] - 1]) if g < groups else cycle + 1
            for w in completes[g] if g < groups else ():
                room[w] = cycle + 1
        fire_ready = (yield ("send", cycle + 1)) + 1     # stage D of the last group, then the hand-over


def _window_core(mapping: LayerMapping, input_raster: np.ndarray) -> _Process:
    """The integrating and firing parts of a conv core integrating by window
    (:class:`~snn2hw.hw.conv_window.ConvWindow`): its spikes are taken back to back, an end-of-timestep once the
    previous current pass has left the summing bitmap and the timestep two before has been released; the
    fire pass of t starts once its current pass is complete and the previous hand-over is done."""
    groups = mapping.groups
    integrator = 1              # the next event may be taken from this cycle
    summing_free = 1            # an end-of-timestep may be taken from this cycle: no current pass reads S0
    released = [1, 1]           # ... and from this one: the timestep two before has released its half
    fire_ready = groups + 1     # the fire pass may start from this cycle (after the clear)
    for t, in_step in enumerate(input_raster):
        for _ in range(int(in_step.sum())):
            integrator = (yield ("recv", integrator)) + 1
        end = yield ("recv", max(integrator, summing_free, released[t % 2]))
        integrator, summing_free = end + 1, end + groups + 1         # S0 in cycles end + 1 .. end + groups
        start = max(fire_ready, end + groups + 4)                    # the last S3 write counts from here
        released[t % 2] = start + FIRE_STAGES + groups               # the release in the last group's cycle
        fire_ready = (yield ("send", start + FIRE_STAGES + groups)) + 1


def _emitter(mapping: LayerMapping, output_raster: np.ndarray) -> _Process:
    """The emitting part of a layer core (:class:`~snn2hw.hw.spike_emitter.SpikeEmitter`): per handed-over
    timestep, its fetcher reads the masks of the groups with spikes, its sender sends one beat per spike,
    then the end-of-timestep beat."""
    slots = mapping.slot_neurons()
    ready = 0
    for out_step in output_raster:
        handed = yield ("recv", ready)
        per_group = np.append(out_step, 0)[slots].reshape(mapping.groups, mapping.lanes).sum(axis=1)
        fetched, window, taken, beat = handed, 0, handed, handed   # the last fetch, its window, take, beat
        for group in np.flatnonzero(per_group).tolist():
            # one read per cycle; windows without spikes before this group's cost a cycle each; the slot must
            # be free or taken in the same cycle
            fetched = max(fetched + 1 + max(0, group // SKIP_WINDOW - window - (fetched > handed)), taken)
            window = group // SKIP_WINDOW
            taken = max(beat, fetched + 1)    # with the previous group's last beat, or when the mask arrives
            beat = taken
            for _ in range(int(per_group[group])):
                beat = yield ("send", beat + 1)
        ready = (yield ("send", max(beat, handed + 1) + 1)) + 1


def _sink() -> _Process:
    while True:
        yield ("recv", 0)


def inference_cycles(mappings: tuple[LayerMapping, ...], rasters: list[np.ndarray]) -> int:
    """Cycles from ``start`` to ``done`` for one sample; ``rasters`` = [input, layer 1 spikes, ...],
    each [T, n]."""
    processes = [_host(rasters[0])]
    arrival = np.arange(rasters[0].shape[1])        # the order a layer's input spikes arrive in a timestep
    for index, mapping in enumerate(mappings):
        if mapping.accumulators:
            core = _accumulator_core(mapping, rasters[index])
        elif mapping.window:
            core = _window_core(mapping, rasters[index])
        else:
            core = _core(mapping, rasters[index], rasters[index + 1], arrival)
        slots = mapping.slot_neurons()
        arrival = slots[slots < mapping.n_out]
        processes += [core, _emitter(mapping, rasters[index + 1])]
    processes.append(_sink())
    pending = [next(process) for process in processes]
    last_transfer = 0
    active = True
    while active:
        active = False
        for link in range(len(processes) - 1):
            sender, receiver = pending[link], pending[link + 1]
            if sender is None or receiver is None or sender[0] != "send" or receiver[0] != "recv":
                continue
            moved = max(sender[1], receiver[1])
            if link == len(processes) - 2:
                last_transfer = moved
            for index in (link, link + 1):
                try:
                    pending[index] = processes[index].send(moved)
                except StopIteration:
                    pending[index] = None
            active = True
    return last_transfer + 1


def batch_cycles(network: Network, mappings: tuple[LayerMapping, ...], inputs: np.ndarray,
                 trace: Trace | None = None) -> list[int]:
    """Cycles per inference for every sample of ``inputs`` [B, T, n_in]."""
    batch = as_batch(inputs, network.n_in)
    trace = trace if trace is not None else run(network, batch)
    return [inference_cycles(mappings, [batch[b]] + [spikes[b] for spikes in trace.spikes])
            for b in range(batch.shape[0])]
