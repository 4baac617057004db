"""The accelerator top: a chain of layer cores between a spike input stream and a spike output stream.

Handshake per inference: pulse ``start`` for one cycle (it clears every layer's state), send the input
events of each timestep (see :mod:`snn2hw.hw.events`), the final end-of-timestep beat with ``last`` set;
output events of the last layer come out in the same format and ``done`` rises after the final
end-of-timestep beat has been taken, staying high until the next ``start``. Layer l+1 integrates layer l's
spikes as they are emitted, so consecutive layers work concurrently. ``o_membranes`` carries the last layer's
membranes of every timestep (:mod:`snn2hw.hw.membrane_readout`), without backpressure.

Weights in SPRAM (not initialised by the bitstream) are loaded once after reset, before the first
``start``: the ``w_load`` stream takes the 16-bit words of every SPRAM layer's image, layer after layer
(:func:`spram_image`), and ``loaded`` rises once all have arrived (at once when no layer uses SPRAM).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir import Network
from ..passes.mapping import LayerMapping
from .events import event_stream
from .lif_layer import DenseLIFLayer
from .membrane_readout import MembraneFormat, membrane_stream
from .weight_memory import load_stream

__all__ = ["Accelerator", "TOP_NAME", "spram_image", "membrane_format"]

TOP_NAME = "snn_accelerator"


class Accelerator(wiring.Component):
    """Ports: ``start`` (in pulse), ``done`` (out level), ``i_spikes`` / ``o_spikes`` (event streams),
    ``w_load`` (in stream of 16-bit words), ``loaded`` (out level), ``o_membranes`` (the membrane readout).
    ``spram_primitive=False`` models SPRAM with Amaranth memories (for Amaranth's simulator, which cannot run
    vendor primitives)."""

    def __init__(self, network: Network, mappings: tuple[LayerMapping, ...], spram_primitive: bool = True):
        self.network, self.mappings, self.spram_primitive = network, mappings, spram_primitive
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "i_spikes": In(event_stream(network.n_in)),
            "o_spikes": Out(event_stream(network.n_out)),
            "w_load": In(load_stream()),
            "loaded": Out(1),
            "o_membranes": Out(membrane_stream(membrane_format(network, mappings))),
        })

    def elaborate(self, platform):
        m = Module()
        cores = []
        for index, (layer, mapping) in enumerate(zip(self.network.layers, self.mappings)):
            core = DenseLIFLayer(layer, mapping, self.network.state_bits, self.spram_primitive,
                                 membrane_out=index == len(self.mappings) - 1)
            m.submodules[f"layer_{layer.name}"] = core
            m.d.comb += core.clear.eq(self.start)
            cores.append(core)
        self._connect_loading(m, cores)
        wiring.connect(m, wiring.flipped(self.i_spikes), cores[0].i_events)
        for upstream, downstream in zip(cores, cores[1:]):
            wiring.connect(m, upstream.o_events, downstream.i_events)
        wiring.connect(m, cores[-1].o_events, wiring.flipped(self.o_spikes))
        wiring.connect(m, cores[-1].o_membranes, wiring.flipped(self.o_membranes))

        final_beat = self.o_spikes.valid & self.o_spikes.ready & self.o_spikes.payload.eot \
            & self.o_spikes.payload.last
        with m.If(self.start):
            m.d.sync += self.done.eq(0)
        with m.Elif(final_beat):
            m.d.sync += self.done.eq(1)
        return m

    def _connect_loading(self, m: Module, cores: list[DenseLIFLayer]) -> None:
        """Route ``w_load`` to the first core still loading; ``loaded`` when every core is."""
        earlier_loaded = Signal(init=1)
        for index, core in enumerate(cores):
            selected = earlier_loaded & ~core.loaded
            m.d.comb += [core.w_load.payload.eq(self.w_load.payload),
                         core.w_load.valid.eq(self.w_load.valid & selected)]
            with m.If(selected):
                m.d.comb += self.w_load.ready.eq(core.w_load.ready)
            now_loaded = Signal(name=f"loaded_{index}")
            m.d.comb += now_loaded.eq(earlier_loaded & core.loaded)
            earlier_loaded = now_loaded
        m.d.comb += self.loaded.eq(earlier_loaded)


def spram_image(network: Network, mappings: tuple[LayerMapping, ...]) -> list[int]:
    """The 16-bit words ``w_load`` takes after reset: each SPRAM layer's image, in layer order."""
    return [word for layer, mapping in zip(network.layers, mappings) for word in mapping.spram_image(layer)]


def membrane_format(network: Network, mappings: tuple[LayerMapping, ...]) -> MembraneFormat:
    """The packing of ``o_membranes``: the last layer's groups of lanes of ``state_bits``-bit membranes."""
    return MembraneFormat.of(mappings[-1], network.state_bits)
