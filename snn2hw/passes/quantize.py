"""Quantize a :class:`~snn2hw.ir.SourceNetwork` into an integer :class:`~snn2hw.ir.Network`.

Two cases:

* **Integer model** (every weight, bias and threshold is integer-valued): compiled exactly as given, no
  rescaling. If ``weight_bits`` is given, the weights must fit in that many signed bits.
* **Float model**: each layer gets its own scale ``s = (2^(weight_bits-1) - 1) / max|W|`` and
  ``W_q = round(s W)``, ``b_q = round(s b)``, ``theta_q = max(1, round(s theta))``. Because a layer's
  membrane is linear in W, b and theta, scaling all three by s leaves the spike train unchanged up to
  rounding: the scale is folded into the threshold, and the next layer still sees 0/1 spikes.

In both cases ``beta_q = round(beta * 2^F)``. F is ``frac_bits`` when given, otherwise the smallest F >= 8
(up to 16) that represents every beta exactly, else 16 (the rounding is then reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import QuantizationError
from ..ir import Layer, Network, SourceLayer, SourceNetwork

__all__ = ["QuantizationReport", "quantize", "signed_bits"]

MIN_FRAC_BITS = 8
MAX_AUTO_FRAC_BITS = 16
DEFAULT_FLOAT_WEIGHT_BITS = 8


@dataclass
class QuantizationReport:
    """What quantization did: ``exact`` is True when no parameter was rescaled or rounded."""

    exact: bool
    weight_bits: int
    frac_bits: int
    scales: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"exact": self.exact, "weight_bits": self.weight_bits, "frac_bits": self.frac_bits,
                "scales": self.scales, "notes": self.notes}


def signed_bits(values: np.ndarray) -> int:
    """The fewest two's-complement bits (at least 1) that hold every integer in ``values``."""
    lo, hi = int(np.min(values, initial=0)), int(np.max(values, initial=0))
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _is_integer(values) -> bool:
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all(values == np.round(values)))


def _choose_frac_bits(betas: list[float]) -> int:
    for bits in range(MIN_FRAC_BITS, MAX_AUTO_FRAC_BITS + 1):
        if all(_is_integer(beta * (1 << bits)) for beta in betas):
            return bits
    return MAX_AUTO_FRAC_BITS


def _quantize_layer(layer: SourceLayer, scale: float, frac_bits: int) -> Layer:
    return Layer(name=layer.name,
                 weight=np.round(layer.weight * scale).astype(np.int64),
                 bias=np.round(layer.bias * scale).astype(np.int64),
                 beta_q=int(round(layer.beta * (1 << frac_bits))),
                 frac_bits=frac_bits,
                 threshold=max(1, int(round(layer.threshold * scale))),
                 reset=layer.reset)


def quantize(source: SourceNetwork, *, state_bits: int = 16, weight_bits: int | None = None,
             frac_bits: int | None = None) -> tuple[Network, QuantizationReport]:
    """Return the integer network for ``source`` and a report of what was rescaled or rounded."""
    if weight_bits is not None and not 1 <= weight_bits <= 16:
        raise QuantizationError(f"weight bits {weight_bits} is outside [1, 16]")
    if frac_bits is not None and not 0 <= frac_bits <= 24:
        raise QuantizationError(f"beta fraction bits {frac_bits} is outside [0, 24]")
    betas = [layer.beta for layer in source.layers]
    chosen_frac = frac_bits if frac_bits is not None else _choose_frac_bits(betas)
    notes = []
    for layer in source.layers:
        if not _is_integer(layer.beta * (1 << chosen_frac)):
            notes.append(f"layer {layer.name!r}: beta {layer.beta} rounded to "
                         f"{round(layer.beta * (1 << chosen_frac))}/2^{chosen_frac}")

    integer_model = all(_is_integer(layer.weight) and _is_integer(layer.bias) and _is_integer(layer.threshold)
                        for layer in source.layers)
    scales = {}
    if integer_model:
        needed = max(signed_bits(layer.weight) for layer in source.layers)
        if weight_bits is not None and needed > weight_bits:
            worst = max(source.layers, key=lambda layer: signed_bits(layer.weight))
            extreme = int(worst.weight.flat[np.argmax(np.abs(worst.weight))])
            raise QuantizationError(f"layer {worst.name!r}: weight {extreme} needs {needed} signed bits, "
                                    f"more than --weight-bits {weight_bits}")
        layers = [_quantize_layer(layer, 1.0, chosen_frac) for layer in source.layers]
        bits = weight_bits if weight_bits is not None else needed
    else:
        bits = weight_bits if weight_bits is not None else DEFAULT_FLOAT_WEIGHT_BITS
        layers = []
        for layer in source.layers:
            peak = float(np.max(np.abs(layer.weight)))
            scale = ((1 << (bits - 1)) - 1) / peak if peak > 0 else 1.0
            if bits == 1:
                raise QuantizationError(f"layer {layer.name!r}: a float model needs at least 2 weight bits")
            scales[layer.name] = scale
            layers.append(_quantize_layer(layer, scale, chosen_frac))
        notes.append(f"float model quantized to {bits}-bit weights, per-layer scale folded into bias "
                     f"and threshold")
    network = Network(layers=tuple(layers), state_bits=state_bits)
    report = QuantizationReport(exact=integer_model and not notes, weight_bits=bits, frac_bits=chosen_frac,
                                scales=scales, notes=notes)
    return network, report
