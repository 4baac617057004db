"""Map an integer :class:`~snn2hw.ir.Network` onto the hardware's knobs and widths.

Each layer is served by one time-multiplexed LIF core with ``lanes`` neurons updated per cycle. Its
``n_out`` neurons are split into ``groups = ceil(n_out / lanes)`` groups of ``lanes`` (the last one padded
with silent neurons whose weights and bias are 0). Memories, one word per group:

* weights: ``n_in * groups`` words, word ``j * groups + g`` holds W[g*lanes + k, j] for k < lanes
  (one crossbar row per presynaptic neuron j);
* accumulator: ``groups`` words of ``lanes`` x ``acc_bits`` (the current W x[t] summed so far);
* state: ``groups`` words of ``lanes`` x (membrane ``state_bits`` + previous spike bit);
* bias: ``groups`` words of ``lanes`` x ``bias_bits`` (absent when every bias is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import QuantizationError
from ..ir import Layer, Network
from .quantize import signed_bits

__all__ = ["LayerMapping", "map_network", "ceil_div"]


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

    @property
    def groups(self) -> int:
        return ceil_div(self.n_out, self.lanes)

    @property
    def weight_words(self) -> int:
        return self.n_in * self.groups

    @property
    def weight_memory_bits(self) -> int:
        return self.weight_words * self.lanes * self.weight_bits

    def weight_words_init(self, layer: Layer) -> list[list[int]]:
        """The weight memory contents, word ``j * groups + g`` = [W[g*lanes + k, j] for k < lanes]."""
        padded = np.zeros((self.groups * self.lanes, self.n_in), dtype=np.int64)
        padded[:self.n_out] = layer.weight
        per_group = padded.reshape(self.groups, self.lanes, self.n_in)  # [g, k, j]
        return per_group.transpose(2, 0, 1).reshape(-1, self.lanes).tolist()

    def bias_words_init(self, layer: Layer) -> list[list[int]]:
        padded = np.zeros(self.groups * self.lanes, dtype=np.int64)
        padded[:self.n_out] = layer.bias
        return padded.reshape(self.groups, self.lanes).tolist()

    def to_json(self) -> dict:
        return {"name": self.name, "lanes": self.lanes, "groups": self.groups, "weight_bits": self.weight_bits,
                "acc_bits": self.acc_bits, "bias_bits": self.bias_bits,
                "weight_memory_bits": self.weight_memory_bits}


def _map_layer(layer: Layer, lanes: int) -> LayerMapping:
    weight = layer.weight
    acc_range = np.array([np.where(weight > 0, weight, 0).sum(axis=1).max(),
                          np.where(weight < 0, weight, 0).sum(axis=1).min()])
    has_bias = bool(np.any(layer.bias != 0))
    return LayerMapping(name=layer.name, n_in=layer.n_in, n_out=layer.n_out, lanes=min(lanes, layer.n_out),
                        weight_bits=signed_bits(weight), acc_bits=signed_bits(acc_range),
                        bias_bits=signed_bits(layer.bias) if has_bias else 0, has_bias=has_bias)


def map_network(network: Network, lanes: int = 1) -> tuple[LayerMapping, ...]:
    """Choose each layer's hardware shape; ``lanes`` neurons per cycle (capped at the layer's width)."""
    if lanes < 1:
        raise QuantizationError(f"lanes must be >= 1, got {lanes}")
    return tuple(_map_layer(layer, lanes) for layer in network.layers)
