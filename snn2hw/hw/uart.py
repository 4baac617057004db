"""An 8N1 UART: one start bit (0), eight data bits LSB first, one stop bit (1); the line idles high.

Both directions run from the design clock; ``divisor`` is the number of clock cycles per bit
(``round(f_clk / baud)``) and must be at least 4. The receiver and transmitter exchange bytes with the
rest of the design as :class:`amaranth.lib.stream` byte streams.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "MIN_DIVISOR", "check_divisor"]

MIN_DIVISOR = 4
_COUNTER_BITS = 8


def check_divisor(divisor) -> int:
    """Return ``divisor`` if it is a valid number of clock cycles per bit; raise ValueError otherwise."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be an integer >= {MIN_DIVISOR} clock cycles per bit, "
                         f"got {divisor!r}")
    return divisor


class UARTReceiver(wiring.Component):
    """Deserialise the ``rx`` pin into the byte stream ``bytes``.

    ``rx`` passes a two-flop synchroniser; a falling edge starts a frame, which is confirmed half a bit
    later (a shorter low glitch is ignored) and then sampled in the middle of every bit. The stream has no
    backpressure on the line: a received byte waits in a one-byte register until it is taken, and a byte
    that completes while the previous one is still waiting is dropped and counted in ``overruns``. A
    byte whose stop bit reads 0 is dropped and counted in ``frame_errors``. Both counters saturate at 255.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "bytes": Out(stream.Signature(8)),
            "frame_errors": Out(_COUNTER_BITS),
            "overruns": Out(_COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1, stages=2)

        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"                     # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(self.divisor - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    # Back to IDLE in the middle of the stop bit: the next falling edge is the next start.
                    m.next = "IDLE"
                    with m.If(~rx):
                        with m.If(self.frame_errors != 2**_COUNTER_BITS - 1):
                            m.d.sync += self.frame_errors.eq(self.frame_errors + 1)
                    with m.Elif(self.bytes.valid & ~self.bytes.ready):
                        with m.If(self.overruns != 2**_COUNTER_BITS - 1):
                            m.d.sync += self.overruns.eq(self.overruns + 1)
                    with m.Else():
                        m.d.sync += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
        return m


class UARTTransmitter(wiring.Component):
    """Serialise the byte stream ``bytes`` onto the ``tx`` pin (a register output, idle high).

    A byte is accepted when the transmitter is idle and takes ``10 * divisor`` cycles on the line; one
    idle cycle follows each stop bit before the next byte is accepted.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        frame = Signal(10, init=2**10 - 1)              # start, data LSB first, stop; bit 0 is on the line
        timer = Signal(range(self.divisor))
        remaining = Signal(range(10))
        m.d.comb += self.tx.eq(frame[0])

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(self.bytes.valid):
                    m.d.sync += [frame.eq(Cat(0, self.bytes.payload, 1)), timer.eq(self.divisor - 1),
                                 remaining.eq(9)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [frame.eq(Cat(frame[1:], 1)), timer.eq(self.divisor - 1),
                                 remaining.eq(remaining - 1)]
                    with m.If(remaining == 0):
                        m.next = "IDLE"
        return m
