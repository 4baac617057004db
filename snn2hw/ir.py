"""The intermediate representation: what importers produce and what passes, golden model and hardware consume.

Two levels:

* :class:`SourceNetwork` holds the model as the user trained it (float parameters, snnTorch semantics).
* :class:`Network` holds the compiled integer network whose semantics :mod:`snn2hw.golden` defines.

Both are sequences of dense layers, each a fully connected synapse ``I = W x + b`` followed by a leaky
integrate-and-fire neuron (snnTorch ``Leaky`` with ``reset_delay=True``). Integer LIF semantics, per layer,
with v[-1] = 0 and s[-1] = 0 at the start of every inference::

    I[t] = W x[t] + b
    subtract: u = floor(beta_q * v[t-1] / 2^F) + I[t] - s[t-1] * theta
    zero:     u = floor(beta_q * (1 - s[t-1]) * v[t-1] / 2^F) + I[t]
    none:     u = floor(beta_q * v[t-1] / 2^F) + I[t]
    v[t] = clamp(u, -2^(B-1), 2^(B-1) - 1)
    s[t] = 1 if v[t] > theta else 0

beta and theta are either one value for the whole layer or one per neuron (a 1-D array of n_out values, as
snnTorch's ``Leaky`` takes tensors); every equation above then holds per neuron i with beta_q[i] and theta[i].
A per-neuron array whose values are all equal is stored as that one scalar.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .errors import QuantizationError

__all__ = ["Reset", "SourceLayer", "SourceNetwork", "Layer", "Network", "json_value"]


class Reset(enum.Enum):
    """What a spike at t-1 does to the membrane at t (snnTorch ``reset_mechanism``)."""

    SUBTRACT = "subtract"
    ZERO = "zero"
    NONE = "none"

    @classmethod
    def from_snntorch_val(cls, value: int) -> "Reset":
        """Map snnTorch's ``reset_mechanism_val`` buffer (0, 1, 2) to a :class:`Reset`."""
        table = {0: cls.SUBTRACT, 1: cls.ZERO, 2: cls.NONE}
        if value not in table:
            raise QuantizationError(f"reset_mechanism_val {value!r} is not 0 (subtract), 1 (zero) or 2 (none)")
        return table[value]


class _Dense:
    """Shape of a dense layer with ``weight`` [n_out, n_in]."""

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


class _Chain:
    """Shape of a chain of ``layers``: the first one's inputs, the last one's outputs."""

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out


def _per_neuron(values, n_out: int, dtype, what: str, layer: str):
    """``values`` as a Python scalar (one value, or n_out equal ones) or a frozen 1-D ``dtype`` array of
    ``n_out`` values."""
    array = np.asarray(values)
    if array.ndim > 1 or array.size not in (1, n_out):
        raise QuantizationError(f"layer {layer!r}: {what} must be a scalar or {n_out} per-neuron values, got shape "
                                f"{tuple(array.shape)}")
    array = array.reshape(-1)
    if array.dtype.kind not in "iub" and dtype is not np.float64:
        floats = array.astype(np.float64)
        if not np.all(floats == np.round(floats)):
            raise QuantizationError(f"layer {layer!r}: integer {what} has non-integer values")
    array = np.array(array, dtype=dtype, copy=True)   # non-finite floats are left to the caller's range check
    array.setflags(write=False)
    if np.all(array == array[0]):
        return array[0].item()
    return array


