"""cocotb testbench of the board top (:class:`~snn2hw.hw.board_top.UARTAccelerator`) through its UART pins.

A UART model drives ``rx`` bit by bit and listens on ``tx``; the bytes are those of the host protocol
module :mod:`snn2hw.backends.uart_protocol` (the one ``snn2hw run`` uses). Reads the stimuli file named by
``SNN2HW_STIMULI`` (npz: ``spikes`` uint8 [B, T, n_in], ``n_out``, ``divisor`` clock cycles per bit,
``max_cycles`` per sample, ``image``: the SPRAM weight image bytes, empty for a design without), answers
the board's load request with the image when there is one (:mod:`snn2hw.hw.weight_loader`), runs the
samples one after another and writes ``SNN2HW_RESULTS`` (npz:
``rasters`` uint8 [B', T, n_out] of the B' samples that finished, ``error`` str, '' if all did).
:func:`simulate_uart_top` builds a Verilog file with Verilator and runs this testbench on it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Sequence

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from ..backends.uart_protocol import InputWindow, OutputDecoder
from ..errors import ToolError
from ..hw.board_top import UART_REQUEST_BYTES
from ..hw.weight_loader import LOAD_DONE, LOAD_REQUEST
from .primitives import primitive_models

__all__ = ["uart_frame_bits", "uart_send", "uart_receive_byte", "uart_listen", "simulate_uart_top",
           "BOARD_TOP_NAME", "BUILD_ARGS", "QUICK_BUILD_ARGS"]

BOARD_TOP_NAME = "snn_board_top"
BUILD_ARGS = ("-Wno-fatal", "-O3")
QUICK_BUILD_ARGS = ("-Wno-fatal", "-MAKEFLAGS", "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0")


def uart_frame_bits(value: int) -> list[int]:
    """The line levels of one 8N1 frame: start bit, data LSB first, stop bit."""
    return [0] + [value >> bit & 1 for bit in range(8)] + [1]


async def uart_send(clk, pin, data: bytes, divisor: int) -> None:
    """Drive ``data`` onto ``pin`` back to back at full line rate, ``divisor`` cycles of ``clk`` per bit."""
    for value in data:
        for level in uart_frame_bits(value):
            pin.value = level
            await ClockCycles(clk, divisor)


async def uart_receive_byte(clk, pin, divisor: int) -> int | None:
    """Wait for a frame on ``pin`` and return its byte, or None if its stop bit is 0."""
    await FallingEdge(pin)
    await ClockCycles(clk, divisor // 2)
    value = 0
    for bit in range(8):
        await ClockCycles(clk, divisor)
        value |= int(pin.value) << bit
    await ClockCycles(clk, divisor)
    return value if int(pin.value) == 1 else None


async def uart_listen(clk, pin, divisor: int, received: bytearray, errors: list[str]) -> None:
    """Forever append the bytes received on ``pin`` to ``received``; note framing errors in ``errors``."""
    while True:
        value = await uart_receive_byte(clk, pin, divisor)
        if value is None:
            errors.append(f"framing error after {len(received)} received bytes")
        else:
            received.append(value)


async def load_weights(dut, image: bytes, divisor: int, received: bytearray, errors: list[str]) -> None:
    """Wait for the board's load request, send ``image``, wait for its load-done byte."""
    limit = 4 * UART_REQUEST_BYTES * 10 * divisor
    for _ in range(limit // divisor):
        if received:
            break
        await ClockCycles(dut.clk, divisor)
    if set(received) != {LOAD_REQUEST}:
        raise ValueError(f"expected a weight load request, got {bytes(received).hex(' ') or 'nothing'}")
    await uart_send(dut.clk, dut.rx, image, divisor)
    for _ in range(limit // divisor):
        if received[-1] == LOAD_DONE:
            break
        await ClockCycles(dut.clk, divisor)
    if errors or received[-1] != LOAD_DONE or set(received[:-1]) != {LOAD_REQUEST}:
        raise ValueError(errors[0] if errors else f"no load-done byte after the weight image "
                                                  f"(got {bytes(received[-8:]).hex(' ')})")
    received.clear()


@cocotb.test()
async def run_stimuli(dut):
    """Send every sample's bytes over ``rx``, decode the reply on ``tx``, save the rasters."""
    stimuli = np.load(os.environ["SNN2HW_STIMULI"])
    spikes, n_out = stimuli["spikes"], int(stimuli["n_out"])
    divisor, max_cycles = int(stimuli["divisor"]), int(stimuli["max_cycles"])
    rasters = np.zeros((spikes.shape[0], spikes.shape[1], n_out), np.uint8)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    received, errors = bytearray(), []
    listener = cocotb.start_soon(uart_listen(dut.clk, dut.tx, divisor, received, errors))
    done, error = 0, ""
    try:
        if stimuli["image"].size:
            await load_weights(dut, stimuli["image"].tobytes(), divisor, received, errors)
        for index, sample in enumerate(spikes):
            if int(dut.leds.value) != 0b10:
                raise ValueError(f"leds = {int(dut.leds.value):#04b} while idle (expected 0b10)")
            window, decoder = InputWindow(sample), OutputDecoder(n_out, sample.shape[0])
            cycles = 0
            while not decoder.complete:
                chunk = window.release(decoder.steps_done)
                if chunk:
                    await uart_send(dut.clk, dut.rx, chunk, divisor)
                    cycles += len(chunk) * 10 * divisor
                else:
                    await ClockCycles(dut.clk, divisor)
                    cycles += divisor
                if errors:
                    raise ValueError(errors[0])
                rest = decoder.feed(bytes(received))
                received.clear()
                if rest:
                    raise ValueError(f"{len(rest)} unexpected bytes after the reply")
                if cycles > max_cycles:
                    raise TimeoutError(f"no complete reply within {max_cycles} cycles ({window.sent} of "
                                       f"{window.total} input beats sent, {decoder.describe()})")
            rasters[index] = decoder.raster
            done = index + 1
        await ClockCycles(dut.clk, 20 * divisor)        # anything more on tx would be a protocol error
        if received or errors:
            raise ValueError(errors[0] if errors else f"{len(received)} unexpected bytes after the last reply")
    except (TimeoutError, ValueError) as exc:
        error = f"sample {done}: {exc}"
    listener.cancel()
    np.savez(os.environ["SNN2HW_RESULTS"], rasters=rasters[:done], error=error)
    assert not error, error


def simulate_uart_top(verilog_path: Path, build_dir: Path, spikes: np.ndarray, n_out: int, divisor: int,
                      max_cycles: int, build_args: Sequence[str] = BUILD_ARGS, image: bytes = b"",
                      ) -> tuple[np.ndarray, str]:
    """Build ``verilog_path`` (top module :data:`BOARD_TOP_NAME`) with Verilator into ``build_dir`` and
    run :func:`run_stimuli` on uint8 ``spikes`` [B, T, n_in], first loading the SPRAM weight ``image``
    if the design has one; return (rasters of the finished samples, error message or '').
    :data:`QUICK_BUILD_ARGS` compile faster (unoptimised C++) for short runs. The board top must use the
    default load-request period (:data:`UART_REQUEST_BYTES` bytes)."""
    from cocotb_tools.runner import get_runner

    from .verilator import verilator_environment

    verilator_environment()
    runner = get_runner("verilator")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(verilog_path).resolve()]
    models = primitive_models(Path(verilog_path).read_text(errors="replace"))
    if models:
        (build_dir / "primitives.v").write_text(models)
        sources.append((build_dir / "primitives.v").resolve())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runner.build(sources=sources, hdl_toplevel=BOARD_TOP_NAME,
                         build_args=list(build_args), build_dir=build_dir, always=True,
                         log_file=build_dir / "build.log")
    except (SystemExit, Exception) as exc:  # the runner raises SystemExit / CalledProcessError
        raise ToolError(f"Verilator build of {verilog_path} failed ({exc}); see {build_dir / 'build.log'}") \
            from None
    with tempfile.TemporaryDirectory(prefix="snn2hw-uart-sim-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "stimuli.npz", spikes=np.asarray(spikes, np.uint8), n_out=n_out, divisor=divisor,
                 max_cycles=max_cycles, image=np.frombuffer(image, np.uint8))
        env = {"SNN2HW_STIMULI": str(tmp / "stimuli.npz"), "SNN2HW_RESULTS": str(tmp / "results.npz"),
               "COCOTB_LOG_LEVEL": "WARNING"}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                runner.test(test_module=__name__, hdl_toplevel=BOARD_TOP_NAME, build_dir=build_dir,
                            test_dir=tmp, extra_env=env, log_file=tmp / "sim.log")
        except (SystemExit, Exception) as exc:
            raise ToolError(f"Verilator simulation failed to run ({exc})") from None
        if not (tmp / "results.npz").exists():
            log = (tmp / "sim.log").read_text(errors="replace") if (tmp / "sim.log").exists() else "(no log)"
            raise ToolError("the cocotb UART testbench produced no results:\n" + "\n".join(log.splitlines()[-20:]))
        results = np.load(tmp / "results.npz")
        return results["rasters"], str(results["error"])
