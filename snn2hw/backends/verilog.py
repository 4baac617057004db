"""Verilog emission: the accelerator as one deterministic Verilog module, generated only by Amaranth."""

from __future__ import annotations

from amaranth.back import verilog

from ..hw.accelerator import TOP_NAME, Accelerator
from ..ir import Network
from ..passes.mapping import LayerMapping

__all__ = ["emit_verilog"]


def emit_verilog(network: Network, mappings: tuple[LayerMapping, ...]) -> str:
    """Return the Verilog text of the accelerator, top module ``snn_accelerator`` (no source locations)."""
    return verilog.convert(Accelerator(network, mappings), name=TOP_NAME, emit_src=False)
