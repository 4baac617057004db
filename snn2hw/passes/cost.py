"""Pre-synthesis cost model of a mapped network: where each memory lands and about how many logic cells.

Memories follow Yosys's choice for iCE40 (``memory_libmap``): a memory becomes block RAM unless logic is
cheaper, at a cost of 64 per block against 1 per bit of a writable memory (flip-flops) or 1/16 per bit of
a read-only one (LUTs). SPRAM columns are counted as placed by the mapping. Logic cells are estimated from
the datapath widths (calibrated on nextpnr's counts for iCE40 builds; an estimate, not a promise).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Network
from .mapping import LayerMapping, ceil_div, index_bits

__all__ = ["Budget", "MemoryCost", "NetworkCost", "layer_memories", "network_cost", "block_rams", "per_neuron_logic",
           "window_logic", "DEFAULT_BLOCK_SHAPES"]

DEFAULT_BLOCK_SHAPES = ((16, 256), (8, 512), (4, 1024), (2, 2048))   # iCE40 SB_RAM40_4K [width, depth]
BLOCK_COST = 64
RAM_BIT_COST, ROM_BIT_COST = 1.0, 1 / 16
LC_BASE = 450            # board top: UART, FIFOs' control, LEDs, handshakes
LC_PER_LAYER = 150       # FSM, counters, event encoding
LC_PER_LANE_BIT = 9      # per lane and membrane bit: integration adder, saturation, fire, leak, pipeline
# Per-neuron beta / threshold (not calibrated on builds, an upper-end guess): per lane, two pipeline registers
# per ROM bit (stages A and B carry them to the compare and the leak) and, for beta, a state_bits x beta_bits
# multiply in logic at one cell per partial-product bit (fewer when Yosys maps it to an SB_MAC16).
LC_PER_PARAM_BIT = 2
LC_PER_PRODUCT_BIT = 1
# Flip-flop accumulators (integration_lanes): per neuron and accumulator bit, the adder with its flip-flop and
# a share of the fire pass's group multiplexer, plus one cell per weight bit to gate the weight it adds
# (calibrated on nextpnr builds of B1 and B3 with 128 of them).
LC_PER_ACCUMULATOR_BIT = 1.9
# A convolution integrating by window (mapping.window, calibrated on a nextpnr build of B4): per kernel tap
# and lane, a share of the adder tree per current bit; per selected bit (the kernel's input rows, then the
# window), its flip-flop and a multiplexer over the output rows or columns, at one cell per three choices.
LC_PER_TAP_LANE_BIT = 1.0
LC_PER_SELECT_CHOICE = 1 / 3
# Per group of a layer's fire pass: its bit in the two registers of groups with spikes (the one being written,
# the one the emitter shifts down as it moves on) and that shift's multiplexer.
LC_PER_GROUP = 4


@dataclass(frozen=True)
class Budget:
    """What a board offers (None: no limit)."""

    block_rams: int | None = None
    block_shapes: tuple[tuple[int, int], ...] = DEFAULT_BLOCK_SHAPES
    spram_blocks: int = 0
    logic_cells: int | None = None


@dataclass(frozen=True)
class MemoryCost:
    layer: str
    name: str
    width: int
    depth: int
    kind: str            # "EBR" | "logic" | "SPRAM"
    blocks: int          # block RAMs or SPRAM blocks
    logic_cells: int


@dataclass(frozen=True)
class NetworkCost:
    memories: tuple[MemoryCost, ...]
    logic_cells: int

    def blocks(self, kind: str) -> int:
        return sum(memory.blocks for memory in self.memories if memory.kind == kind)

    def bits(self, kind: str) -> int:
        return sum(memory.width * memory.depth for memory in self.memories if memory.kind == kind)

    def fits(self, budget: Budget, logic_margin: float = 1.0) -> bool:
        return ((budget.block_rams is None or self.blocks("EBR") <= budget.block_rams)
                and self.blocks("SPRAM") <= budget.spram_blocks
                and (budget.logic_cells is None or self.logic_cells <= logic_margin * budget.logic_cells))


def block_rams(width: int, depth: int, shapes=DEFAULT_BLOCK_SHAPES) -> int:
    """Block RAMs for a ``width`` x ``depth`` memory: the cheapest tiling of one [width, depth] shape."""
    return min(ceil_div(width, w) * ceil_div(depth, d) for w, d in shapes)


def _place(layer: str, name: str, width: int, depth: int, writable: bool, shapes) -> MemoryCost:
    blocks = block_rams(width, depth, shapes)
    bit_cost = RAM_BIT_COST if writable else ROM_BIT_COST
    if width * depth * bit_cost < blocks * BLOCK_COST:
        return MemoryCost(layer, name, width, depth, "logic", 0, int(width * depth * bit_cost + 0.5))
    return MemoryCost(layer, name, width, depth, "EBR", blocks, 0)


def layer_memories(mapping: LayerMapping, membrane_bits: int, state_bits: int, threshold,
                   shapes=DEFAULT_BLOCK_SHAPES) -> list[MemoryCost]:
    """Every memory of one layer core, placed (``state_bits`` and the layer's ``threshold`` size a Synaptic
    layer's potential memory)."""
    name, memories = mapping.name, []
    if mapping.spram_lanes:
        memories.append(MemoryCost(name, "weights_spram", mapping.spram_columns * 16, mapping.weight_words,
                                   "SPRAM", mapping.spram_columns, 0))
    if mapping.window:
        memories.append(_place(name, "currents", mapping.lanes * mapping.acc_bits, mapping.current_words, True,
                               shapes))
    elif mapping.block_ram_lanes:
        memories.append(_place(name, "weights", mapping.block_ram_lanes * mapping.weight_bits,
                               mapping.weight_words, False, shapes))
    memories.append(_place(name, "membrane", mapping.lanes * membrane_bits, mapping.groups, True, shapes))
    if mapping.synaptic:
        memories.append(_place(name, "potential", mapping.lanes * mapping.potential_bits(state_bits, threshold),
                               mapping.groups, True, shapes))
    if mapping.has_bias:
        memories.append(_place(name, "bias", mapping.lanes * mapping.bias_bits, mapping.groups, False, shapes))
    for rom, bits in (("threshold", mapping.threshold_bits), ("beta", mapping.beta_bits),
                      ("alpha", mapping.alpha_bits), ("recurrent", mapping.recurrent_bits)):
        if bits:
            memories.append(_place(name, rom, mapping.lanes * bits, mapping.groups, False, shapes))
    if mapping.conv is not None and not mapping.window:
        memories += [_place(name, rom, width, depth, False, shapes) for rom, width, depth in conv_roms(mapping)]
    if mapping.accumulators and mapping.weight_groups > 1:       # the integrator's replay buffer
        memories.append(_place(name, "replay", index_bits(mapping.weight_words), mapping.n_in, True, shapes))
    return memories


def conv_roms(mapping: LayerMapping) -> list[tuple[str, int, int]]:
    """(name, width, depth) of a conv layer core's address ROMs (:mod:`snn2hw.hw.lif_layer`): per input neuron
    its decode word (:meth:`LayerMapping.conv_decode_fields`); per input row and kernel row the output row's
    first group (or none), and likewise per column."""
    (_, height, width), (kh, kw) = mapping.conv.in_shape, mapping.conv.kernel
    groups_bits = index_bits(mapping.groups)
    decode_bits = sum(mapping.conv_decode_fields().values())
    return [("input_decode", decode_bits, mapping.n_in), ("row_groups", groups_bits + 1, height * kh),
            ("column_groups", groups_bits + 1, width * kw)]


def window_logic(mapping: LayerMapping) -> int:
    """Logic cells of a convolution's integration by window (:mod:`snn2hw.hw.conv_window`): its two input
    bitmaps, the row and window selections and the per-lane sums of the kernel's taps."""
    (channels, _, width), (kh, kw) = mapping.conv.in_shape, mapping.conv.kernel
    _, out_h, out_w = mapping.conv.out_shape
    taps = channels * kh * kw
    selection = channels * kh * width * (1 + LC_PER_SELECT_CHOICE * out_h) + taps * (1 + LC_PER_SELECT_CHOICE * out_w)
    sums = mapping.lanes * taps * mapping.acc_bits * LC_PER_TAP_LANE_BIT
    return int(2 * mapping.n_in + selection + sums)


def per_neuron_logic(mapping: LayerMapping, state_bits: int) -> int:
    """Logic cells of a layer's per-neuron beta / threshold datapath (0 for layer-wide parameters)."""
    registers = LC_PER_PARAM_BIT * (mapping.threshold_bits + mapping.beta_bits + mapping.alpha_bits
                                    + mapping.recurrent_bits)
    product = LC_PER_PRODUCT_BIT * state_bits * (mapping.beta_bits + mapping.alpha_bits)
    return mapping.lanes * (registers + product)


def network_cost(network: Network, mappings: tuple[LayerMapping, ...],
                 shapes=DEFAULT_BLOCK_SHAPES) -> NetworkCost:
    memories, logic = [], LC_BASE
    for layer, mapping in zip(network.layers, mappings):
        width = mapping.membrane_bits(network.state_bits, layer.threshold)
        placed = layer_memories(mapping, width, network.state_bits, layer.threshold, shapes)
        memories += placed
        logic += LC_PER_LAYER + LC_PER_LANE_BIT * mapping.lanes * width + per_neuron_logic(mapping, network.state_bits)
        logic += LC_PER_GROUP * mapping.groups
        logic += sum(memory.logic_cells for memory in placed)
        if mapping.window:
            logic += window_logic(mapping)
        if mapping.accumulators:
            logic += int(mapping.n_out * (LC_PER_ACCUMULATOR_BIT * mapping.acc_bits + mapping.weight_value_bits))
    return NetworkCost(tuple(memories), logic)
