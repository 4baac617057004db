"""Quantize a :class:`~snn2hw.ir.SourceNetwork` into an integer :class:`~snn2hw.ir.Network`.

Two cases:

* **Integer model** (every weight, bias and threshold is integer-valued): compiled exactly as given, no
  rescaling. If ``weight_bits`` is given, the weights must fit in that many signed bits. Membrane fraction
  bits (``membrane_frac_bits`` G > 0) are refused: they would rescale a model that is already exact.
* **Float model**: N = ``weight_bits`` (default 8) and G = ``membrane_frac_bits`` (default 0). Each layer
  gets its own scale ``s = (2^(N-1) - 1) / max|W|`` and::

      W_q     = 2^G * round(s W)              (N significant bits, G low bits zero)
      b_q     = round(2^G s b)
      theta_q = max(1, round(2^G s theta))

  A layer's equations are linear in (v, W, b, theta), so multiplying all four by ``c = 2^G s`` leaves its
  spike train unchanged up to rounding: the scale is folded into bias and threshold, and the next layer
  still sees 0/1 spikes. The weights are rounded on the N-bit grid; bias, threshold and the membrane (and
  with it the floor of the leak) on a grid 2^G times finer, i.e. the membrane carries G extra fraction
  bits. The scaled threshold, weights and biases must fit the membrane width B (``state_bits``): a
  threshold >= 2^(B-1) - 1 could never be exceeded, so it is refused with the layer's name.

In both cases ``beta_q = round(beta * 2^F)`` and (Synaptic) ``alpha_q = round(alpha * 2^F)``. F is
``beta_frac_bits`` when given, otherwise the smallest F >= 8 (up to 16) that represents every beta and alpha
exactly, else 16 (the rounding is then reported). Per-neuron beta, alpha and theta (arrays) are rounded and
scaled element by element, F is chosen over all of them. RLeaky's recurrent weights V are synaptic weights like
W: integer as given, or scaled with W (``s`` from the largest |W| or |V|, ``V_q = 2^G round(s V)``). A ``fixed``
layer (max pooling's OR) is kept exactly as given in both cases and is not held to ``weight_bits``. A readout
layer (never fires, threshold +inf) gets theta = 2^(B-1) - 1 in both cases, which its membrane never exceeds.
A layer's convolution geometry (``conv``) is kept in both cases: equal weights stay equal and zeros stay zero
under one per-layer scale and rounding, so W_q is the same convolution of the quantized kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import QuantizationError
from ..ir import Layer, Network, SourceLayer, SourceNetwork

__all__ = ["QuantizationReport", "quantize", "signed_bits", "DEFAULT_FLOAT_WEIGHT_BITS", "DEFAULT_MEMBRANE_FRAC_BITS"]

MIN_FRAC_BITS = 8
MAX_AUTO_FRAC_BITS = 16
MAX_FRAC_BITS = 24
DEFAULT_FLOAT_WEIGHT_BITS = 8
DEFAULT_MEMBRANE_FRAC_BITS = 0   # 8-bit digits: 100 % class agreement at G = 0 (examples/digits/README.md)


@dataclass(frozen=True)
class QuantizationReport:
    """What quantization did: ``exact`` is True when no parameter was rescaled or rounded.

    ``weight_bits`` is N (for a float model the weight grid; stored weights are N + G bits wide),
    ``beta_frac_bits`` F, ``membrane_frac_bits`` G (0 for integer models), ``scales`` the per-layer
    ``2^G s`` of a float model.
    """

    exact: bool
    weight_bits: int
    beta_frac_bits: int
    membrane_frac_bits: int = 0
    scales: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"exact": self.exact, "weight_bits": self.weight_bits, "beta_frac_bits": self.beta_frac_bits,
                "membrane_frac_bits": self.membrane_frac_bits, "scales": dict(self.scales),
                "notes": list(self.notes)}


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


def _decays(layer: SourceLayer) -> list[tuple[str, float | np.ndarray]]:
    """The layer's decay factors: ("beta", beta) and, for a Synaptic neuron, ("alpha", alpha)."""
    return [("beta", layer.beta)] + ([("alpha", layer.alpha)] if layer.alpha is not None else [])


def _synapses(layer: SourceLayer) -> list[np.ndarray]:
    """The layer's synaptic weights: W, and RLeaky's V when present."""
    return [layer.weight] + ([layer.recurrent] if layer.recurrent is not None else [])


