# amaranth: UnusedElaboratable=no
"""The UART and the board top (accelerator behind the UART byte protocol) against the golden model.

Amaranth's simulator runs the fast checks through a Python UART model; one Verilator run goes through
the cocotb testbench, which drives the pins with the same host protocol module as ``snn2hw run``.
"""

import sys
import types

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.sim import Simulator

from snn2hw import golden
from snn2hw.backends.uart_protocol import (InputWindow, OutputDecoder, beat_bytes, encode_sample, pack_beats,
                                           run_on_serial, weight_image_bytes)
from snn2hw.errors import ToolError
from snn2hw.hw.board_top import RX_FIFO_BEATS, UARTAccelerator
from snn2hw.hw.events import EventFormat
from snn2hw.hw.uart import UARTReceiver, UARTTransmitter
from snn2hw.hw.accelerator import spram_image
from snn2hw.hw.weight_loader import LOAD_DONE, LOAD_REQUEST
from snn2hw.passes.mapping import map_layer, map_network
from snn2hw.verify.cocotb_uart_tb import BOARD_TOP_NAME, QUICK_BUILD_ARGS, simulate_uart_top, uart_frame_bits
from snn2hw.verify.protocol import encode_inputs

from random_networks import random_network, random_spikes

NETWORKS = {  # name: (network, lanes); beats of more than one byte on the input and on the output side
    "small": (random_network(1), 2),
    "wide_in": (random_network(2, sizes=[70, 9, 5], weight_range=12), 3),
    "wide_out": (random_network(4, sizes=[6, 10, 90], bias=True), 4),
}


# --- a Python UART model for Amaranth's simulator (the cocotb one lives in snn2hw.verify.cocotb_uart_tb) ---

async def send_bytes(ctx, pin, data: bytes, divisor: int) -> None:
    for value in data:
        for level in uart_frame_bits(value):
            ctx.set(pin, level)
            await ctx.tick().repeat(divisor)


async def ticks(ctx, count: int) -> None:
    for _ in range(count):      # not ctx.tick().repeat(): a background testbench may be stopped mid-wait
        await ctx.tick()


def listener(pin, divisor: int, received: bytearray, errors: list):
    """A background testbench appending the bytes seen on ``pin`` to ``received``."""
    async def listen(ctx):
        while True:
            await ctx.negedge(pin)
            await ticks(ctx, divisor // 2)
            if ctx.get(pin) != 0:
                errors.append("glitch on the line instead of a start bit")
                continue
            value = 0
            for bit in range(8):
                await ticks(ctx, divisor)
                value |= ctx.get(pin) << bit
            await ticks(ctx, divisor)
            if ctx.get(pin) != 1:
                errors.append(f"framing error after {len(received)} bytes")
            received.append(value)
    return listen


def run_board(network, lanes, spikes, divisor, window=RX_FIFO_BEATS, rx_fifo_beats=RX_FIFO_BEATS,
              max_cycles=200_000, spram_lanes=0):
    """Send every sample's bytes to the board top, one inference after another; return the rasters, the
    receiver's dropped-byte counters and the line errors seen by the host. With ``spram_lanes``, the first
    layer keeps that many lanes in SPRAM and the host first answers the board's load request."""
    mappings = map_network(network, lanes)
    mappings = (map_layer(network.layers[0], lanes, spram_lanes),) + mappings[1:]
    dut = UARTAccelerator(network, mappings, divisor, rx_fifo_beats=rx_fifo_beats, spram_primitive=False)
    received, errors, rasters, counters = bytearray(), [], [], {}

    async def load_weights(ctx):
        image = b"".join(word.to_bytes(2, "little") for word in spram_image(network, mappings))
        await ctx.tick().repeat(3 * dut.request_period)
        assert len(received) >= 2 and set(received) == {LOAD_REQUEST}, "repeated load requests"
        assert ctx.get(dut.leds) == 0, "dark LEDs while loading"
        await send_bytes(ctx, dut.rx, image, divisor)
        await ctx.tick().repeat(20 * divisor)
        assert received[-1] == LOAD_DONE and set(received[:-1]) == {LOAD_REQUEST}, "load done"
        received.clear()

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4)
        if dut.image_words:
            await load_weights(ctx)
        for sample in spikes:
            assert ctx.get(dut.leds) == 0b10, "idle LED"
            sender, decoder = InputWindow(sample, window), OutputDecoder(network.n_out, sample.shape[0])
            cycles, busy_seen = 0, False
            while not decoder.complete and cycles < max_cycles:
                chunk = sender.release(decoder.steps_done)
                if chunk:
                    await send_bytes(ctx, dut.rx, chunk, divisor)
                    cycles += 10 * divisor * len(chunk)
                else:
                    await ctx.tick().repeat(divisor)
                    cycles += divisor
                busy_seen |= ctx.get(dut.leds) == 0b01
                assert decoder.feed(bytes(received)) == b"", "bytes after the final beat"
                received.clear()
                if errors or ctx.get(dut.uart_rx.overruns):
                    break
            if not decoder.complete:
                break
            assert busy_seen, "busy LED"
            rasters.append(decoder.raster)
        else:
            await ctx.tick().repeat(20 * divisor)
            assert not received, "bytes after the last reply"
        counters.update(overruns=ctx.get(dut.uart_rx.overruns), frame_errors=ctx.get(dut.uart_rx.frame_errors))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(listener(dut.tx, divisor, received, errors), background=True)
    sim.run()
    return rasters, counters, errors


