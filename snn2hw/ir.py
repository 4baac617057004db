"""The intermediate representation: what importers produce and what passes, golden model and hardware consume.

Two levels:

* :class:`SourceNetwork` holds the model as the user trained it (float parameters, snnTorch semantics).
* :class:`Network` holds the compiled integer network whose semantics :mod:`snn2hw.golden` defines.

Both are sequences of dense layers, each a fully connected synapse ``I = W x + b`` followed by a leaky
integrate-and-fire neuron: snnTorch's ``Leaky``, ``RLeaky`` (recurrent), ``Synaptic`` (a second, synaptic
current state) or ``RSynaptic`` (both), all with ``reset_delay=True``. Convolutions and pooling are lowered to
dense layers on import (:mod:`snn2hw.importers.spatial`); W is always the full dense matrix and the semantics
below are defined by it alone. A layer whose W is exactly one 2-D convolution (groups 1, dilation 1) also
carries that convolution's geometry (``conv``, a :class:`~snn2hw.conv_geometry.ConvGeometry`, checked on
construction to reproduce W exactly from its kernel), so hardware may store the kernel instead of W. Integer
semantics, per layer, with v, syn and s zero
at t = -1 (every inference starts from cleared state), clamp(x) = min(max(x, -2^(B-1)), 2^(B-1) - 1) and
decay(q, x) = floor(q * x / 2^F)::

    I[t] = W x[t] + b  [+ V s[t-1]: recurrent, V dense [n_out, n_out] or one-to-one (V[i] s[t-1][i])]
    J[t] = I[t]                                    (Leaky, RLeaky)
    J[t] = syn[t] = clamp(decay(alpha_q, syn[t-1]) + I[t])           (Synaptic, RSynaptic; syn is never reset)
    subtract: v[t] = clamp(decay(beta_q, v[t-1]) + J[t] - s[t-1] * theta)
    none:     v[t] = clamp(decay(beta_q, v[t-1]) + J[t])
    zero, Leaky:             v[t] = clamp(decay(beta_q, (1 - s[t-1]) * v[t-1]) + J[t])
    zero, RLeaky / Synaptic / RSynaptic: v[t] = (1 - s[t-1]) * clamp(decay(beta_q, v[t-1]) + J[t])
    s[t] = 1 if v[t] > theta else 0

(snnTorch's zero reset clears only the old membrane in ``Leaky`` but the whole new one in ``RLeaky``,
``Synaptic`` and ``RSynaptic``; :attr:`Layer.clears_whole_membrane`. In ``RSynaptic`` V s[t-1] is part of I[t],
so it enters the synaptic current and decays with it, as snnTorch's ``alpha syn + input + recurrent(spk)``.)
alpha, beta and theta are either one value for the whole layer or one per neuron (a 1-D array of n_out values,
as snnTorch takes tensors); every equation above then holds per neuron i. A per-neuron array whose values are
all equal is stored as that one scalar.

A *readout* layer (:attr:`SourceLayer.readout`, NIR's LI: a leaky integrator that never fires) is the last layer
of a source model with theta = +inf and no reset; it compiles to theta = 2^(B-1) - 1, the state maximum, which
v[t] never exceeds, so s[t] = 0 and its membrane v[t] is the output (``simulate --membrane``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .conv_geometry import ConvGeometry
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
    ``beta``, ``threshold`` and ``alpha`` (Synaptic and RSynaptic only, else None) are each a float or a float64
    array of n_out per-neuron values; ``recurrent`` is RLeaky's or RSynaptic's V ([n_out] one-to-one or
    [n_out, n_out] dense, like ``nn.Linear.weight``) or None. ``fixed`` marks an exact integer layer that
    quantization keeps as given in a float model too (the OR layer of max pooling on spikes). ``readout`` marks a
    non-spiking output layer (see the module docstring): its threshold is set to +inf and its reset to none,
    whatever was given. ``conv`` is the geometry of the convolution ``weight`` is (``conv.lower(kernel) ==
    weight`` exactly, QuantizationError otherwise) or None; it does not change the layer's semantics.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta: float | np.ndarray
    threshold: float | np.ndarray
    reset: Reset
    alpha: float | np.ndarray | None = None
    recurrent: np.ndarray | None = None
    fixed: bool = False
    readout: bool = False
    conv: ConvGeometry | None = None

    def __post_init__(self):
        if self.readout:
            object.__setattr__(self, "threshold", np.inf)
            object.__setattr__(self, "reset", Reset.NONE)
        weight = _frozen_array(self.weight, np.float64, "weight", self.name)
        if weight.ndim != 2 or 0 in weight.shape:
            raise QuantizationError(f"layer {self.name!r}: weight must be a non-empty 2-D matrix, got shape "
                                    f"{tuple(weight.shape)}")
        bias = _frozen_array(self.bias, np.float64, "bias", self.name)
        if bias.shape != (weight.shape[0],):
            raise QuantizationError(f"layer {self.name!r}: bias has shape {tuple(bias.shape)}, expected "
                                    f"({weight.shape[0]},)")
        threshold = _per_neuron(self.threshold, weight.shape[0], np.float64, "threshold", self.name)
        for what, values in (("beta", self.beta), ("alpha", self.alpha)):
            if values is None:
                continue
            values = _per_neuron(values, weight.shape[0], np.float64, what, self.name)
            bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))
            if np.any(bad):
                raise QuantizationError(f"layer {self.name!r}: {what} {_first_bad(values, bad)} is outside [0, 1]")
            object.__setattr__(self, what, values)
        object.__setattr__(self, "recurrent", _recurrent(self.recurrent, weight.shape[0], np.float64, self.name))
        bad = ~((np.isfinite(threshold) | self.readout) & (threshold > 0.0))
        if np.any(bad):
            raise QuantizationError(f"layer {self.name!r}: threshold {_first_bad(threshold, bad)} must be finite "
                                    f"and > 0")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "fixed", bool(self.fixed))
        object.__setattr__(self, "readout", bool(self.readout))
        if not isinstance(self.reset, Reset):
            raise QuantizationError(f"layer {self.name!r}: reset {self.reset!r} is not a Reset")
        _check_conv(self.conv, weight, self.name)


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
    ``threshold`` the integer theta > 0, ``alpha_q`` (Synaptic, RSynaptic) like ``beta_q`` or None; each is an int or an
    int64 array of n_out per-neuron values (:attr:`per_neuron` says whether any is). ``recurrent`` is the
    integer V (int64 [n_out] or [n_out, n_out]) or None. ``conv`` is the geometry of the convolution ``weight``
    is (:attr:`SourceLayer.conv`; quantization keeps it) or None; in JSON the key ``"conv"``, absent when None.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta_q: int | np.ndarray
    frac_bits: int
    threshold: int | np.ndarray
    reset: Reset
    alpha_q: int | np.ndarray | None = None
    recurrent: np.ndarray | None = None
    conv: ConvGeometry | None = None

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
        for what in ("beta_q", "alpha_q"):
            if getattr(self, what) is None:
                continue
            values = _per_neuron(getattr(self, what), self.n_out, np.int64, what, self.name)
            outside = (values < 0) | (values > 1 << self.frac_bits)
            if np.any(outside):
                raise QuantizationError(f"layer {self.name!r}: {what} {_first_bad(values, outside)} is outside "
                                        f"[0, 2^{self.frac_bits}]")
            object.__setattr__(self, what, values)
        threshold = _per_neuron(self.threshold, self.n_out, np.int64, "threshold", self.name)
        if not np.all(threshold > 0):
            raise QuantizationError(f"layer {self.name!r}: threshold {_first_bad(threshold, threshold <= 0)} "
                                    f"must be > 0")
        object.__setattr__(self, "frac_bits", int(self.frac_bits))
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "recurrent", _recurrent(self.recurrent, self.n_out, np.int64, self.name))
        _check_conv(self.conv, self.weight, self.name)

    @property
    def beta(self) -> float | np.ndarray:
        return self.beta_q / (1 << self.frac_bits)

    @property
    def alpha(self) -> float | np.ndarray | None:
        return None if self.alpha_q is None else self.alpha_q / (1 << self.frac_bits)

    @property
    def per_neuron(self) -> bool:
        """Whether beta_q, alpha_q or threshold differs between neurons (is an array)."""
        return any(isinstance(value, np.ndarray) for value in (self.beta_q, self.alpha_q, self.threshold))

    @property
    def synaptic(self) -> bool:
        """Whether the neuron has a synaptic-current state (snnTorch ``Synaptic`` or ``RSynaptic``)."""
        return self.alpha_q is not None

    @property
    def recurrence(self) -> str | None:
        """None, "one_to_one" (V is [n_out]) or "dense" (V is [n_out, n_out])."""
        if self.recurrent is None:
            return None
        return "dense" if self.recurrent.ndim == 2 else "one_to_one"

    @property
    def neuron(self) -> str:
        """The snnTorch neuron this layer computes: "Leaky", "Synaptic", "RLeaky one-to-one", "RLeaky dense",
        "RSynaptic one-to-one" or "RSynaptic dense"."""
        if not self.recurrence:
            return "Synaptic" if self.synaptic else "Leaky"
        return f"{'RSynaptic' if self.synaptic else 'RLeaky'} {self.recurrence.replace('_', '-')}"

    @property
    def clears_whole_membrane(self) -> bool:
        """Whether the zero reset clears the whole new membrane (RLeaky, Synaptic, RSynaptic), not just the old
        one."""
        return self.reset is Reset.ZERO and (self.synaptic or self.recurrent is not None)

    @property
    def max_threshold(self) -> int:
        """The largest theta of the layer's neurons."""
        return int(np.max(self.threshold))

    def to_json(self) -> dict:
        obj = {
            "name": self.name, "n_in": self.n_in, "n_out": self.n_out,
            "beta_q": json_value(self.beta_q), "frac_bits": self.frac_bits, "beta": json_value(self.beta),
            "threshold": json_value(self.threshold), "reset": self.reset.value,
            "weight": self.weight.tolist(), "bias": self.bias.tolist(),
            "alpha_q": json_value(self.alpha_q),
            "recurrent": None if self.recurrent is None else self.recurrent.tolist(),
        }
        if self.conv is not None:
            obj["conv"] = self.conv.to_json()
        return obj

    @classmethod
    def from_json(cls, obj: dict) -> "Layer":
        weight = np.array(obj["weight"], dtype=np.int64).reshape(obj["n_out"], obj["n_in"])
        return cls(name=obj["name"], weight=weight, bias=np.array(obj["bias"], dtype=np.int64),
                   beta_q=obj["beta_q"], frac_bits=obj["frac_bits"], threshold=obj["threshold"],
                   reset=Reset(obj["reset"]), alpha_q=obj.get("alpha_q"),
                   recurrent=None if obj.get("recurrent") is None else np.array(obj["recurrent"], np.int64),
                   conv=None if obj.get("conv") is None else ConvGeometry.from_json(obj["conv"]))


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


