"""Map an integer :class:`~snn2hw.ir.Network` onto the hardware's knobs and widths.

Each layer is served by one time-multiplexed LIF core with ``lanes`` neurons updated per cycle. Its
``n_out`` neurons are split into ``groups = ceil(n_out / lanes)`` groups of ``lanes`` (the last one padded
with silent neurons whose weights and bias are 0). Memories, one word per group:

* weights: ``(n_in + recurrent_rows) * groups`` words, word ``j * groups + g`` holds W[g*lanes + k, j] for
  k < lanes (one crossbar row per presynaptic neuron j); a dense recurrent layer (RLeaky, all-to-all V) stores
  V's rows after W's, as if its own n_out neurons were inputs n_in .. n_in + n_out - 1 (``recurrent_rows``);
* membrane: ``groups`` words of ``lanes`` x :meth:`LayerMapping.membrane_bits` (leaked and reset membrane
  plus the current W x[t] summed so far, see :mod:`snn2hw.hw.lif_layer`);
* bias: ``groups`` words of ``lanes`` x ``bias_bits`` (absent when every bias is 0);
* per-neuron parameters, read with the bias: thresholds, ``groups`` words of ``lanes`` x ``threshold_bits``
  unsigned (absent, ``threshold_bits`` 0, when the layer has one threshold), and ``beta_q``, ``groups`` words
  of ``lanes`` x ``beta_bits`` unsigned (absent when the layer has one beta), likewise ``alpha_q``
  (Synaptic, ``alpha_bits``) and a one-to-one V (RLeaky, ``recurrent_bits``, signed). Padding lanes hold 0;
* Synaptic layers (``synaptic``): the membrane memory accumulates the synaptic current; a second state memory
  of ``groups`` words of ``lanes`` x :meth:`LayerMapping.potential_bits` holds the leaked and reset membrane
  potential.

A convolution layer (:attr:`snn2hw.ir.Layer.conv`, K output channels on P = H_out * W_out positions) shares
its kernel instead (``conv``): ``lanes`` = K / m output channels of one position per group (m =
``channel_blocks``, a power of two), group ``g = p * m + j`` holding channels ``j * lanes .. j * lanes + lanes - 1``
of position p, i.e. neurons ``(j * lanes + k) * P + p`` (:meth:`LayerMapping.slot_neurons`; the per-neuron words
follow that order); the weight memory holds the kernel, ``C * kh * kw * m`` words, word ``((c * kh + ky) * kw +
kx) * m + j`` = ``kernel[j * lanes + k, c, ky, kx]``, in block RAM. An input spike costs one cycle per channel
block and kernel offset through which it reaches an output (at least one cycle,
:meth:`LayerMapping.input_integration_cycles`). Integrated by window (``window``, :mod:`snn2hw.hw.conv_window`),
the kernel is logic instead, no weight memory, and a spike costs one cycle: each timestep's currents are
computed position by position from its input spikes, beside the fire pass.

A dense layer may integrate wider than it fires (``integration_lanes`` > ``lanes``, :attr:`LayerMapping.accumulators`):
each timestep's current then sums in flip-flop accumulators, one per neuron, ``integration_lanes`` of them per
cycle, which the fire pass reads and clears group by group; the weight words are then ``integration_lanes``
wide (``weight_lanes``), ``weight_groups = ceil(n_out / integration_lanes)`` per crossbar row, and an input spike
costs ``weight_groups`` cycles, one in each integration group's pass, which overlap the fire pass (see
:mod:`snn2hw.hw.lif_layer`); not with a dense recurrence. Weights that are all -1 or +1 (``binary_weights``)
are stored as one bit b (the weight is 2b - 1).

Weight placement: lanes ``[0, spram_lanes)`` of every weight word live in single-port SPRAM blocks
(iCE40 UP5K ``SB_SPRAM256KA``, 16 bits x 16384 words each, not initialised by the bitstream: their
contents are loaded after reset, see :meth:`LayerMapping.spram_image`); there each weight takes
``spram_field_bits`` (the next power of two >= ``weight_bits``), ``16 / spram_field_bits`` lanes per block
(a "column"). The other lanes live in block RAM initialised by the bitstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conv_geometry import ConvGeometry, reaching_offsets
from ..errors import QuantizationError
from ..ir import Layer, Network
from .quantize import signed_bits

__all__ = ["LayerMapping", "map_network", "map_layer", "ceil_div", "index_bits", "SPRAM_WIDTH", "SPRAM_DEPTH"]

SPRAM_WIDTH = 16      # bits per SB_SPRAM256KA word
SPRAM_DEPTH = 16384   # words per SB_SPRAM256KA


def index_bits(count: int) -> int:
    """Unsigned bits for the values 0 .. count - 1 (at least 1)."""
    return max(1, (count - 1).bit_length())


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerMapping:
    """The hardware shape of one layer (see the module docstring)."""

    name: str
    n_in: int
    n_out: int
    lanes: int
    weight_bits: int
    acc_bits: int
    bias_bits: int
    has_bias: bool
    spram_lanes: int = 0
    threshold_bits: int = 0
    beta_bits: int = 0
    alpha_bits: int = 0
    recurrent_bits: int = 0
    recurrent_rows: int = 0
    synaptic: bool = False
    conv: ConvGeometry | None = None
    integration_lanes: int = 0
    binary_weights: bool = False
    window: bool = False

    def __post_init__(self):
        if self.window and self.conv is None:
            raise QuantizationError(f"layer {self.name!r}: only a convolution integrates by window")
        if not 1 <= self.lanes <= self.n_out:
            raise QuantizationError(f"layer {self.name!r}: lanes must be in [1, {self.n_out}], got {self.lanes}")
        if self.integration_lanes and (self.conv is not None or self.recurrent_rows
                                       or not self.lanes <= self.integration_lanes <= self.n_out):
            raise QuantizationError(f"layer {self.name!r}: integration lanes must be in [{self.lanes}, "
                                    f"{self.n_out}] (and the layer dense, without a dense recurrence), got "
                                    f"{self.integration_lanes}")
        if not 0 <= self.spram_lanes <= self.weight_lanes:
            raise QuantizationError(f"layer {self.name!r}: SPRAM lanes must be in [0, {self.weight_lanes}], "
                                    f"got {self.spram_lanes}")
        if self.spram_lanes and self.weight_words > SPRAM_DEPTH:
            raise QuantizationError(f"layer {self.name!r}: {self.weight_words} weight words exceed one SPRAM "
                                    f"block's {SPRAM_DEPTH}")
        if self.spram_lanes and self.weight_bits > SPRAM_WIDTH:
            raise QuantizationError(f"layer {self.name!r}: {self.weight_bits}-bit weights cannot go to SPRAM")

    @property
    def groups(self) -> int:
        return ceil_div(self.n_out, self.lanes)

    @property
    def accumulators(self) -> bool:
        """The core sums each timestep's current in flip-flop accumulators, ``integration_lanes`` per cycle,
        instead of in its membrane memory, ``lanes`` per cycle."""
        return self.integration_lanes > 0

    @property
    def weight_lanes(self) -> int:
        """Weights per weight word: the neurons one integration cycle reaches."""
        return self.integration_lanes or self.lanes

    @property
    def weight_groups(self) -> int:
        """Weight words per crossbar row (dense layers)."""
        return ceil_div(self.n_out, self.weight_lanes)

    @property
    def weight_words(self) -> int:
        if self.conv is not None:
            return self.conv.in_shape[0] * self.kernel_offsets * self.channel_blocks
        return self.rows * self.weight_groups

    @property
    def weight_value_bits(self) -> int:
        """Signed bits of a weight as the core adds it (a binary weight's stored bit b is 2b - 1)."""
        return 2 if self.binary_weights else self.weight_bits

    @property
    def channel_blocks(self) -> int:
        """A conv layer's groups per output position (1 for a dense layer)."""
        return self.conv.out_channels // self.lanes if self.conv is not None else 1

    @property
    def kernel_offsets(self) -> int:
        """kh * kw of a conv layer (0 for a dense layer)."""
        return self.conv.kernel[0] * self.conv.kernel[1] if self.conv is not None else 0

    @property
    def integration_cycles(self) -> int:
        """The most cycles the core integrates one input spike for: one per weight group (dense) or per kernel
        offset and channel block (conv; one by window); see :meth:`input_integration_cycles`."""
        if self.window:
            return 1
        return self.kernel_offsets * self.channel_blocks if self.conv is not None else self.weight_groups

    def input_integration_cycles(self) -> np.ndarray:
        """Cycles the core integrates a spike of each input for (conv: one per kernel offset that reaches an
        output, at least one, times the channel blocks)."""
        if self.conv is None or self.window:
            return np.full(self.n_in, self.integration_cycles)
        rows, cols = self.conv_reach()
        per_position = np.outer([count for _, count in rows], [count for _, count in cols]).ravel()
        return np.tile(np.maximum(per_position, 1) * self.channel_blocks, self.conv.in_shape[0])

    def conv_decode_fields(self) -> dict[str, int]:
        """Bits of each field of a conv core's decode word (one per input, :mod:`snn2hw.hw.lif_layer`): the
        kernel word, row-ROM and column-ROM bases of its first reaching offsets, the column span of its
        reaching offsets, the integration cycles after its first, and whether it has only one."""
        (_, height, width), (kh, kw) = self.conv.in_shape, self.conv.kernel
        return {"kernel": index_bits(self.weight_words), "row": index_bits(height * kh),
                "column": index_bits(width * kw), "column_span": index_bits(kw),
                "rest": index_bits(self.integration_cycles), "single": 1}

    def conv_reach(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """A conv layer's :func:`~snn2hw.conv_geometry.reaching_offsets` per input row and per input column."""
        (_, height, width), (kh, kw), (sh, sw) = self.conv.in_shape, self.conv.kernel, self.conv.stride
        _, out_h, out_w = self.conv.out_shape
        return (reaching_offsets(height, kh, sh, self.conv.padding[0], out_h),
                reaching_offsets(width, kw, sw, self.conv.padding[1], out_w))

    @property
    def fire_cycles(self) -> int:
        """Cycles from taking an end-of-timestep to offering the spike buffer (without a recurrent pass): a read,
        three pipeline cycles and one per group, and for a conv layer integrating by kernel offset or accumulators
        one more to drain the integration."""
        drains = (self.conv is not None and not self.window) or self.accumulators
        return 5 + self.groups + (1 if drains else 0)

    def pass_ties(self) -> tuple[list[int], list[list[int]]]:
        """For an accumulator core, per fire group: the integration passes of its timestep it needs (the
        integration group of its last neuron, plus one) and the integration groups it completes (whose last
        neuron it holds; at most two, when a ragged last integration group ends in the same fire group as the
        one before)."""
        ends = [min((w + 1) * self.weight_lanes, self.n_out) for w in range(self.weight_groups)]
        needs, completes = [], []
        for g in range(self.groups):
            first, end = g * self.lanes, min((g + 1) * self.lanes, self.n_out)
            needs.append(1 + (end - 1) // self.weight_lanes)
            completes.append([w for w, stop in enumerate(ends) if first < stop <= end])
        return needs, completes

    def slot_neurons(self) -> np.ndarray:
        """The neuron of each hardware slot ``g * lanes + k`` (``n_out`` for a padding slot)."""
        slots = np.arange(self.groups * self.lanes)
        if self.conv is None:
            return np.minimum(slots, self.n_out)
        positions = self.conv.positions
        group, lane = slots // self.lanes, slots % self.lanes
        return (group % self.channel_blocks * self.lanes + lane) * positions + group // self.channel_blocks

    @property
    def rows(self) -> int:
        """Crossbar rows: one per input, plus one per neuron of a dense recurrent layer."""
        return self.n_in + self.recurrent_rows

    @property
    def current_words(self) -> int:
        """Depth of a window core's current memory: two halves of ``2^index_bits(groups)`` words, a word
        addressed by the group, then the half (:mod:`snn2hw.hw.conv_window`)."""
        return 2 << index_bits(self.groups)

    @property
    def weight_memory_bits(self) -> int:
        """Bits of the weight memory (0 by window: the kernel is logic)."""
        return 0 if self.window else self.weight_words * self.lanes * self.weight_bits

    @property
    def spram_field_bits(self) -> int:
        return 1 << max(0, self.weight_bits - 1).bit_length()

    @property
    def lanes_per_column(self) -> int:
        return SPRAM_WIDTH // self.spram_field_bits

    @property
    def spram_columns(self) -> int:
        return ceil_div(self.spram_lanes, self.lanes_per_column)

    @property
    def spram_words(self) -> int:
        """Length of :meth:`spram_image`: every SPRAM column, ``weight_words`` 16-bit words each."""
        return self.spram_columns * self.weight_words

    @property
    def block_ram_lanes(self) -> int:
        return self.weight_lanes - self.spram_lanes

    def membrane_bits(self, state_bits: int, threshold: int | np.ndarray) -> int:
        """Width holding every membrane word: a leaked state in [-2^(B-1), 2^(B-1)), minus the (largest)
        threshold after a spike, plus any current in the accumulator's range."""
        acc_lo, acc_hi = -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1
        state_lo, state_hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
        return signed_bits(np.array([state_lo - int(np.max(threshold)) + acc_lo, state_hi + acc_hi]))

    def potential_bits(self, state_bits: int, threshold: int | np.ndarray) -> int:
        """Width of a Synaptic layer's potential word: a leaked state minus the (largest) threshold."""
        return signed_bits(np.array([-(1 << (state_bits - 1)) - int(np.max(threshold)), 1 << (state_bits - 1)]))

    def weight_matrix(self, layer: Layer) -> np.ndarray:
        """All weight words as an array [weight_words, weight_lanes]: word ``j * weight_groups + g`` =
        W[g * weight_lanes + k, j], or a conv layer's kernel words (module docstring)."""
        if self.conv is not None:
            kernel = self.conv.kernel_of(layer.weight, layer.name).astype(np.int64)     # [K, C, kh, kw]
            blocks = kernel.reshape(self.channel_blocks, self.lanes, *kernel.shape[1:])   # [j, k, c, ky, kx]
            return blocks.transpose(2, 3, 4, 0, 1).reshape(-1, self.lanes)
        padded = np.zeros((self.weight_groups * self.weight_lanes, self.rows), dtype=np.int64)
        padded[:self.n_out] = crossbar(layer)
        per_group = padded.reshape(self.weight_groups, self.weight_lanes, self.rows)  # [g, k, j]
        return per_group.transpose(2, 0, 1).reshape(-1, self.weight_lanes)

    def stored_weights(self, layer: Layer) -> np.ndarray:
        """:meth:`weight_matrix` as stored: a binary weight w in {-1, +1} as the bit w > 0 (a padding lane's 0
        as bit 0, read as -1: :func:`map_layer` stores binary only where padding lanes add to no neuron)."""
        weights = self.weight_matrix(layer)
        return (weights > 0).astype(np.int64) if self.binary_weights else weights

    def weight_words_init(self, layer: Layer) -> list[list[int]]:
        """The block-RAM part of the weight memory: lanes ``[spram_lanes, weight_lanes)`` of every stored word."""
        return self.stored_weights(layer)[:, self.spram_lanes:].tolist()

    def spram_image(self, layer: Layer) -> list[int]:
        """The SPRAM part as 16-bit words, column by column (column c holds lanes ``[c * lanes_per_column,
        (c + 1) * lanes_per_column)``, each weight in ``spram_field_bits`` two's complement, lane order LSB
        first), every column ``weight_words`` long."""
        if not self.spram_lanes:
            return []
        field, per_column = self.spram_field_bits, self.lanes_per_column
        words = np.zeros((self.weight_words, self.spram_columns * per_column), dtype=np.int64)
        words[:, :self.spram_lanes] = self.stored_weights(layer)[:, :self.spram_lanes]
        fields = (words & ((1 << field) - 1)).reshape(self.weight_words, self.spram_columns, per_column)
        packed = (fields << (field * np.arange(per_column))).sum(axis=2)      # [address, column]
        return packed.T.reshape(-1).tolist()

    def group_words(self, values) -> list[list[int]]:
        """Per-neuron ``values`` [n_out] as ``groups`` words of ``lanes`` in slot order (padding lanes 0)."""
        padded = np.zeros(self.n_out + 1, dtype=np.int64)
        padded[:self.n_out] = values
        return padded[self.slot_neurons()].reshape(self.groups, self.lanes).tolist()

    def bias_words_init(self, layer: Layer) -> list[list[int]]:
        return self.group_words(layer.bias)

    def to_json(self) -> dict:
        per_neuron = {key: bits for key, bits in (("threshold_bits", self.threshold_bits),
                                                  ("beta_bits", self.beta_bits), ("alpha_bits", self.alpha_bits),
                                                  ("recurrent_bits", self.recurrent_bits),
                                                  ("recurrent_rows", self.recurrent_rows),
                                                  ("synaptic", self.synaptic),
                                                  ("channel_blocks", self.conv is not None and self.channel_blocks),
                                                  ("integration_lanes", self.integration_lanes),
                                                  ("binary_weights", self.binary_weights),
                                                  ("window", self.window))
                      if bits}
        return {"name": self.name, "lanes": self.lanes, "groups": self.groups, "weight_bits": self.weight_bits,
                "acc_bits": self.acc_bits, "bias_bits": self.bias_bits,
                "weight_memory_bits": self.weight_memory_bits, "spram_lanes": self.spram_lanes,
                "spram_columns": self.spram_columns, **per_neuron}


def crossbar(layer: Layer) -> np.ndarray:
    """The weights the core's crossbar rows hold, [n_out, rows]: W, then a dense recurrent V."""
    if layer.recurrence == "dense":
        return np.hstack([layer.weight, layer.recurrent])
    return layer.weight


def map_layer(layer: Layer, lanes: int, spram_lanes: int = 0, integration_lanes: int = 0,
              binary: bool | None = None, window: bool = False) -> LayerMapping:
    """The shape of ``layer`` with ``lanes`` neurons per cycle (capped at its width); with
    ``integration_lanes`` (> lanes, a dense layer) that many per integration cycle into accumulators; the first
    ``spram_lanes`` of a weight word in SPRAM. Weights that are all -1 or +1 are stored as one bit, unless
    ``binary`` is False (None: wherever possible). ``window``: a convolution integrates by window (ignored
    for other layers)."""
    if lanes < 1:
        raise QuantizationError(f"lanes must be >= 1, got {lanes}")
    conv = layer.conv if layer.recurrent is None else None
    if conv is not None:
        lanes = conv_lanes(conv.out_channels, lanes)
    weight = crossbar(layer)
    # every current one timestep can add to a neuron: its crossbar row and a one-to-one V
    inputs = np.hstack([weight, np.diag(layer.recurrent)]) if layer.recurrence == "one_to_one" else weight
    acc_range = np.array([np.where(inputs > 0, inputs, 0).sum(axis=1).max(),
                          np.where(inputs < 0, inputs, 0).sum(axis=1).min()])
    has_bias = bool(np.any(layer.bias != 0))
    lanes = min(lanes, layer.n_out)
    integration_lanes = (min(integration_lanes, layer.n_out) if conv is None and layer.recurrence != "dense"
                         and integration_lanes > lanes else 0)
    weight_lanes = integration_lanes or lanes
    # A padding lane's weight 0 has no one-bit code: binary storage only where no lane is padding, or where
    # padding lanes have no accumulator.
    binary = binary is not False and bool(np.all(np.abs(weight) == 1)) and conv is None and (
        integration_lanes > 0 or layer.n_out % lanes == 0)
    one_to_one = layer.recurrence == "one_to_one"
    return LayerMapping(name=layer.name, n_in=layer.n_in, n_out=layer.n_out, lanes=lanes,
                        weight_bits=1 if binary else signed_bits(weight), acc_bits=signed_bits(acc_range),
                        conv=conv, integration_lanes=integration_lanes, binary_weights=binary,
                        window=window and conv is not None,
                        bias_bits=signed_bits(layer.bias) if has_bias else 0, has_bias=has_bias,
                        spram_lanes=0 if conv is not None else min(spram_lanes, weight_lanes),
                        threshold_bits=_per_neuron_bits(layer.threshold),
                        beta_bits=_per_neuron_bits(layer.beta_q),
                        alpha_bits=_per_neuron_bits(layer.alpha_q) if layer.synaptic else 0,
                        recurrent_bits=signed_bits(layer.recurrent) if one_to_one and np.any(
                            layer.recurrent != layer.recurrent[0]) else 0,
                        recurrent_rows=layer.n_out if layer.recurrence == "dense" else 0,
                        synaptic=layer.synaptic)


def conv_lanes(channels: int, lanes: int) -> int:
    """A conv layer's lanes for a request of ``lanes``: ``channels / 2^i`` for the smallest i that gives at
    most ``lanes`` (all channels when halving is not exact)."""
    while channels > lanes and channels % 2 == 0:
        channels //= 2
    return channels


def _per_neuron_bits(values) -> int:
    """Unsigned bits of a per-neuron parameter's ROM; 0 for a layer-wide scalar (a constant in the core)."""
    return max(1, int(np.max(values)).bit_length()) if np.ndim(values) else 0


def map_network(network: Network, lanes: int = 1) -> tuple[LayerMapping, ...]:
    """Every layer with ``lanes`` neurons per cycle (capped at the layer's width), weights in block RAM."""
    return tuple(map_layer(layer, lanes) for layer in network.layers)
