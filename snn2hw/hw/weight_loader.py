"""The board top's load phase: the SPRAM weight image arrives over the UART after reset.

SPRAM is not initialised by the bitstream, so a board whose design keeps weights in SPRAM starts in the
load phase after configuration or reset. Byte protocol (normative; the rest of the UART protocol is in
:mod:`snn2hw.hw.board_top`):

* The board sends :data:`LOAD_REQUEST` (``0x57``, ASCII ``W``) every ``request_period`` clock cycles
  (about ten times a second on a board) until the first byte of the image arrives.
* The host sends the image: the ``image_words`` 16-bit words of
  :func:`snn2hw.hw.accelerator.spram_image`, each least significant byte first, i.e. the bytes of
  ``OUTDIR/spram_weights.bin`` as they are. No header, no checksum.
* Once the last word is written the board sends :data:`LOAD_DONE` (``0x4C``, ASCII ``L``) and from then
  on speaks the inference protocol. A board that is loaded sends nothing until it gets an inference, so a
  host that hears no :data:`LOAD_REQUEST` within a few request periods may assume the weights are in place.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .weight_memory import load_stream

__all__ = ["UARTWeightLoader", "LOAD_REQUEST", "LOAD_DONE"]

LOAD_REQUEST = 0x57
LOAD_DONE = 0x4C


class UARTWeightLoader(wiring.Component):
    """Turn received bytes into ``w_load`` words until the accelerator reports ``loaded``.

    Ports: ``rx_bytes`` (in byte stream, from the UART receiver), ``tx_bytes`` (out byte stream, to the UART
    transmitter), ``w_load`` (out 16-bit word stream, to the accelerator), ``loaded`` (in level, from the
    accelerator) and ``active`` (out level): high from reset until :data:`LOAD_DONE` has been handed to the
    transmitter. While ``active`` the loader owns both byte streams; afterwards it never touches them again.
    """

    def __init__(self, request_period: int):
        if not isinstance(request_period, int) or request_period < 1:
            raise ValueError(f"request_period must be a positive number of clock cycles, got {request_period!r}")
        self.request_period = request_period
        super().__init__({
            "rx_bytes": In(stream.Signature(8)),
            "tx_bytes": Out(stream.Signature(8)),
            "w_load": Out(load_stream()),
            "loaded": In(1),
            "active": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        countdown = Signal(range(self.request_period), init=self.request_period - 1)
        low_byte, have_low = Signal(8), Signal()
        rx, tx = self.rx_bytes, self.tx_bytes
        with m.FSM(init="REQUEST"):
            with m.State("REQUEST"):
                m.d.comb += [tx.payload.eq(LOAD_REQUEST), tx.valid.eq(countdown == 0)]
                with m.If(countdown != 0):
                    m.d.sync += countdown.eq(countdown - 1)
                with m.Elif(tx.ready):
                    m.d.sync += countdown.eq(self.request_period - 1)
                with m.If(rx.valid & ~tx.valid):     # the image begins; its first byte is taken in LOAD
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.w_load.payload.eq(Cat(low_byte, rx.payload)),
                             self.w_load.valid.eq(rx.valid & have_low),
                             rx.ready.eq(~have_low | self.w_load.ready)]
                with m.If(rx.valid & rx.ready):
                    m.d.sync += [low_byte.eq(rx.payload), have_low.eq(~have_low)]
                with m.If(self.loaded):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [tx.payload.eq(LOAD_DONE), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += self.active.eq(0)
                    m.next = "SERVE"
            with m.State("SERVE"):
                pass
        return m
