"""Pre-synthesis resource estimate and fit check of a mapped network against a board.

The numbers come from :mod:`snn2hw.passes.cost` (block RAM, SPRAM and logic-cell estimates), with the
board's block-RAM shapes and resources from its description in ``boards/``.
"""

from __future__ import annotations

from ..errors import ResourceError
from ..ir import Network
from ..passes.cost import DEFAULT_BLOCK_SHAPES, Budget, NetworkCost, block_rams, network_cost
from ..passes.mapping import LayerMapping
from .boards import Board

__all__ = ["board_budget", "design_cost", "estimate_resources", "check_fit", "ebr_blocks"]

# Block RAMs the board top itself needs (the UART's receive and transmit FIFOs).
BOARD_TOP_BLOCK_RAMS = 2


ebr_blocks = block_rams   # block RAMs for a width x depth memory, given the block's [width, depth] shapes


def board_budget(board: Board) -> Budget:
    """What ``board`` offers the accelerator (the board top's own block RAMs set aside)."""
    ebr = board.resources.get("EBR")
    return Budget(block_rams=None if ebr is None else max(0, ebr - BOARD_TOP_BLOCK_RAMS),
                  block_shapes=tuple(tuple(shape) for shape in board.memory.get("ebr_shapes", DEFAULT_BLOCK_SHAPES)),
                  spram_blocks=board.resources.get("SPRAM", 0), logic_cells=board.resources.get("LC"))


def design_cost(network: Network, mappings: tuple[LayerMapping, ...], board: Board) -> NetworkCost:
    """Every layer's memories placed on ``board``'s block shapes, and the logic estimate."""
    return network_cost(network, mappings, board_budget(board).block_shapes)


def estimate_resources(network: Network, mappings: tuple[LayerMapping, ...], board: Board) -> dict:
    """report.json's ``resources`` before a build: estimated used vs available per resource."""
    cost = design_cost(network, mappings, board)
    estimate = {"EBR": cost.blocks("EBR") + (BOARD_TOP_BLOCK_RAMS if "EBR" in board.resources else 0),
                "SPRAM": cost.blocks("SPRAM"), "LC": cost.logic_cells}
    resources = {name: {"used": estimate.get(name), "available": available}
                 for name, available in board.resources.items()}
    resources["memory_bits"] = {"used": cost.bits("EBR") + cost.bits("SPRAM"),
                                "available": board.resources.get("EBR", 0) * board.memory.get("ebr_bits", 0)
                                + board.resources.get("SPRAM", 0) * board.memory.get("spram_bits", 0) or None}
    return resources


def check_fit(network: Network, mappings: tuple[LayerMapping, ...], board: Board) -> None:
    """Raise :class:`ResourceError` naming what is needed and what ``board`` has if the design cannot fit."""
    if not board.resources:
        return
    cost, budget = design_cost(network, mappings, board), board_budget(board)
    device = board.device or board.name
    spram_bits = board.memory.get("spram_bits", 0)
    if budget.block_rams is not None and cost.blocks("EBR") > budget.block_rams:
        raise ResourceError(
            f"model too big for {device}: layer memories need {cost.blocks('EBR')} block RAMs "
            f"({cost.bits('EBR') / 1e6:.2f} Mbit) and {cost.blocks('SPRAM')} SPRAM blocks, the board has "
            f"{budget.block_rams} block RAMs for layers ({budget.block_rams * board.memory.get('ebr_bits', 4096) / 1e6:.2f} Mbit) "
            f"and {budget.spram_blocks} SPRAM blocks ({budget.spram_blocks * spram_bits / 1e6:.2f} Mbit)")
    if cost.blocks("SPRAM") > budget.spram_blocks:
        raise ResourceError(f"model too big for {device}: weights need {cost.blocks('SPRAM')} SPRAM blocks, "
                            f"the board has {budget.spram_blocks}")
    if budget.logic_cells is not None and cost.logic_cells > budget.logic_cells:
        raise ResourceError(f"model too big for {device}: about {cost.logic_cells} logic cells needed, the board "
                            f"has {budget.logic_cells} (try fewer --lanes)")