def _recurrent(values, n_out: int, dtype, layer: str) -> np.ndarray | None:
    """RLeaky's or RSynaptic's V as a frozen ``dtype`` array: [n_out] (one-to-one) or [n_out, n_out] (dense),
    or None."""
    if values is None:
        return None
    array = np.asarray(values)
    if array.dtype.kind == "f" and dtype is not np.float64:
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise QuantizationError(f"layer {layer!r}: integer recurrent weights have non-integer values")
    array = _frozen_array(array, dtype, "recurrent weight V", layer)
    if array.shape not in ((n_out,), (n_out, n_out)):
        raise QuantizationError(f"layer {layer!r}: recurrent weight V must have shape ({n_out},) (one-to-one) or "
                                f"({n_out}, {n_out}) (dense), got {tuple(array.shape)}")
    return array


def _check_conv(conv: ConvGeometry | None, weight: np.ndarray, layer: str) -> None:
    """Refuse a ``conv`` that is no ConvGeometry or whose convolution is not exactly ``weight``."""
    if conv is None:
        return
    if not isinstance(conv, ConvGeometry):
        raise QuantizationError(f"layer {layer!r}: conv {conv!r} is not a ConvGeometry")
    conv.kernel_of(weight, layer)


def _first_bad(values, bad) -> float | int:
    return np.asarray(values)[np.asarray(bad)].flat[0] if np.ndim(values) else values


def _check_chain(layers) -> None:
    if not layers:
        raise QuantizationError("the network has no layers")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise QuantizationError(f"layer names are not unique: {names}")
    for prev, layer in zip(layers, layers[1:]):
        if getattr(prev, "readout", False):
            raise QuantizationError(f"layer {prev.name!r} is a non-spiking readout (LI) but not the last layer: "
                                    f"layer {layer.name!r} would receive no spikes")
        if layer.n_in != prev.n_out:
            raise QuantizationError(f"layer {layer.name!r} takes {layer.n_in} inputs but layer {prev.name!r} "
                                    f"gives {prev.n_out} spikes")
