"""``bound_cycles``: the memory-bandwidth limit on cycles per inference (BENCHMARKS.md).

Every synaptic event (an input spike times its fan-out) reads one weight. A layer's weights take
``w = ceil(log2(distinct weight values))`` bits each (at least 1: {-1, +1} is one bit) and
``M = n_in * n_out * w`` bits in all. The board reads ``R_E = EBR blocks * 16`` bits per cycle from
``C_E = EBR blocks * 4 kbit`` of block RAM and ``R_S = SPRAM blocks * 16`` bits per cycle from its SPRAM.
Each layer is allowed all of it (optimistic, so the bound stays a lower bound):

* ``M <= C_E``: the weights fit in block RAM and are read at ``R = R_E`` bits per cycle;
* ``M <= C_E + C_S`` (SPRAM capacity): ``f = C_E / M`` of them sit in block RAM and the rest in SPRAM, both
  read in parallel, so the slower part sets the pace: ``R = 1 / max(f / R_E, (1 - f) / R_S)``;
* otherwise the weights do not fit on the chip and there is no bound (None).

Per layer and timestep, with ``e`` input spikes: ``ceil(e * n_out * w / R) + ceil(n_out * (B + 1) / R)``,
the second term one pass over the neuron states (B-bit membrane plus spike bit) at the same width.
``bound_cycles`` is the sum over layers and timesteps, averaged over the stimuli. For B2 (784 x 128 4-bit
weights, 401 kbit, 30 % in EBR) that is about 5.5 cycles per input spike.
"""

from __future__ import annotations

import math

import numpy as np

from ..backends.boards import Board
from ..golden import Trace
from ..ir import Layer, Network

__all__ = ["weight_bits", "read_width", "bound_cycles"]

BLOCK_PORT_BITS = 16   # iCE40 SB_RAM40_4K and SB_SPRAM256KA: 16 bits per cycle


def weight_bits(layer: Layer) -> int:
    """The fewest bits that tell the layer's distinct weight values apart (at least 1)."""
    return max(1, math.ceil(math.log2(len(np.unique(layer.weight)))))


def read_width(memory_bits: int, board: Board) -> float | None:
    """Weight bits per cycle that a layer of ``memory_bits`` weight bits can read (None: the board does not
    describe its block RAM, or the weights do not fit on chip)."""
    ebr_blocks, ebr_bits = board.resources.get("EBR"), board.memory.get("ebr_bits")
    if not ebr_blocks or not ebr_bits:
        return None
    ebr_width = ebr_blocks * max((width for width, _ in board.memory.get("ebr_shapes", ())),
                                 default=BLOCK_PORT_BITS)
    if memory_bits <= ebr_blocks * ebr_bits:
        return float(ebr_width)
    spram_blocks = board.resources.get("SPRAM", 0)
    if memory_bits > ebr_blocks * ebr_bits + spram_blocks * board.memory.get("spram_bits", 0):
        return None
    in_ebr = ebr_blocks * ebr_bits / memory_bits
    spram_width = spram_blocks * BLOCK_PORT_BITS
    return 1.0 / max(in_ebr / ebr_width, (1.0 - in_ebr) / spram_width)


def bound_cycles(network: Network, inputs: np.ndarray, trace: Trace, board: Board) -> float | None:
    """The mean bound (see the module docstring) over ``inputs`` uint8 [B, T, n_in] with their golden
    ``trace``; None when a layer has no read width on ``board``."""
    total = np.zeros(inputs.shape[0])
    layer_inputs = [inputs] + trace.spikes[:-1]
    for layer, spikes_in in zip(network.layers, layer_inputs):
        bits = weight_bits(layer)
        width = read_width(layer.n_in * layer.n_out * bits, board)
        if width is None:
            return None
        events = spikes_in.sum(axis=2).astype(np.float64) * layer.n_out      # [B, T]
        state_pass = math.ceil(layer.n_out * (network.state_bits + 1) / width)
        total += (np.ceil(events * bits / width) + state_pass).sum(axis=1)
    return round(float(total.mean()), 2)