def _choose_frac_bits(layers) -> int:
    factors = [values for layer in layers for _, values in _decays(layer)]
    for bits in range(MIN_FRAC_BITS, MAX_AUTO_FRAC_BITS + 1):
        if all(_is_integer(values * (1 << bits)) for values in factors):
            return bits
    return MAX_AUTO_FRAC_BITS


def _rounded(values) -> int | np.ndarray:
    """round(values) (half to even, as Python's round) as an int, or an int64 array for an array."""
    if np.ndim(values):
        return np.round(values).astype(np.int64)
    return int(round(values))


def _rounding_notes(layer: SourceLayer, frac_bits: int) -> list[str]:
    """A note for each of the layer's decay factors that 2^-frac_bits steps cannot represent exactly."""
    notes = []
    for what, values in _decays(layer):
        scaled = values * (1 << frac_bits)
        if _is_integer(scaled):
            continue
        if np.ndim(values):
            count = int(np.count_nonzero(scaled != np.round(scaled)))
            notes.append(f"layer {layer.name!r}: {count} of {layer.n_out} per-neuron {what}s rounded to multiples "
                         f"of 2^-{frac_bits}")
        else:
            notes.append(f"layer {layer.name!r}: {what} {values} rounded to {_rounded(scaled)}/2^{frac_bits}")
    return notes


def _integer_layer(layer: SourceLayer, frac_bits: int, state_bits: int, **scaled) -> Layer:
    """``layer`` with its decays on the 2^-frac_bits grid; ``scaled`` replaces weight, bias, threshold and
    recurrent (default: the layer's own, which must be integers). A readout's threshold is the state maximum."""
    threshold = (1 << (state_bits - 1)) - 1 if layer.readout else _rounded(layer.threshold)
    params = {"weight": layer.weight, "bias": layer.bias, "threshold": threshold, "recurrent": layer.recurrent,
              **scaled}
    return Layer(name=layer.name, beta_q=_rounded(layer.beta * (1 << frac_bits)), frac_bits=frac_bits,
                 reset=layer.reset, alpha_q=None if layer.alpha is None else _rounded(layer.alpha * (1 << frac_bits)),
                 conv=layer.conv, **params)


def _float_layer(layer: SourceLayer, weight_bits: int, membrane_frac_bits: int, beta_frac_bits: int,
                 state_bits: int) -> tuple[Layer, float]:
    """The float ``layer`` on the N-bit weight grid with G membrane fraction bits, and its scale 2^G s."""
    if layer.fixed:
        return _integer_layer(layer, beta_frac_bits, state_bits), 1.0
    peak = max(float(np.max(np.abs(weights))) for weights in _synapses(layer))
    scale = ((1 << (weight_bits - 1)) - 1) / peak if peak > 0 else 1.0
    fine = scale * (1 << membrane_frac_bits)

    def on_grid(weights):
        return np.round(weights * scale).astype(np.int64) << membrane_frac_bits

    threshold = {} if layer.readout else {"threshold": np.maximum(1, _rounded(layer.threshold * fine))}
    quantized = _integer_layer(
        layer, beta_frac_bits, state_bits, weight=on_grid(layer.weight),
        bias=np.round(layer.bias * fine).astype(np.int64),
        recurrent=None if layer.recurrent is None else on_grid(layer.recurrent), **threshold)
    _check_membrane_fit(quantized, state_bits, weight_bits, membrane_frac_bits, layer.readout)
    return quantized, fine


def _check_membrane_fit(layer: Layer, state_bits: int, weight_bits: int, membrane_frac_bits: int,
                        readout: bool) -> None:
    """Refuse a scaled layer whose threshold (unless a ``readout``'s), weights or biases do not fit the B-bit
    membrane."""
    top = (1 << (state_bits - 1)) - 1
    options = f"--weight-bits {weight_bits} --frac-bits {membrane_frac_bits}"
    advice = "lower --frac-bits or --weight-bits, or raise --state-bits"
    if layer.max_threshold >= top and not readout:
        raise QuantizationError(f"layer {layer.name!r}: scaled threshold {layer.max_threshold} ({options}) does not "
                                f"fit below the {state_bits}-bit membrane's maximum {top}, so it could never spike; "
                                f"{advice}")
    peaks = {"weight": np.abs(layer.weight).max(), "bias": np.abs(layer.bias).max(initial=0),
             "recurrent weight": 0 if layer.recurrent is None else np.abs(layer.recurrent).max()}
    what, peak = max(peaks.items(), key=lambda item: item[1])
    if peak > top:
        raise QuantizationError(f"layer {layer.name!r}: scaled {what} of magnitude {peak} ({options}) exceeds the "
                                f"{state_bits}-bit membrane's maximum {top}; {advice}")


