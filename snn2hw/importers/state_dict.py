"""Import the PyTorch state dict of an snnTorch network: ``torch.save(net.state_dict(), "model.pt")``.

Accepted: the state dict of ``nn.Sequential(nn.Linear, snn.Leaky, nn.Linear, snn.Leaky, ...)`` (keys ``0.weight``,
``0.bias``, ``1.beta``, ``1.threshold``, ...) or of a module whose children are defined in that order (``fc1``,
``lif1``, ``fc2``, ``lif2``, ...). Keys are grouped by module prefix (the key up to its last ``.``):

* an ``nn.Linear`` group holds a 2-D ``weight`` and an optional ``bias``;
* an ``snn.Leaky`` group holds ``beta`` and ``threshold`` (scalars, or tensors of one value per neuron, e.g.
  ``snn.Leaky(beta=torch.tensor([...]))`` or a learned per-neuron beta), an optional ``graded_spikes_factor``
  (must be 1) and an optional ``reset_mechanism_val`` (0 subtract, 1 zero, 2 none; subtract when absent, as in snnTorch).
* an ``snn.Synaptic`` group holds the same plus ``alpha`` (scalar or per neuron);
* an ``snn.RLeaky`` group holds the Leaky keys plus its recurrence: ``V`` (and, when learned, the same tensor again
  as ``recurrent.V``; scalar or per neuron) for ``all_to_all=False``, or ``recurrent.weight`` [N, N] and
  ``recurrent.bias`` (folded into the layer's bias) of the ``nn.Linear`` of ``all_to_all=True,
  linear_features=N``; an ``snn.RSynaptic`` group holds the RLeaky keys plus ``alpha`` (its recurrence enters
  the synaptic current, see :mod:`snn2hw.ir`). A convolutional recurrence (4-D ``recurrent.weight``) is refused.

* an ``nn.Conv2d`` group holds a 4-D ``weight`` [O, C, kh, kw] and an optional ``bias``.

A state dict holds no graph, so this importer ASSUMES that the layers run in key order, i.e. in the order the
module registered its children, the groups alternating Linear or Conv2d, Leaky, starting with a Linear or Conv2d
and ending with a Leaky. A layer is named after its Linear's or Conv2d's prefix (``fc1``; ``0`` becomes
``layer0``). The file is read with ``torch.load(weights_only=True)``, so it never runs pickled code.

Convolutions: a state dict holds neither the input's height and width nor a convolution's stride and padding nor
the parameterless modules (``nn.MaxPool2d``, ``nn.Flatten``). So the caller gives the input shape C,H,W
(``--input-shape``), each ``nn.Conv2d`` is read as PyTorch's default ``stride=1, padding=0`` (unrolled to a dense
layer by :func:`.spatial.conv2d_dense`, neurons in C,H,W order, its geometry kept as the layer's ``conv``), a
Linear after a Conv2d is taken to follow an ``nn.Flatten`` and must take exactly the C * H * W spikes the Conv2d
gives, and a Conv2d must be followed by such a Linear (its size is the only check of the assumed geometry).
Another size, a Conv2d after a Linear, or a Conv2d at the end is refused: pooling, padding and strides cannot be
recovered from a state dict, so such a network must be exported to ONNX or NIR.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..conv_geometry import ConvGeometry
from ..errors import ModelFormatError, QuantizationError, UnsupportedModelError
from ..ir import Reset, SourceLayer, SourceNetwork
from . import check_graded_spikes, check_model_file, layer_name, neuron_param, one_line, scalar_param
from .spatial import FeatureShape, conv2d_dense, spread_over

__all__ = ["load_state_dict"]

_LINEAR_KEYS = frozenset({"weight", "bias"})
_LEAKY_KEYS = frozenset({"beta", "threshold", "graded_spikes_factor", "reset_mechanism_val"})
_RECURRENT_KEYS = frozenset({"V", "recurrent.V", "recurrent.weight", "recurrent.bias"})
_NEURON_KEYS = _LEAKY_KEYS | _RECURRENT_KEYS | {"alpha"}
_FORMS = ("an nn.Linear or nn.Conv2d (weight[, bias]) or an snn.Leaky (beta, threshold[, graded_spikes_factor, "
          "reset_mechanism_val]), snn.Synaptic (+ alpha), snn.RLeaky (+ V or recurrent.weight[, recurrent.bias]) "
          "or snn.RSynaptic (+ alpha and V or recurrent.weight[, recurrent.bias])")
_SYNAPSES = {"linear": "nn.Linear", "conv": "nn.Conv2d"}
_EXPORT = "pooling, padding and strides cannot be recovered from a state dict: export the network to ONNX or NIR"


def load_state_dict(path: str | os.PathLike, input_shape: FeatureShape | None = None) -> SourceNetwork:
    """Import an snnTorch network's state dict (see the module docstring for what is accepted); ``input_shape``
    is the (C, H, W) of the input, needed when the first layer is an nn.Conv2d."""
    path = check_model_file(path)
    groups = _group(_read(path))
    return SourceNetwork(tuple(_layers(groups, input_shape)), origin=str(path))


def _read(path: Path) -> dict[str, np.ndarray]:
    """The state dict at ``path`` as float64 arrays, in key order."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for unreadable files
        raise _load_error(path, exc) from exc
    if not isinstance(state, Mapping):
        raise ModelFormatError(f"model file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    if not state:
        raise ModelFormatError(f"model file {str(path)!r} holds an empty state dict")
    return {str(key): _array(key, value) for key, value in state.items()}


def _load_error(path: Path, exc: Exception) -> ModelFormatError:
    """A one-line error for a failed ``torch.load``; torch's weights-only errors span many lines."""
    text = str(exc)
    pickled = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if pickled:
        return ModelFormatError(f"model file {str(path)!r} holds a pickled {pickled[1]}, not a state dict "
                                f"(save net.state_dict(), not net)")
    _, found, reason = text.partition("WeightsUnpickler error:")
    return ModelFormatError(f"model file {str(path)!r} is not a readable PyTorch file: "
                            f"{one_line(reason if found and reason.strip() else exc)}")


def _array(key, value) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise ModelFormatError(f"state dict entry {key!r} is not a tensor (type {type(value).__name__}); "
                               f"is this a training checkpoint? save net.state_dict()")
    try:
        return value.detach().to("cpu", torch.float64).numpy()
    except Exception as exc:  # quantized, sparse or meta tensors
        raise UnsupportedModelError(f"state dict key {key!r}: cannot read tensor: {one_line(exc)}") from exc


def _group(state: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Keys grouped by module prefix, in order of first appearance: ``{"fc1": {"weight": ..., "bias": ...}}``."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, suffix = key.rpartition(".")
        parent, _, child = prefix.rpartition(".")
        if child == "recurrent" and parent in groups:  # an snn.RLeaky's recurrence belongs to the neuron
            prefix, suffix = parent, f"recurrent.{suffix}"
        groups.setdefault(prefix, {})[suffix] = value
    return groups


def _key(prefix: str, suffix: str) -> str:
    return f"{prefix}.{suffix}" if prefix else suffix


def _kind(prefix: str, params: dict[str, np.ndarray]) -> str:
    """``"linear"``, ``"conv"`` or ``"leaky"``; anything else raises UnsupportedModelError naming a key."""
    suffixes = set(params)
    if "weight" in suffixes and suffixes <= _LINEAR_KEYS:
        if params["weight"].ndim not in (2, 4):
            raise UnsupportedModelError(f"state dict key {_key(prefix, 'weight')!r} has shape "
                                        f"{tuple(params['weight'].shape)}: only 2-D nn.Linear and 4-D nn.Conv2d "
                                        f"weights are supported")
        return "linear" if params["weight"].ndim == 2 else "conv"
    if {"beta", "threshold"} <= suffixes <= _NEURON_KEYS:
        return "leaky"  # or a Synaptic or RLeaky: the same place in the chain
    foreign = [suffix for suffix in params if suffix not in _LINEAR_KEYS | _NEURON_KEYS]
    if foreign:
        raise UnsupportedModelError(f"state dict key {_key(prefix, foreign[0])!r} is not a parameter of {_FORMS}")
    keys = [_key(prefix, suffix) for suffix in params]
    raise UnsupportedModelError(f"state dict keys {keys} do not form {_FORMS}")


def _layers(groups: dict[str, dict[str, np.ndarray]], input_shape: FeatureShape | None) -> list[SourceLayer]:
    """Pair the groups as (Linear or Conv2d, Leaky) layers, in key order."""
    kinds = [(prefix, _kind(prefix, params), params) for prefix, params in groups.items()]
    layers, taken, shape = [], set(), input_shape
    for index in range(0, len(kinds), 2):
        fc_prefix, fc_kind, fc = kinds[index]
        if fc_kind == "leaky":
            raise UnsupportedModelError(f"state dict group {fc_prefix!r} is an snn.Leaky where an nn.Linear or "
                                        f"nn.Conv2d was expected (layers must alternate nn.Linear/nn.Conv2d, "
                                        f"snn.Leaky)")
        if index + 1 == len(kinds):
            raise UnsupportedModelError(f"state dict group {fc_prefix!r} ({_SYNAPSES[fc_kind]}) is not followed by "
                                        f"an snn.Leaky")
        lif_prefix, lif_kind, lif = kinds[index + 1]
        if lif_kind != "leaky":
            raise UnsupportedModelError(f"state dict group {lif_prefix!r} is an {_SYNAPSES[lif_kind]} where the "
                                        f"snn.Leaky of {fc_prefix!r} was expected (layers must alternate "
                                        f"nn.Linear/nn.Conv2d, snn.Leaky)")
        name = layer_name(fc_prefix, index // 2 + 1, taken)
        weight, bias, shape, conv = _synapse(name, fc_kind, fc, shape, first=index == 0)
        layers.append(_layer(name, weight, bias, {key: spread_over(value, shape) for key, value in lif.items()},
                             conv))
    if shape is not None and layers:
        raise UnsupportedModelError(f"layer {layers[-1].name!r} (nn.Conv2d) is not followed by an nn.Linear, which "
                                    f"would check its assumed stride 1 and padding 0: {_EXPORT}")
    return layers


def _synapse(name: str, kind: str, params: dict[str, np.ndarray], shape: FeatureShape | None, first: bool
             ) -> tuple[np.ndarray, np.ndarray | None, FeatureShape | None, ConvGeometry | None]:
    """(dense weight, bias or None, output feature shape or None, convolution geometry or None) of a Linear or
    Conv2d fed by spikes of feature shape ``shape`` (None: a flat vector)."""
    weight, bias = params["weight"], params.get("bias")
    if kind == "linear":
        if shape is not None and shape.size != weight.shape[1]:
            source = "the input" if first else "its nn.Conv2d input"
            raise UnsupportedModelError(f"layer {name!r} (nn.Linear) takes {weight.shape[1]} inputs but {source} "
                                        f"gives {shape} = {shape.size} (stride 1, padding 0, no pooling assumed): "
                                        f"{_EXPORT}")
        return weight, bias, None, None
    if shape is None and first:
        raise UnsupportedModelError(f"layer {name!r} is an nn.Conv2d: a state dict does not hold its input shape; "
                                    f"give it with --input-shape C,H,W")
    if shape is None:
        raise UnsupportedModelError(f"layer {name!r} (nn.Conv2d) follows an nn.Linear: the reshaping of its input "
                                    f"to C,H,W cannot be recovered from a state dict; export the network to ONNX or "
                                    f"NIR")
    return conv2d_dense(weight, bias, shape, name=f"layer {name!r} (nn.Conv2d)")


def _layer(name: str, weight: np.ndarray, bias: np.ndarray | None, lif: dict[str, np.ndarray],
           conv: ConvGeometry | None) -> SourceLayer:
    if "graded_spikes_factor" in lif:
        check_graded_spikes(lif["graded_spikes_factor"], name)
    recurrent, recurrent_bias = _recurrence(name, weight.shape[0], lif)
    return SourceLayer(name=name, weight=weight,
                       bias=(np.zeros(weight.shape[0]) if bias is None else bias) + recurrent_bias,
                       beta=neuron_param(lif["beta"], weight.shape[0], "beta", name),
                       threshold=neuron_param(lif["threshold"], weight.shape[0], "threshold", name),
                       reset=_reset(lif.get("reset_mechanism_val"), name), recurrent=recurrent,
                       alpha=None if "alpha" not in lif else neuron_param(lif["alpha"], weight.shape[0], "alpha", name),
                       conv=conv)


def _recurrence(name: str, n_out: int, lif: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
    """An snn.RLeaky's or snn.RSynaptic's (V, bias to add to the layer's): V [n_out] one-to-one or [n_out, n_out]
    dense; (None, 0) for a neuron without recurrence."""
    if "V" in lif or "recurrent.V" in lif:
        values = lif.get("V", lif.get("recurrent.V"))
        if "recurrent.weight" in lif or "recurrent.bias" in lif:
            raise UnsupportedModelError(f"layer {name!r}: both a one-to-one V and a dense recurrent.weight/bias")
        if "recurrent.V" in lif and not np.array_equal(lif["recurrent.V"], values):
            raise UnsupportedModelError(f"layer {name!r}: V and recurrent.V differ (snnTorch's RLeaky and RSynaptic "
                                        f"hold one tensor under both keys)")
        if values.size not in (1, n_out):
            raise UnsupportedModelError(f"layer {name!r}: V has {values.size} elements; expected 1 or one per "
                                        f"neuron ({n_out})")
        return np.broadcast_to(values.reshape(-1), (n_out,)), np.zeros(n_out)
    if "recurrent.weight" not in lif:
        if "recurrent.bias" in lif:
            raise UnsupportedModelError(f"layer {name!r}: recurrent.bias without recurrent.weight")
        return None, np.zeros(n_out)
    matrix = lif["recurrent.weight"]
    if matrix.ndim == 4:
        neuron = "snn.RSynaptic" if "alpha" in lif else "snn.RLeaky"
        raise UnsupportedModelError(f"layer {name!r}: {neuron} with a convolutional recurrence (recurrent.weight "
                                    f"of shape {tuple(matrix.shape)}) is not supported; use linear_features")
    if matrix.shape != (n_out, n_out):
        raise UnsupportedModelError(f"layer {name!r}: recurrent.weight has shape {tuple(matrix.shape)}, expected "
                                    f"({n_out}, {n_out})")
    bias = lif.get("recurrent.bias", np.zeros(n_out))
    if bias.shape != (n_out,):
        raise UnsupportedModelError(f"layer {name!r}: recurrent.bias has shape {tuple(bias.shape)}, expected "
                                    f"({n_out},)")
    return matrix, bias


def _reset(values: np.ndarray | None, name: str) -> Reset:
    if values is None:
        return Reset.SUBTRACT
    value = scalar_param(values, "reset_mechanism_val", name)
    try:
        return Reset.from_snntorch_val(int(value) if value.is_integer() else value)
    except QuantizationError as exc:
        raise QuantizationError(f"layer {name!r}: {exc}") from None