# --- the host protocol module, pure Python ---

@pytest.mark.parametrize("neurons, width", [(1, 1), (2, 1), (64, 1), (65, 2), (1 << 14, 2), ((1 << 14) + 1, 3)])
def test_beat_bytes(neurons, width):
    assert beat_bytes(neurons) == width


@pytest.mark.parametrize("name", NETWORKS)
def test_encode_decode_round_trip_in_any_pieces(name):
    network, _ = NETWORKS[name]
    rng = np.random.default_rng(0)
    raster = (rng.random((7, network.n_out)) < 0.3).astype(np.uint8)
    data = pack_beats(encode_inputs(raster), network.n_out) + b"\x55\xaa"   # a reply, then the next one's
    assert data[:-2] == encode_sample(raster)
    decoder, position, rest = OutputDecoder(network.n_out, 7), 0, b""
    while not decoder.complete:
        size = int(rng.integers(1, 4))
        rest = decoder.feed(data[position:position + size])
        position += size
    assert np.array_equal(decoder.raster, raster) and decoder.steps_done == 7
    assert rest + data[position:] == b"\x55\xaa"


def test_decoder_rejects_a_short_reply():
    fmt = EventFormat(5)
    decoder = OutputDecoder(5, 3)
    with pytest.raises(ValueError, match="end-of-timestep 0 has last=1"):
        decoder.feed(bytes([fmt.pack(2), fmt.pack(eot=True, last=True)]))


def test_input_window_never_exceeds_unfinished_beats():
    spikes = np.ones((6, 4), np.uint8)                    # 5 beats per timestep
    sender = InputWindow(spikes, window=7)
    assert len(sender.release(0)) == 7
    assert sender.release(0) == b""
    assert len(sender.release(1)) == 5                    # timestep 0 retired: beats 5 .. 11 may be out
    assert len(sender.release(6)) == 30 - 12 and sender.finished
    sender = InputWindow(spikes, window=3)                # smaller than a timestep: all of the oldest one
    assert len(sender.release(0)) == 5 and len(sender.release(1)) == 5 and sender.release(1) == b""
    assert b"".join([InputWindow(spikes).release(0)]) == encode_sample(spikes)


class FakeBoard:
    """A stand-in for pyserial's ``Serial`` on a perfect board: replies with the golden model's output."""

    def __init__(self, network, silent=False, image=b""):
        self.network, self.silent, self.image = network, silent, image
        self.incoming, self.outgoing, self.beats, self.opened = bytearray(), bytearray(), [], []
        self.loading = bytearray() if image else None     # the image bytes received so far, while loading

    def module(self):
        board = self

        class SerialException(OSError):
            pass

        class Serial:
            def __init__(self, port, baudrate, timeout, write_timeout):
                if port != "/dev/board":
                    raise SerialException(f"could not open port {port}")
                board.opened.append((port, baudrate))

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            in_waiting = property(lambda self: len(board.outgoing))

            def reset_input_buffer(self):
                board.outgoing.clear()

            def flush(self):
                pass

            def write(self, data):
                board.receive(data)

            def read(self, size):
                if board.loading is not None and not board.loading and not board.outgoing:
                    board.outgoing.append(LOAD_REQUEST)         # asks again and again until the image begins
                data = bytes(board.outgoing[:size])
                del board.outgoing[:size]
                return data

        return types.SimpleNamespace(Serial=Serial, SerialException=SerialException)

    def receive(self, data):
        if self.loading is not None:
            taken = len(self.image) - len(self.loading)
            self.loading += data[:taken]
            data = data[taken:]
            if self.loading == self.image:
                self.loading = None
                self.outgoing.append(LOAD_DONE)
        fmt, width = EventFormat(self.network.n_in), beat_bytes(self.network.n_in)
        self.incoming += data
        while len(self.incoming) >= width:
            self.beats.append(fmt.unpack(int.from_bytes(self.incoming[:width], "little")))
            del self.incoming[:width]
            index, eot, last = self.beats[-1]
            if eot and last and not self.silent:
                steps = sum(beat[1] for beat in self.beats)
                spikes = np.zeros((steps, self.network.n_in), np.uint8)
                t = 0
                for index, eot, _ in self.beats:
                    if eot:
                        t += 1
                    else:
                        spikes[t, index] = 1
                self.outgoing += encode_sample(golden.run(self.network, spikes).output[0])
                self.beats.clear()