def _frozen_array(values, dtype, what: str, layer: str) -> np.ndarray:
    array = np.array(values, dtype=dtype, copy=True)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].flat[0]
        raise QuantizationError(f"layer {layer!r}: {what} contains {bad} (NaN/Inf)")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SourceLayer(_Dense):
    """A dense layer plus LIF neuron, as imported, in float (snnTorch semantics).

    ``weight`` is [n_out, n_in] like ``nn.Linear.weight``; ``bias`` is [n_out] (zeros when absent);
    ``beta`` and ``threshold`` are each a float or a float64 array of n_out per-neuron values.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta: float | np.ndarray
    threshold: float | np.ndarray
    reset: Reset

    def __post_init__(self):
        weight = _frozen_array(self.weight, np.float64, "weight", self.name)
        if weight.ndim != 2 or 0 in weight.shape:
            raise QuantizationError(f"layer {self.name!r}: weight must be a non-empty 2-D matrix, got shape "
                                    f"{tuple(weight.shape)}")
        bias = _frozen_array(self.bias, np.float64, "bias", self.name)
        if bias.shape != (weight.shape[0],):
            raise QuantizationError(f"layer {self.name!r}: bias has shape {tuple(bias.shape)}, expected "
                                    f"({weight.shape[0]},)")
        beta = _per_neuron(self.beta, weight.shape[0], np.float64, "beta", self.name)
        threshold = _per_neuron(self.threshold, weight.shape[0], np.float64, "threshold", self.name)
        bad = ~(np.isfinite(beta) & (beta >= 0.0) & (beta <= 1.0))
        if np.any(bad):
            raise QuantizationError(f"layer {self.name!r}: beta {_first_bad(beta, bad)} is outside [0, 1]")
        bad = ~(np.isfinite(threshold) & (threshold > 0.0))
        if np.any(bad):
            raise QuantizationError(f"layer {self.name!r}: threshold {_first_bad(threshold, bad)} must be finite "
                                    f"and > 0")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "threshold", threshold)
        if not isinstance(self.reset, Reset):
            raise QuantizationError(f"layer {self.name!r}: reset {self.reset!r} is not a Reset")


@dataclass(frozen=True, eq=False)
class SourceNetwork(_Chain):
    """An imported model: a chain of :class:`SourceLayer`, each feeding its spikes to the next."""

    layers: tuple[SourceLayer, ...]
    origin: str = ""

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        _check_chain(self.layers)


@dataclass(frozen=True, eq=False)
class Layer(_Dense):
    """A compiled integer layer; see the module docstring for its exact semantics.

    ``weight`` is int64 [n_out, n_in], ``bias`` int64 [n_out], ``beta_q`` = round(beta * 2^frac_bits),
    ``threshold`` the integer theta > 0; ``beta_q`` and ``threshold`` are each an int or an int64 array of
    n_out per-neuron values (:attr:`per_neuron` says whether either is).
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta_q: int | np.ndarray
    frac_bits: int
    threshold: int | np.ndarray
    reset: Reset

    def __post_init__(self):
        for what in ("weight", "bias"):
            values = np.asarray(getattr(self, what))
            if values.dtype.kind == "f":
                if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
                    raise QuantizationError(f"layer {self.name!r}: integer {what} has non-integer values")
            object.__setattr__(self, what, _frozen_array(values, np.int64, what, self.name))
        if self.weight.ndim != 2 or 0 in self.weight.shape:
            raise QuantizationError(f"layer {self.name!r}: weight must be a non-empty 2-D matrix")
        if self.bias.shape != (self.weight.shape[0],):
            raise QuantizationError(f"layer {self.name!r}: bias shape {self.bias.shape} does not match weight")
        if not 0 <= self.frac_bits <= 24:
            raise QuantizationError(f"layer {self.name!r}: frac_bits {self.frac_bits} is outside [0, 24]")
        beta_q = _per_neuron(self.beta_q, self.n_out, np.int64, "beta_q", self.name)
        threshold = _per_neuron(self.threshold, self.n_out, np.int64, "threshold", self.name)
        outside = (beta_q < 0) | (beta_q > 1 << self.frac_bits)
        if np.any(outside):
            raise QuantizationError(f"layer {self.name!r}: beta_q {_first_bad(beta_q, outside)} is outside "
                                    f"[0, 2^{self.frac_bits}]")
        if not np.all(threshold > 0):
            raise QuantizationError(f"layer {self.name!r}: threshold {_first_bad(threshold, threshold <= 0)} "
                                    f"must be > 0")
        object.__setattr__(self, "beta_q", beta_q)
        object.__setattr__(self, "frac_bits", int(self.frac_bits))
        object.__setattr__(self, "threshold", threshold)

    @property
    def beta(self) -> float | np.ndarray:
        return self.beta_q / (1 << self.frac_bits)

    @property
    def per_neuron(self) -> bool:
        """Whether beta_q or threshold differs between neurons (is an array)."""
        return isinstance(self.beta_q, np.ndarray) or isinstance(self.threshold, np.ndarray)

    @property
    def max_threshold(self) -> int:
        """The largest theta of the layer's neurons."""
        return int(np.max(self.threshold))

    def to_json(self) -> dict:
        return {
            "name": self.name, "n_in": self.n_in, "n_out": self.n_out,
            "beta_q": json_value(self.beta_q), "frac_bits": self.frac_bits, "beta": json_value(self.beta),
            "threshold": json_value(self.threshold), "reset": self.reset.value,
            "weight": self.weight.tolist(), "bias": self.bias.tolist(),
        }

    @classmethod
    def from_json(cls, obj: dict) -> "Layer":
        weight = np.array(obj["weight"], dtype=np.int64).reshape(obj["n_out"], obj["n_in"])
        return cls(name=obj["name"], weight=weight, bias=np.array(obj["bias"], dtype=np.int64),
                   beta_q=obj["beta_q"], frac_bits=obj["frac_bits"], threshold=obj["threshold"],
                   reset=Reset(obj["reset"]))


@dataclass(frozen=True, eq=False)
class Network(_Chain):
    """A compiled integer network: layers plus the membrane width ``state_bits`` (B) shared by all."""

    layers: tuple[Layer, ...]
    state_bits: int = 16
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        _check_chain(self.layers)
        if not 2 <= self.state_bits <= 32:
            raise QuantizationError(f"state bits {self.state_bits} is outside [2, 32]")

    @property
    def state_min(self) -> int:
        return -(1 << (self.state_bits - 1))

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1

    def to_json(self) -> dict:
        return {"format": "snn2hw-network", "version": 1, "state_bits": self.state_bits,
                "metadata": self.metadata, "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, obj: dict) -> "Network":
        if obj.get("format") != "snn2hw-network":
            raise QuantizationError("not an snn2hw network description (missing format: snn2hw-network)")
        return cls(layers=tuple(Layer.from_json(layer) for layer in obj["layers"]),
                   state_bits=obj["state_bits"], metadata=obj.get("metadata", {}))


def json_value(value: float | int | np.ndarray) -> float | int | list:
    """A layer parameter (scalar or per-neuron array) as a JSON value: the scalar, or a list."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _first_bad(values, bad) -> float | int:
    return np.asarray(values)[np.asarray(bad)].flat[0] if np.ndim(values) else values


def _check_chain(layers) -> None:
    if not layers:
        raise QuantizationError("the network has no layers")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise QuantizationError(f"layer names are not unique: {names}")
    for prev, layer in zip(layers, layers[1:]):
        if layer.n_in != prev.n_out:
            raise QuantizationError(f"layer {layer.name!r} takes {layer.n_in} inputs but layer {prev.name!r} "
                                    f"gives {prev.n_out} spikes")
