"""The accelerator behind a UART: the byte protocol between a host and a programmed board.

Line: 8N1 (one start bit, eight data bits LSB first, one stop bit, no parity), idle high, at the baud rate
the bitstream was built for (``f_clk / divisor``). There are no command bytes, headers or checksums:
the host sends the input event beats of an inference and the board answers with its output event beats.

Beats. An event beat is packed as in :mod:`snn2hw.hw.events`: bits ``[0, B)`` are the neuron ``index``,
bit ``B`` is ``eot`` (end of timestep), bit ``B + 1`` is ``last`` (set only on the end-of-timestep beat
of the final timestep), where ``B = max(1, ceil(log2(neurons)))``. On the line each beat is
``ceil((B + 2) / 8)`` bytes, least significant byte first; unused high bits of the final byte are 0 (the
board ignores them on input). Input beats use the input population's ``B`` (``neurons = n_in``), output
beats the output population's (``neurons = n_out``). For ``neurons <= 64`` a beat is one byte.

One inference, for input spikes ``x[T, n_in]``, host -> board: for t = 0 .. T-1, one beat per spiking input neuron
of timestep t (``index`` ascending, ``eot = last = 0``), then the end-of-timestep beat (``eot = 1``, ``index = 0``,
``last = 1`` only for t = T-1). Board -> host: the same format for the output spikes, i.e. for each timestep the
indices of the spiking output neurons (in the order of :mod:`snn2hw.hw.events`), then that timestep's
end-of-timestep beat; the inference's reply ends with the beat having ``eot = last = 1``. The number of timesteps
is set by the host only (by where it puts ``last``).

Framing. When the board is idle (after reset, and after it has queued the final output beat of an
inference) and a complete input beat is waiting, it starts a new inference (clearing every neuron's state)
and feeds it that beat and the following ones, up to and including the beat with ``eot = last = 1``.
Beats received after that wait on the board until the current inference has finished, so a host may
stream several inferences back to back as long as it respects the flow-control rule below; replies come
back in order.

Flow control. The line has none (no RTS/CTS, no XON/XOFF). Input beats wait in a FIFO of
:data:`RX_FIFO_BEATS` = 512 beats while the accelerator is busy or stalled by the output UART (whose own
output FIFO holds :data:`TX_FIFO_BEATS` beats; output beats are never dropped). Once the host has received
output end-of-timestep beats 0 .. t-1, every layer has finished timesteps 0 .. t-1, so the accelerator
takes the input beats of timestep t as fast as they arrive (a first-layer spike costs
``ceil(n_hidden / lanes)`` cycles, far fewer than a byte's ``10 * divisor``); only beats of later timesteps
may pile up. Hence the host's rule, with t = the number of output end-of-timestep beats received so far:
*send all input beats of timestep t whenever you like; beyond those, the input beats sent for timesteps
>= t must not exceed 512* (beats of a following inference count as well).
:class:`snn2hw.backends.uart_protocol.InputWindow` implements it. Inputs with at most 512 beats per
inference may simply be sent whole. A byte that arrives while the FIFO is full is dropped, as is a byte
with a bad stop bit; the board then loses byte alignment and must be reset (the board's reset button, or
reprogramming). There is no resynchronisation; a host should flush its receive buffer before the first
inference.

Weights in SPRAM. A design that keeps weights in SPRAM first runs the load phase of
:mod:`snn2hw.hw.weight_loader` after configuration or reset: it asks for the weight image with
``LOAD_REQUEST`` bytes, takes the image and answers ``LOAD_DONE``; only then does the protocol above
start. A design without SPRAM has no load phase.

LEDs: ``leds[0]`` is lit while an inference is in progress (from its first input beat until its final
output beat is queued), ``leds[1]`` while the board is idle, waiting for an inference; both are dark
during the load phase.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir import Network
from ..passes.mapping import LayerMapping
from .accelerator import Accelerator
from .events import EventFormat
from .skid_buffer import SkidBuffer
from .uart import UARTReceiver, UARTTransmitter, check_divisor
from .weight_loader import UARTWeightLoader

__all__ = ["UARTAccelerator", "RX_FIFO_BEATS", "TX_FIFO_BEATS", "UART_REQUEST_BYTES", "beat_width", "beat_bytes"]

RX_FIFO_BEATS = 512
TX_FIFO_BEATS = 16
UART_REQUEST_BYTES = 20     # the shortest load-request period, in UART byte times (10 bits)


def beat_width(neurons: int) -> int:
    """Bits of one packed event beat of a population of ``neurons`` neurons: index, eot, last."""
    return EventFormat(neurons).index_bits + 2


def beat_bytes(neurons: int) -> int:
    """UART bytes per event beat of a population of ``neurons`` neurons."""
    return (beat_width(neurons) + 7) // 8


class UARTAccelerator(wiring.Component):
    """:class:`~snn2hw.hw.accelerator.Accelerator` behind an 8N1 UART (``rx``/``tx`` pins) with two LEDs.

    ``divisor`` is the number of clock cycles per UART bit (>= 4); ``rx_fifo_beats`` the depth of the
    input beat FIFO (the protocol promises :data:`RX_FIFO_BEATS`; smaller only for tests). The byte
    protocol is in this module's docstring. ``uart_rx.frame_errors`` / ``uart_rx.overruns`` count dropped
    bytes (internal signals, not ports). ``request_period`` is the clock cycles between two load requests
    of a design with SPRAM weights (default and minimum: :data:`UART_REQUEST_BYTES` byte times);
    ``spram_primitive=False`` models SPRAM
    with Amaranth memories for Amaranth's simulator.
    """

    def __init__(self, network: Network, mappings: tuple[LayerMapping, ...], divisor: int, *,
                 rx_fifo_beats: int = RX_FIFO_BEATS, request_period: int | None = None,
                 spram_primitive: bool = True):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a snn2hw.ir.Network, got {type(network).__name__}")
        if len(mappings) != len(network.layers):
            raise ValueError(f"{len(mappings)} layer mappings for a network of {len(network.layers)} layers")
        if not isinstance(rx_fifo_beats, int) or rx_fifo_beats < 2:
            raise ValueError(f"rx_fifo_beats must be an integer >= 2, got {rx_fifo_beats!r}")
        self.network, self.mappings = network, tuple(mappings)
        self.divisor, self.rx_fifo_beats = check_divisor(divisor), rx_fifo_beats
        self.spram_primitive = spram_primitive
        self.image_words = sum(mapping.spram_words for mapping in self.mappings)
        shortest = UART_REQUEST_BYTES * 10 * divisor
        self.request_period = shortest if request_period is None else request_period
        if not isinstance(self.request_period, int) or self.request_period < shortest:
            raise ValueError(f"request_period must be at least {UART_REQUEST_BYTES} bytes = {shortest} cycles, "
                             f"got {self.request_period!r}")
        # Built here, not in elaborate, so that tests can watch their error counters.
        self.uart_rx, self.uart_tx = UARTReceiver(divisor), UARTTransmitter(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "leds": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = self.network.n_in, self.network.n_out
        m.submodules.accelerator = accelerator = Accelerator(self.network, self.mappings, self.spram_primitive)
        m.submodules.uart_rx = receiver = self.uart_rx
        m.submodules.uart_tx = transmitter = self.uart_tx
        # Byte streams of the inference protocol; the load phase, if any, owns the UART before them.
        r_bytes, t_bytes, loading = self._load_phase(m, accelerator, receiver.bytes, transmitter.bytes)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=beat_width(n_in), depth=self.rx_fifo_beats)
        m.submodules.tx_fifo = tx_fifo = fifo.SyncFIFOBuffered(width=beat_width(n_out), depth=TX_FIFO_BEATS)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx)]

        # Bytes -> input beats: gather the low bytes, push the beat into the FIFO with its final byte.
        # The final byte waits in the receiver while the FIFO is full.
        in_bytes = beat_bytes(n_in)
        w_beats = rx_fifo.w_stream
        if in_bytes == 1:
            m.d.comb += [w_beats.payload.eq(r_bytes.payload), w_beats.valid.eq(r_bytes.valid),
                         r_bytes.ready.eq(w_beats.ready)]
        else:
            low = Signal(8 * (in_bytes - 1))
            position = Signal(range(in_bytes))
            final = position == in_bytes - 1
            m.d.comb += [w_beats.payload.eq(Cat(low, r_bytes.payload)), w_beats.valid.eq(r_bytes.valid & final),
                         r_bytes.ready.eq(~final | w_beats.ready)]
            with m.If(r_bytes.valid & r_bytes.ready):
                with m.If(final):
                    m.d.sync += position.eq(0)
                with m.Else():
                    m.d.sync += [low.word_select(position, 8).eq(r_bytes.payload), position.eq(position + 1)]

        # Input beats -> accelerator, one inference at a time, through a register slice: the first layer's
        # combinational ready ends there instead of in the FIFO's read logic (it was B1's critical path).
        m.submodules.rx_slice = rx_slice = SkidBuffer(beat_width(n_in))
        wiring.connect(m, rx_fifo.r_stream, rx_slice.i)
        r_beats, i_spikes = rx_slice.o, accelerator.i_spikes
        final_input = i_spikes.valid & i_spikes.ready & i_spikes.payload.eot & i_spikes.payload.last
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.leds[1].eq(1 if loading is None else ~loading)
                with m.If(r_beats.valid):
                    m.d.comb += accelerator.start.eq(1)
                    m.next = "INPUT"
            with m.State("INPUT"):
                m.d.comb += [self.leds[0].eq(1), i_spikes.payload.eq(r_beats.payload),
                             i_spikes.valid.eq(r_beats.valid), r_beats.ready.eq(i_spikes.ready)]
                with m.If(final_input):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += self.leds[0].eq(1)
                with m.If(accelerator.done):
                    m.next = "IDLE"

        # Accelerator -> output beats -> bytes, least significant first; nothing is ever dropped.
        # A register slice again: the FIFO's ready ends there instead of in the last layer's emitter.
        m.submodules.tx_slice = tx_slice = SkidBuffer(beat_width(n_out))
        wiring.connect(m, accelerator.o_spikes, tx_slice.i)
        wiring.connect(m, tx_slice.o, tx_fifo.w_stream)
        out_bytes = beat_bytes(n_out)
        o_beats = tx_fifo.r_stream
        if out_bytes == 1:
            m.d.comb += [t_bytes.payload.eq(o_beats.payload), t_bytes.valid.eq(o_beats.valid),
                         o_beats.ready.eq(t_bytes.ready)]
        else:
            position = Signal(range(out_bytes))
            final = position == out_bytes - 1
            padded = Cat(o_beats.payload, Const(0, 8 * out_bytes - beat_width(n_out)))
            m.d.comb += [t_bytes.payload.eq(padded.word_select(position, 8)), t_bytes.valid.eq(o_beats.valid),
                         o_beats.ready.eq(t_bytes.ready & final)]
            with m.If(t_bytes.valid & t_bytes.ready):
                m.d.sync += position.eq(0)
                with m.If(~final):
                    m.d.sync += position.eq(position + 1)
        return m

    def _load_phase(self, m: Module, accelerator: Accelerator, received, to_send):
        """The byte streams (received, to send) of the inference protocol and the load phase's ``active``
        level: the UART's own streams and None without SPRAM weights, else streams that the weight loader
        holds off until it is done."""
        if not self.image_words:
            return received, to_send, None
        r_bytes, t_bytes = stream.Signature(8).create(), stream.Signature(8).flip().create()
        m.submodules.weight_loader = loader = UARTWeightLoader(self.request_period)
        wiring.connect(m, loader.w_load, accelerator.w_load)
        m.d.comb += loader.loaded.eq(accelerator.loaded)
        with m.If(loader.active):
            wiring.connect(m, loader.rx_bytes, received)
            wiring.connect(m, loader.tx_bytes, to_send)
        with m.Else():
            wiring.connect(m, wiring.flipped(r_bytes), received)
            wiring.connect(m, wiring.flipped(t_bytes), to_send)
        return r_bytes, t_bytes, loader.active
