"""Compose the linear NIR nodes between two neurons (``Affine``, ``Linear``, ``Conv2d``, ``SumPool2d``,
``AvgPool2d``, ``Flatten``) into the one dense map of a layer.

A value between nodes is a vector of neurons; when it is a feature map of shape (C, H, W) its neurons are in
PyTorch's C,H,W flatten order (:mod:`.spatial`). Each node is an affine map ``x -> M x + c`` on such vectors:

* ``Conv2d``: the unrolled convolution (:func:`.spatial.conv2d_dense`); padding ``"valid"`` is 0, ``"same"``
  pads as PyTorch does (total ``dilation * (k - 1)``, the smaller half before) and needs stride 1;
* ``SumPool2d``: the window sums (:func:`.spatial.sum_pool_dense`); ``AvgPool2d``: the sums over the window
  size ``kh * kw`` (padding counted, PyTorch's ``count_include_pad=True``); padding is NIR's ``(height,
  width)``, applied on both sides;
* ``Flatten``: the identity (C,H,W order is the flatten order); the result is a flat vector;
* ``Affine`` / ``Linear``: its weight (and bias), taking all neurons of its input, a map flattened implicitly.

A chain of nodes composes by matrix products: ``M = M_k ... M_1``, ``c = M_k (... (M_2 c_1 + c_2) ...) + c_k``.
When the only weighted node of a chain is a ``Conv2d`` with groups 1 and dilation 1, ``M`` is that convolution and
its :class:`~snn2hw.conv_geometry.ConvGeometry` comes with it; any other chain (a Conv2d composed with a pooling
or an Affine, say) is a plain dense map.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import nir

from ..conv_geometry import ConvGeometry
from ..errors import ModelFormatError, UnsupportedModelError
from . import one_line
from .spatial import FeatureShape, conv2d_dense, sum_pool_dense

__all__ = ["LINEAR_NODES", "WEIGHTED_NODES", "Signal", "compose", "floats", "input_signal"]

WEIGHTED_NODES = (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)
LINEAR_NODES = WEIGHTED_NODES + (nir.Flatten,)


@dataclass(frozen=True)
class Signal:
    """What flows along an edge: ``size`` neurons (None: not declared yet), a feature map of ``shape`` or a flat
    vector (``shape`` None); ``source`` describes the node it comes from, for errors."""

    size: int | None
    shape: FeatureShape | None
    source: str


def compose(nodes: list[tuple[str, nir.NIRNode]], signal: Signal
            ) -> tuple[np.ndarray, np.ndarray, Signal, ConvGeometry | None]:
    """The affine map ``(weight [n_out, n_in], bias [n_out])`` of the described ``nodes`` applied in order to
    ``signal``, the signal it gives, and the geometry of the convolution ``weight`` is when its only weighted
    node is a Conv2d of groups 1 and dilation 1 (else None). At least one node must be weighted (not only
    Flatten)."""
    weight = bias = None
    geometries = []
    for label, node in nodes:
        with _malformed(label):
            matrix, offset, signal, geometry = _lower(label, node, signal)
        if matrix is None:
            continue
        geometries.append(geometry)
        weight = matrix if weight is None else matrix @ weight
        bias = offset if bias is None else matrix @ bias + offset
    assert weight is not None, "the chain check guarantees a weighted node"
    return weight, bias, signal, geometries[0] if len(geometries) == 1 else None


@contextmanager
def _malformed(label: str):
    """Attributes of the wrong type or value (a non-integer stride, an unreadable shape) are a malformed file."""
    try:
        yield
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelFormatError(f"{label}: {one_line(exc)} (malformed NIR file)") from None


def floats(values, what: str) -> np.ndarray:
    """``values`` as a float64 array; a parameter that is no numeric array is a malformed file."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"{what} is not a numeric array: {one_line(exc)} (malformed NIR file)") from None


def input_signal(label: str, dims, first: tuple[str, nir.NIRNode]) -> Signal:
    """The signal of the Input node ``label`` of shape ``dims`` (empty: undeclared) read by the ``first`` node:
    (C, H, W) is a map (also with a batch dimension of 1 before it), other shapes a flat vector; a flat or
    undeclared input read by a Conv2d is the map its input_shape (H, W) and weight's channels make."""
    with _malformed(label):
        dims = [int(dim) for dim in dims]
    if any(dim < 1 for dim in dims):
        raise ModelFormatError(f"{label} has shape {dims}: every dimension must be >= 1 (malformed NIR file)")
    if len(dims) == 4 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) == 3:
        return Signal(int(np.prod(dims)), FeatureShape(*dims), label)
    signal = Signal(int(np.prod(dims)) if dims else None, None, label)
    first_label, node = first
    if not isinstance(node, nir.Conv2d) or node.input_shape is None:
        return signal
    with _malformed(first_label):
        declared, weight_shape, groups = (tuple(int(v) for v in np.atleast_1d(node.input_shape)),
                                          np.shape(node.weight), int(node.groups))
    if len(declared) != 2 or len(weight_shape) != 4:
        raise UnsupportedModelError(f"{first_label}: input_shape {declared} and weight shape {list(weight_shape)} "
                                    f"are not (height, width) and [O, C, kh, kw]")
    shape = FeatureShape(int(weight_shape[1]) * groups, *declared)
    if signal.size is not None and shape.size != signal.size:
        raise UnsupportedModelError(f"{label} gives {_values(signal)}, but {first_label} takes a {shape} map")
    return Signal(shape.size, shape, label)


