"""The accelerator top: a chain of layer cores between a spike input stream and a spike output stream.

Handshake per inference: pulse ``start`` for one cycle (it clears every layer's state), send the input
events of each timestep (see :mod:`snn2hw.hw.events`), the final end-of-timestep beat with ``last`` set;
output events of the last layer come out in the same format and ``done`` rises after the final
end-of-timestep beat has been taken, staying high until the next ``start``. Layer l+1 integrates layer l's
spikes as they are emitted, so consecutive layers work concurrently.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir import Network
from ..passes.mapping import LayerMapping
from .events import event_stream
from .lif_layer import DenseLIFLayer

__all__ = ["Accelerator", "TOP_NAME"]

TOP_NAME = "snn_accelerator"


class Accelerator(wiring.Component):
    """Ports: ``start`` (in pulse), ``done`` (out level), ``i_spikes`` / ``o_spikes`` (event streams)."""

    def __init__(self, network: Network, mappings: tuple[LayerMapping, ...]):
        self.network, self.mappings = network, mappings
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "i_spikes": In(event_stream(network.n_in)),
            "o_spikes": Out(event_stream(network.n_out)),
        })

    def elaborate(self, platform):
        m = Module()
        cores = []
        for layer, mapping in zip(self.network.layers, self.mappings):
            core = DenseLIFLayer(layer, mapping, self.network.state_bits)
            m.submodules[f"layer_{layer.name}"] = core
            m.d.comb += core.clear.eq(self.start)
            cores.append(core)
        wiring.connect(m, wiring.flipped(self.i_spikes), cores[0].i_events)
        for upstream, downstream in zip(cores, cores[1:]):
            wiring.connect(m, upstream.o_events, downstream.i_events)
        wiring.connect(m, cores[-1].o_events, wiring.flipped(self.o_spikes))

        final_beat = self.o_spikes.valid & self.o_spikes.ready & self.o_spikes.payload.eot \
            & self.o_spikes.payload.last
        with m.If(self.start):
            m.d.sync += self.done.eq(0)
        with m.Elif(final_beat):
            m.d.sync += self.done.eq(1)
        return m
