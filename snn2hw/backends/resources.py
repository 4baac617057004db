"""Pre-synthesis resource estimate and fit check against a board.

Every layer memory (weights, accumulator, state, bias) is assumed to become block RAM. A block has the
[width, depth] configurations the board lists (``memory.ebr_shapes``; on iCE40 16 x 256, 8 x 512, 4 x 1024
or 2 x 2048); a memory of width w and depth d takes the cheapest tiling of one configuration.
"""

from __future__ import annotations

from ..errors import ResourceError
from ..passes.mapping import LayerMapping, ceil_div
from .boards import Board

__all__ = ["layer_memories", "ebr_blocks", "memory_totals", "estimate_resources", "check_fit"]

ICE40_EBR_SHAPES = ((16, 256), (8, 512), (4, 1024), (2, 2048))


def ebr_blocks(width: int, depth: int, shapes=ICE40_EBR_SHAPES) -> int:
    """Block RAMs needed for a ``width`` x ``depth`` memory, given the block's [width, depth] shapes."""
    return min(ceil_div(width, w) * ceil_div(depth, d) for w, d in shapes)


def layer_memories(mapping: LayerMapping, state_bits: int) -> dict[str, tuple[int, int]]:
    """(width, depth) of each memory of a layer core."""
    memories = {
        "weights": (mapping.lanes * mapping.weight_bits, mapping.weight_words),
        "accumulator": (mapping.lanes * mapping.acc_bits, mapping.groups),
        "state": (mapping.lanes * (state_bits + 1), mapping.groups),
    }
    if mapping.has_bias:
        memories["bias"] = (mapping.lanes * mapping.bias_bits, mapping.groups)
    return memories


def memory_totals(mappings: tuple[LayerMapping, ...], state_bits: int, board: Board) -> tuple[int, int]:
    """(block RAMs, bits) of all layer memories together on ``board``."""
    block_shapes = board.memory.get("ebr_shapes", ICE40_EBR_SHAPES)
    shapes = [shape for mapping in mappings for shape in layer_memories(mapping, state_bits).values()]
    return sum(ebr_blocks(w, d, block_shapes) for w, d in shapes), sum(w * d for w, d in shapes)


def estimate_resources(mappings: tuple[LayerMapping, ...], state_bits: int, board: Board) -> dict:
    """``{"EBR": {"used": n, "available": m}, "memory_bits": {...}}``-style estimate for report.json."""
    blocks, bits = memory_totals(mappings, state_bits, board)
    resources = {"EBR": {"used": blocks, "available": board.resources.get("EBR")},
                 "memory_bits": {"used": bits, "available": board.resources.get("EBR", 0)
                                 * board.memory.get("ebr_bits", 0) or None}}
    for name in ("LC", "SPRAM", "DSP"):
        if name in board.resources:
            resources[name] = {"used": None, "available": board.resources[name]}
    return resources


def check_fit(mappings: tuple[LayerMapping, ...], state_bits: int, board: Board) -> None:
    """Raise :class:`ResourceError` if the layer memories cannot fit the board's block RAM."""
    available = board.resources.get("EBR")
    if available is None:
        return
    needed, bits = memory_totals(mappings, state_bits, board)
    if needed > available:
        have = available * board.memory.get("ebr_bits", 4096)
        raise ResourceError(f"model too big for {board.device or board.name}: layer memories need {needed} "
                            f"block RAMs ({bits / 1e6:.2f} Mbit), the board has {available} "
                            f"({have / 1e6:.2f} Mbit)")