def _values(signal: Signal) -> str:
    if signal.shape is not None:
        return f"a {signal.shape} map"
    return "values of undeclared shape" if signal.size is None else f"a flat vector of {signal.size} values"


def _map(label: str, signal: Signal) -> FeatureShape:
    """The feature map a Conv2d or pooling node ``label`` reads."""
    if signal.shape is None:
        raise UnsupportedModelError(f"{label} needs a C,H,W feature map, but {signal.source} gives "
                                    f"{_values(signal)}")
    return signal.shape


def _lower(label: str, node: nir.NIRNode, signal: Signal):
    """``(matrix, bias, output signal, convolution geometry or None)`` of one node; ``(None, None, output,
    None)`` for the identity (Flatten)."""
    if isinstance(node, nir.Flatten):
        return None, None, Signal(signal.size, None, label), None
    if isinstance(node, nir.Conv2d):
        return _conv(label, node, signal)
    lower = _dense if isinstance(node, (nir.Affine, nir.Linear)) else _pool
    return (*lower(label, node, signal), None)


def _dense(label: str, node, signal: Signal):
    weight = floats(node.weight, f"the weight of {label}")
    if weight.ndim != 2 or 0 in weight.shape:
        raise UnsupportedModelError(f"{label}: weight has shape {list(weight.shape)}, expected a non-empty "
                                    f"[outputs, inputs] matrix")
    if signal.size is not None and weight.shape[1] != signal.size:
        raise UnsupportedModelError(f"{signal.source} gives {_values(signal)}, but {label} takes {weight.shape[1]} "
                                    f"inputs")
    if isinstance(node, nir.Linear):
        return weight, np.zeros(weight.shape[0]), Signal(weight.shape[0], None, label)
    bias = floats(node.bias, f"the bias of {label}")
    if bias.size != weight.shape[0]:
        raise UnsupportedModelError(f"{label}: bias has shape {list(bias.shape)} for {weight.shape[0]} outputs")
    return weight, bias.reshape(-1), Signal(weight.shape[0], None, label)


def _conv(label: str, node: nir.Conv2d, signal: Signal):
    weight = floats(node.weight, f"the weight of {label}")
    if weight.ndim != 4:
        raise UnsupportedModelError(f"{label}: weight has shape {list(weight.shape)}, expected 4-D [O, C, kh, kw]")
    groups = int(node.groups)
    declared = None if node.input_shape is None else tuple(int(v) for v in np.atleast_1d(node.input_shape))
    shape = _map(label, signal)
    if declared is not None and declared != (shape.height, shape.width):
        raise UnsupportedModelError(f"{label}: input_shape {declared} differs from the {shape} map "
                                    f"{signal.source} gives")
    padding = _padding(label, node, weight.shape[2:])
    matrix, bias, out, geometry = conv2d_dense(weight, floats(node.bias, f"the bias of {label}"), shape,
                                               node.stride, padding, node.dilation, groups, name=label)
    return matrix, bias, Signal(out.size, out, label), geometry


def _padding(label: str, node: nir.Conv2d, kernel: tuple[int, int]):
    """NIR's padding (int, (h, w), ``"valid"`` or ``"same"``) as (top, left, bottom, right)."""
    padding = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
    if not isinstance(padding, str):
        return padding
    if padding == "valid":
        return 0
    stride = tuple(int(v) for v in np.atleast_1d(node.stride))
    if padding != "same" or set(stride) != {1}:
        raise UnsupportedModelError(f"{label}: padding {padding!r} with stride {stride} is not supported (padding "
                                    f"must be numbers, 'valid', or 'same' with stride 1)")
    dilation = np.resize(np.atleast_1d(node.dilation).astype(int), 2)   # conv2d_dense checks it is 2-D
    total = dilation * (np.asarray(kernel) - 1)
    before = total // 2
    return (int(before[0]), int(before[1]), int(total[0] - before[0]), int(total[1] - before[1]))


def _pool(label: str, node, signal: Signal):
    matrix, out = sum_pool_dense(_map(label, signal), node.kernel_size, node.stride, node.padding, name=label)
    if isinstance(node, nir.AvgPool2d):   # the kernel is 2-D: sum_pool_dense checked it
        matrix = matrix / float(np.prod(np.broadcast_to(np.atleast_1d(node.kernel_size), (2,)).astype(int)))
    return matrix, np.zeros(out.size), Signal(out.size, out, label)