def _check_options(weight_bits: int | None, beta_frac_bits: int | None, membrane_frac_bits: int) -> None:
    if weight_bits is not None and not 1 <= weight_bits <= 16:
        raise QuantizationError(f"--weight-bits {weight_bits} is outside [1, 16]")
    if beta_frac_bits is not None and not 0 <= beta_frac_bits <= MAX_FRAC_BITS:
        raise QuantizationError(f"--beta-frac-bits {beta_frac_bits} is outside [0, {MAX_FRAC_BITS}]")
    if not 0 <= membrane_frac_bits <= MAX_FRAC_BITS:
        raise QuantizationError(f"--frac-bits {membrane_frac_bits} is outside [0, {MAX_FRAC_BITS}]")


def _quantize_integer(source: SourceNetwork, weight_bits: int | None, beta_frac_bits: int,
                      membrane_frac_bits: int, state_bits: int) -> tuple[list[Layer], int]:
    if membrane_frac_bits:
        raise QuantizationError(f"--frac-bits {membrane_frac_bits} applies to float models only; this model's "
                                f"weights, biases and thresholds are integers and compile exactly as given "
                                f"(omit --frac-bits)")
    held = [(layer, weights) for layer in source.layers if not layer.fixed for weights in _synapses(layer)]
    needed = max((signed_bits(weights) for _, weights in held), default=1)
    if weight_bits is not None and needed > weight_bits:
        worst, weights = max(held, key=lambda pair: signed_bits(pair[1]))
        extreme = int(weights.flat[np.argmax(np.abs(weights))])
        raise QuantizationError(f"layer {worst.name!r}: weight {extreme} needs {needed} signed bits, "
                                f"more than --weight-bits {weight_bits}")
    return [_integer_layer(layer, beta_frac_bits, state_bits) for layer in source.layers], weight_bits or needed


def quantize(source: SourceNetwork, *, state_bits: int = 16, weight_bits: int | None = None,
             beta_frac_bits: int | None = None,
             membrane_frac_bits: int = DEFAULT_MEMBRANE_FRAC_BITS) -> tuple[Network, QuantizationReport]:
    """Return the integer network for ``source`` and a report of what was rescaled or rounded (see the
    module docstring for both cases)."""
    _check_options(weight_bits, beta_frac_bits, membrane_frac_bits)
    chosen_frac = beta_frac_bits if beta_frac_bits is not None else _choose_frac_bits(source.layers)
    notes = [note for layer in source.layers for note in _rounding_notes(layer, chosen_frac)]
    integer_model = all(all(_is_integer(weights) for weights in _synapses(layer)) and _is_integer(layer.bias)
                        and (layer.readout or _is_integer(layer.threshold)) for layer in source.layers)
    scales = {}
    if integer_model:
        layers, bits = _quantize_integer(source, weight_bits, chosen_frac, membrane_frac_bits, state_bits)
    else:
        bits = weight_bits if weight_bits is not None else DEFAULT_FLOAT_WEIGHT_BITS
        if bits == 1:
            raise QuantizationError("a float model needs at least 2 weight bits (--weight-bits)")
        layers = []
        for layer in source.layers:
            quantized, scales[layer.name] = _float_layer(layer, bits, membrane_frac_bits, chosen_frac, state_bits)
            layers.append(quantized)
        notes.append(f"float model quantized to {bits}-bit weights, per-layer scale folded into bias and threshold"
                     + (f"; membrane with {membrane_frac_bits} extra fraction bits (W, b, threshold x "
                        f"2^{membrane_frac_bits})" if membrane_frac_bits else ""))
    network = Network(layers=tuple(layers), state_bits=state_bits)
    report = QuantizationReport(exact=integer_model and not notes, weight_bits=bits, beta_frac_bits=chosen_frac,
                                membrane_frac_bits=0 if integer_model else membrane_frac_bits, scales=scales,
                                notes=tuple(notes))
    return network, report