@pytest.mark.parametrize("name", NETWORKS)
def test_run_on_serial_with_a_perfect_board(name, monkeypatch):
    network, _ = NETWORKS[name]
    board = FakeBoard(network)
    monkeypatch.setitem(sys.modules, "serial", board.module())
    spikes = random_spikes(5, 3, 4, network.n_in)
    design = types.SimpleNamespace(network=network, mappings=map_network(network))
    rasters = run_on_serial("/dev/board", design, spikes, 9600, timeout_s=1.0)
    assert np.array_equal(rasters, golden.run(network, spikes).output) and board.opened == [("/dev/board", 9600)]


def test_run_on_serial_loads_the_weight_image_when_the_board_asks(monkeypatch):
    network, _ = NETWORKS["wide_in"]
    mappings = (map_layer(network.layers[0], 3, 2),) + map_network(network, 3)[1:]
    design = types.SimpleNamespace(network=network, mappings=mappings)
    image = weight_image_bytes(design)
    assert len(image) == 2 * len(spram_image(network, mappings)) > 0
    board = FakeBoard(network, image=image)
    monkeypatch.setitem(sys.modules, "serial", board.module())
    spikes = random_spikes(6, 2, 3, network.n_in)
    assert np.array_equal(run_on_serial("/dev/board", design, spikes), golden.run(network, spikes).output)
    assert board.loading is None
    # Loaded once, the board is silent: the next run sends no image, only inferences.
    assert np.array_equal(run_on_serial("/dev/board", design, spikes), golden.run(network, spikes).output)
    assert len(board.opened) == 2 and board.incoming == b""


def test_run_on_serial_errors_are_one_line_tool_errors(monkeypatch):
    network, _ = NETWORKS["small"]
    design = types.SimpleNamespace(network=network, mappings=map_network(network))
    spikes = np.ones((2, network.n_in), np.uint8)
    monkeypatch.setitem(sys.modules, "serial", None)          # pyserial missing
    with pytest.raises(ToolError, match="pip install pyserial"):
        run_on_serial("/dev/board", design, spikes)
    monkeypatch.setitem(sys.modules, "serial", FakeBoard(network).module())
    with pytest.raises(ToolError, match="cannot open serial port '/dev/nothing'"):
        run_on_serial("/dev/nothing", design, spikes)
    monkeypatch.setitem(sys.modules, "serial", FakeBoard(network, silent=True).module())
    with pytest.raises(ToolError, match=r"sample 0: no reply .* 0.2 s \(14 of 14 input beats sent, 0 of 2") as error:
        run_on_serial("/dev/board", design, spikes, timeout_s=0.2)
    assert "\n" not in str(error.value)


# --- the UART in Amaranth's simulator ---

@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_uart_loopback_random_bytes(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = np.random.default_rng(divisor).integers(0, 256, 40).tolist() + [0x00, 0xFF]
    got = []

    async def producer(ctx):
        for value in data:
            ctx.set(tx.bytes.payload, value)
            ctx.set(tx.bytes.valid, 1)
            await ctx.tick().until(tx.bytes.ready)
        ctx.set(tx.bytes.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.bytes.ready, 1)
        for _ in range((len(data) + 2) * 11 * divisor):
            _, _, valid, payload = await ctx.tick().sample(rx.bytes.valid, rx.bytes.payload)
            if valid:
                got.append(payload)
        assert ctx.get(rx.frame_errors) == 0 and ctx.get(rx.overruns) == 0

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == data


def test_receiver_counts_bad_stop_bit_and_keeps_going():
    divisor = 6
    dut = UARTReceiver(divisor)
    got, counters = [], {}

    async def bench(ctx):
        ctx.set(dut.bytes.ready, 1)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        for value, stop in [(0x3C, 1), (0xA5, 0), (0x81, 1)]:
            for level in uart_frame_bits(value)[:-1] + [stop, 1]:
                ctx.set(dut.rx, level)
                for _ in range(divisor):
                    await ctx.tick()
                    if ctx.get(dut.bytes.valid):
                        got.append(ctx.get(dut.bytes.payload))
        await ctx.tick().repeat(3 * divisor)
        counters.update(frame_errors=ctx.get(dut.frame_errors), overruns=ctx.get(dut.overruns))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0x3C, 0x81] and counters == {"frame_errors": 1, "overruns": 0}


def test_divisor_is_validated():
    for bad in (3, 0, 4.0, True):
        with pytest.raises(ValueError, match="divisor"):
            UARTReceiver(bad)
    network = NETWORKS["small"][0]
    with pytest.raises(ValueError, match="divisor"):
        UARTAccelerator(network, map_network(network), 2)


# --- the board top in Amaranth's simulator ---

@pytest.mark.parametrize("name", NETWORKS)
def test_board_top_back_to_back_inferences_match_golden(name):
    network, lanes = NETWORKS[name]
    spikes = random_spikes(7, 3, 5, network.n_in)
    spikes[1] = 1                                         # a busy sample between two random ones
    rasters, counters, errors = run_board(network, lanes, spikes, divisor=4)
    assert not errors and counters == {"overruns": 0, "frame_errors": 0}
    assert np.array_equal(np.stack(rasters), golden.run(network, spikes).output)


def test_board_top_loads_spram_weights_before_inferences():
    network, lanes = NETWORKS["wide_in"]
    spikes = random_spikes(8, 2, 4, network.n_in)
    rasters, counters, errors = run_board(network, lanes, spikes, divisor=4, spram_lanes=2)
    assert not errors and counters == {"overruns": 0, "frame_errors": 0}
    assert np.array_equal(np.stack(rasters), golden.run(network, spikes).output)


def test_input_window_prevents_overflow_of_a_small_input_fifo():
    # Many output beats per input beat: the output UART stalls the accelerator and inputs pile up (12 timesteps:
    # the layers buffer one timestep of output spikes each, so a short input would fit).
    network, lanes = NETWORKS["wide_out"]
    spikes = np.ones((1, 12, network.n_in), np.uint8)
    expected = golden.run(network, spikes).output
    assert expected.sum() * beat_bytes(network.n_out) > 4 * len(encode_sample(spikes[0])), "needs a chatty output"
    rasters, counters, errors = run_board(network, lanes, spikes, divisor=4, window=16, rx_fifo_beats=16)
    assert not errors and counters["overruns"] == 0
    assert np.array_equal(np.stack(rasters), expected)
    # Without the window the same input overflows the small FIFO: the rule in the docstring is needed.
    _, counters, _ = run_board(network, lanes, spikes, divisor=4, window=10_000, rx_fifo_beats=16)
    assert counters["overruns"] > 0


# --- the board top under Verilator, through the cocotb UART testbench ---

def test_board_top_verilator_loads_spram_and_matches_golden(tmp_path):
    # The first layer keeps 2 of its 3 lanes in SPRAM (Yosys's SB_SPRAM256KA model), the second none.
    network, lanes = NETWORKS["wide_in"]
    divisor = 4
    mappings = (map_layer(network.layers[0], lanes, 2),) + map_network(network, lanes)[1:]
    top = UARTAccelerator(network, mappings, divisor)
    verilog_path = tmp_path / f"{BOARD_TOP_NAME}.v"
    verilog_path.write_text(verilog.convert(top, name=BOARD_TOP_NAME, emit_src=False))
    spikes = random_spikes(3, 4, 6, network.n_in)
    image = weight_image_bytes(types.SimpleNamespace(network=network, mappings=mappings))
    rasters, error = simulate_uart_top(verilog_path, tmp_path / "build", spikes, network.n_out, divisor,
                                       max_cycles=500_000, build_args=QUICK_BUILD_ARGS, image=image)
    assert error == ""
    assert np.array_equal(rasters, golden.run(network, spikes).output)
    # A wrong image gives wrong spikes: the weights really come over the UART.
    wrong = bytes(len(image))
    rasters, error = simulate_uart_top(verilog_path, tmp_path / "build", spikes, network.n_out, divisor,
                                       max_cycles=500_000, build_args=QUICK_BUILD_ARGS, image=wrong)
    assert error == "" and not np.array_equal(rasters, golden.run(network, spikes).output)
