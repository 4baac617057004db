"""Import the single-timestep ONNX graph that ``torch.onnx.export`` makes of an snnTorch network.

Accepted: one timestep of 1 or more ``nn.Linear`` or ``nn.Conv2d`` (with or without bias) -> ``snn.Leaky`` layers
(beta and threshold scalars or per-neuron tensors, ``reset_mechanism`` "subtract", "zero" or "none",
``reset_delay=True``) whose membranes are explicit graph inputs and outputs (``snn.Synaptic``, ``snn.RLeaky`` and
``snn.RSynaptic`` neurons, whose states are too, are recognised by :mod:`.onnx_neurons`), exported with
``dynamo=True`` or ``dynamo=False``; tensors may be in external data files next to the model. Between layers,
spikes (and the data input) may pass through ``nn.MaxPool2d`` and ``nn.Flatten``/reshapes. The layers are
recognised from the graph structure, never from names or input order:

* constants (initializers, ``Constant`` nodes, and Identity/Clip/Cast/arithmetic/reshaping nodes whose inputs
  are all constant) are folded with numpy;
* the data input is the graph input that feeds a Gemm/MatMul (outside a module ``recurrent``, where an RLeaky or
  RSynaptic reads its previous spikes); from it each layer is, with ``m`` the membrane
  graph input and ``r = Cast(Greater(Sub(m, threshold), 0))`` the spike of the previous step::

      I = Gemm(x, W, b)   or   MatMul(x, W^T) [+ b]
      u = beta * m + I  (none)   u = beta * (1 - r) * m + I  (zero)   u = beta * m + I - r * threshold  (subtract)
      s = Cast(Greater(Sub(u, threshold), 0)) [* graded_spikes_factor, which must be 1]

  where ``beta`` may be absent (folded when 1), ``r * threshold`` may be ``r`` (folded when 1), both comparisons
  may be ``Greater(v, threshold)`` and commutative operands come in any order; ``s`` feeds the next layer or is
  a graph output;
* every non-constant node must belong to a matched layer.

Spatial layers are lowered to dense ones by :mod:`.spatial`, neurons in PyTorch's C,H,W flatten order, from the
shapes the graph input declares ([1, C, H, W]; a symbolic batch dimension counts as 1):

* ``Conv`` (2-D, explicit ``pads``, any strides, dilations and groups) is the layer's synapse, unrolled to a dense
  matrix (:func:`.spatial.conv2d_dense`; with group 1 and dilation 1 the layer keeps its geometry as ``conv``,
  also when its quantized weight is divided by per-channel scales, below); a per-channel beta or threshold
  ([C, 1, 1]) is spread over the map;
* ``MaxPool`` (2-D, ``ceil_mode=0``, dilation 1) of spikes becomes a fixed OR layer (:func:`.spatial.max_pool_layer`);
  a MaxPool of currents (``Conv -> MaxPool -> Leaky``) is refused: pooling currents is not an OR of spikes;
* ``Flatten``, ``Reshape`` (to a constant shape), ``Squeeze`` and ``Unsqueeze`` of spikes keep the element order,
  so they are the identity on neurons; they only change the shape a following Conv or MaxPool sees.

Quantized weights: QONNX ``Quant``/``IntQuant`` nodes (Brevitas ``export_qonnx``) and ``QuantizeLinear`` ->
``DequantizeLinear`` pairs (or ``DequantizeLinear`` of an integer initializer) on constants are evaluated like any
constant (:mod:`.onnx_quant`). When a layer's weight comes from such a quantizer (zero point integer) with one
scale ``s_i`` per output neuron i (one scale for all, or per output channel: axis 0 of a Gemm ``[out, in]``
weight with transB=1, axis 1 of a MatMul ``[in, out]`` weight, axis 0 of a Conv ``[O, C, kh, kw]`` weight, the
channel's scale then applying to all neurons of its map), row i is imported as the integers ``W_i / s_i`` with
bias ``b_i / s_i``, threshold ``theta_i / s_i`` (per-neuron when the scales differ) and an RLeaky's or
RSynaptic's recurrent weights ``V_i / s_i`` (row i of a dense V, element i of a one-to-one V): each neuron's
equations are linear in (v, syn, W, V, b, theta) for every reset mechanism and beta and alpha leave them
unchanged, so the spikes are the same; a
threshold and bias that are multiples of ``s_i`` give an integer model, compiled exactly as given. Scales that
vary along an input axis of the weight (per-input-channel) are refused, naming the quantizer.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from ..conv_geometry import ConvGeometry
from ..errors import ModelFormatError, UnsupportedModelError
from ..ir import Reset, SourceLayer, SourceNetwork
from . import check_graded_spikes, check_model_file, layer_name, neuron_param, one_line
from .onnx_neurons import is_stateful, match_stateful, recurrent_scope
from .onnx_quant import evaluate, is_quantizer
from .spatial import FeatureShape, conv2d_dense, max_pool_layer, spread_over

__all__ = ["load_onnx"]

_HINT = ("snn2hw maps Gemm/MatMul/Conv + snnTorch Leaky, Synaptic, RLeaky and RSynaptic patterns and "
         "MaxPool/Flatten of spikes only")
_DENSE_OPS = frozenset({"Gemm", "MatMul", "Conv"})
_RESHAPE_OPS = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze"})   # keep the C,H,W element order
_PATTERN_OPS = frozenset({"Add", "Sub", "Mul", "Greater", "Cast", "MaxPool"}) | _DENSE_OPS | _RESHAPE_OPS
_FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})


def load_onnx(path: str | os.PathLike) -> SourceNetwork:
    """Import an snnTorch single-timestep ONNX graph (see the module docstring for what is accepted)."""
    path = check_model_file(path)
    graph = _Graph(_read(path))
    return SourceNetwork(tuple(_Matcher(graph).layers()), origin=str(path))


def _read(path: Path) -> onnx.GraphProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValidationError... for unreadable files
        raise ModelFormatError(f"model file {str(path)!r} is not a readable ONNX model: {one_line(exc)}") from exc
    if not model.graph.node:
        raise ModelFormatError(f"model file {str(path)!r} holds no ONNX graph (truncated or not an ONNX model)")
    _load_external_data(model, path)
    return model.graph


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read tensors stored in external files, which live next to the model."""
    locations = {entry.value for init in model.graph.initializer if uses_external_data(init)
                 for entry in init.external_data if entry.key == "location"}
    for location in sorted(locations):
        if not (path.parent / location).is_file():
            raise ModelFormatError(f"external data file {location!r} of model file {str(path)!r} does not exist")
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # truncated data file, offsets out of range, locations outside the directory...
        raise ModelFormatError(f"cannot read the external data of model file {str(path)!r}: "
                               f"{one_line(exc)}") from exc


def _describe(node: onnx.NodeProto) -> str:
    name = node.name or (node.output[0] if node.output else "?")
    return f"ONNX node {name!r} (op {node.op_type})"


def _attrs(node: onnx.NodeProto) -> dict:
    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


# --- constant folding ---------------------------------------------------------------------------------------

def _constant(node, inputs):
    attrs = _attrs(node)
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dtype)
    raise ValueError(f"unsupported Constant attribute {sorted(attrs)}")


def _clip(node, inputs):
    attrs = _attrs(node)  # opset < 11 keeps the bounds in attributes
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min", -np.inf)
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max", np.inf)
    return np.clip(inputs[0], low, high).astype(inputs[0].dtype)


def _reshape(node, inputs):
    data, shape = inputs[0], [int(dim) for dim in inputs[1]]
    if not _attrs(node).get("allowzero", 0):
        shape = [data.shape[i] if dim == 0 else dim for i, dim in enumerate(shape)]
    return data.reshape(shape)


def _axes(node, inputs):
    axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else _attrs(node).get("axes")
    return None if axes is None else [int(axis) for axis in np.ravel(axes)]


def _flatten(node, inputs):
    data, axis = inputs[0], _attrs(node).get("axis", 1)
    return data.reshape(int(np.prod(data.shape[:axis + data.ndim if axis < 0 else axis])), -1)


def _squeeze(node, inputs):
    axes = _axes(node, inputs)
    return np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))


def _unsqueeze(node, inputs):
    data, axes = inputs[0], _axes(node, inputs)
    rank = data.ndim + len(axes)
    for axis in sorted(axis % rank for axis in axes):
        data = np.expand_dims(data, axis)
    return data


_SHAPE_OPS = frozenset({"Identity", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"})  # keep a grid
_FOLDERS = {
    "Constant": _constant,
    "Identity": lambda node, inputs: inputs[0],
    "Cast": lambda node, inputs: inputs[0].astype(helper.tensor_dtype_to_np_dtype(_attrs(node)["to"])),
    "Clip": _clip,
    "Add": lambda node, inputs: inputs[0] + inputs[1],
    "Sub": lambda node, inputs: inputs[0] - inputs[1],
    "Mul": lambda node, inputs: inputs[0] * inputs[1],
    "Neg": lambda node, inputs: -inputs[0],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": lambda node, inputs: np.transpose(inputs[0], _attrs(node).get("perm")),
}


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray], grids: dict[str, tuple[np.ndarray, str]]) -> bool:
    """Evaluate ``node`` into ``consts`` if it is a foldable op or a quantizer whose inputs are all constant;
    record in ``grids`` the (scales, quantizer) of values a quantizer produced (:func:`.onnx_quant.evaluate`),
    through shape-only ops, which move the scales with the values."""
    quantizer = is_quantizer(node)
    if not (quantizer or node.op_type in _FOLDERS and node.domain in ("", "ai.onnx")) or len(node.output) != 1:
        return False
    if not all(name in consts for name in node.input if name):
        return False
    inputs = [consts[name] if name else None for name in node.input]
    try:
        if quantizer:
            value, grid = evaluate(node, inputs, _describe(node))
            if grid is not None:
                grids[node.output[0]] = (grid, _describe(node))
        else:
            value = _FOLDERS[node.op_type](node, inputs)
            if node.op_type in _SHAPE_OPS and node.input[0] in grids:
                scales, quantizer = grids[node.input[0]]
                if node.op_type != "Cast":
                    scales = _FOLDERS[node.op_type](node, [scales, *inputs[1:]])
                grids[node.output[0]] = (scales, quantizer)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # malformed attributes or shapes in a readable model
        raise UnsupportedModelError(f"cannot evaluate constant {_describe(node)}: {one_line(exc)}") from exc
    consts[node.output[0]] = np.asarray(value)
    return True


# --- graph view ---------------------------------------------------------------------------------------------

class _Graph:
    """The graph split into folded constants and dynamic nodes, with producer and consumer maps."""

    def __init__(self, graph: onnx.GraphProto):
        self.consts = {init.name: self._tensor(init) for init in graph.initializer}
        self.grids: dict[str, tuple[np.ndarray, str]] = {}
        self.inputs = [value.name for value in graph.input if value.name not in self.consts]
        self.dims = {value.name: _static_dims(value) for value in graph.input if value.name not in self.consts}
        self.outputs = [value.name for value in graph.output]
        self.nodes = self._fold_all(graph)
        self._producer = {name: node for node in self.nodes for name in node.output}
        self._consumers = defaultdict(list)
        for node in self.nodes:
            for name in dict.fromkeys(node.input):
                self._consumers[name].append(node)

    @staticmethod
    def _tensor(init: onnx.TensorProto) -> np.ndarray:
        try:
            return numpy_helper.to_array(init)
        except Exception as exc:  # truncated or inconsistent tensor data
            raise ModelFormatError(f"ONNX initializer {init.name!r} is unreadable: {one_line(exc)}") from exc

    def _fold_all(self, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
        defined, dynamic = set(self.consts) | set(self.inputs), []
        for node in graph.node:
            missing = [name for name in node.input if name and name not in defined]
            if missing:
                raise ModelFormatError(f"{_describe(node)} reads undefined value {missing[0]!r} "
                                       f"(truncated or malformed ONNX file)")
            if not _fold(node, self.consts, self.grids):
                dynamic.append(node)
            defined.update(node.output)
        if not self.outputs:
            raise ModelFormatError("ONNX graph has no outputs (truncated or malformed ONNX file)")
        undefined = [name for name in self.outputs if name not in defined]
        if undefined:
            raise ModelFormatError(f"ONNX graph output {undefined[0]!r} is not defined "
                                   f"(truncated or malformed ONNX file)")
        return dynamic

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def grid(self, name: str) -> tuple[np.ndarray, str] | None:
        """(scales of each element, quantizer node) of a constant a quantizer produced, else None."""
        return self.grids.get(name)

    def is_input(self, name: str) -> bool:
        return name in self.inputs

    def producer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        """The dynamic node computing ``name`` if its op is ``op_type``, else None."""
        node = self._producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        return self._consumers.get(name, [])

    def node_of(self, name: str) -> onnx.NodeProto | None:
        """The dynamic node computing ``name``, whatever its op; None for inputs and constants."""
        return self._producer.get(name)


def _static_dims(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The declared shape of a graph input, a symbolic batch dimension taken as 1; None if another dimension
    is unknown."""
    if not value.type.tensor_type.HasField("shape"):
        return None
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]
    if dims and dims[0] is None:
        dims[0] = 1
    return None if None in dims else tuple(dims)


# --- pattern matching ---------------------------------------------------------------------------------------

@dataclass
class _Fire:
    """A spike ``Cast(Greater(...))`` of membrane ``mem`` against ``threshold``, and the node producing it."""

    mem: str
    threshold: np.ndarray
    cast: onnx.NodeProto


def _other(node: onnx.NodeProto, value: str) -> str:
    """The operand of binary ``node`` that is not ``value``."""
    return node.input[1] if node.input[0] == value else node.input[0]


def _product(arrays: list[np.ndarray]) -> np.ndarray:
    return functools.reduce(np.multiply, arrays, np.ones((), dtype=np.float64))


class _Matcher:
    """Walks the graph from the data input, layer by layer, marking every node it explains as covered."""

    def __init__(self, graph: _Graph):
        self.g = graph
        self.covered: set[int] = set()
        self.names: set[str] = set()
        self.neuron_dims: tuple[int, ...] | None = None   # shape of the layer being matched (with batch)

    def layers(self) -> list[SourceLayer]:
        self._reject_foreign_ops()
        value = data = self._data_input()
        dims, layers, mems = self.g.dims[data], [], {data}
        while True:
            value, dims = self._reshapes(value, dims)
            users = self.g.consumers(value)
            if layers and not users:
                break
            if len(users) == 1 and users[0].op_type == "MaxPool":
                layer, value, dims = self._max_pool(users[0], dims, len(layers) + 1)
            else:
                layer, states, value, dims = self._layer(value, dims, len(layers) + 1)
                for mem_in in states:
                    if mem_in in mems:
                        raise UnsupportedModelError(f"layer {layer.name!r} uses graph input {mem_in!r} as its state, "
                                                    f"but it is already the data input or another layer's state")
                    mems.add(mem_in)
            layers.append(layer)
        if value not in self.g.outputs:
            raise UnsupportedModelError(f"the spikes {value!r} of the last layer {layers[-1].name!r} are not a "
                                        f"graph output")
        self._reject_leftovers()
        return layers

    # -- whole-graph checks

    def _reject_foreign_ops(self) -> None:
        foreign = [node for node in self.g.nodes
                   if node.op_type not in _PATTERN_OPS or node.domain not in ("", "ai.onnx")]
        quantizers = [node for node in foreign if is_quantizer(node)]
        if quantizers:
            raise UnsupportedModelError(f"unsupported {_describe(quantizers[0])}: it quantizes a non-constant "
                                        f"tensor; only quantizers of constant weights are folded")
        if foreign:
            more = f" (and {len(foreign) - 3} more)" if len(foreign) > 3 else ""
            names = ", ".join(_describe(node) for node in foreign[:3])
            raise UnsupportedModelError(f"unsupported {names}{more}: {_HINT}")

    def _data_input(self) -> str:
        feeds = [name for name in self.g.inputs if self._feeds_layer(name)]
        if len(feeds) > 1:  # a recurrent neuron's previous spikes feed its dense recurrence (module 'recurrent') too
            feeds = [name for name in feeds if not all(map(recurrent_scope, self.g.consumers(name)))]
        if len(feeds) != 1:
            found = f"graph inputs {feeds} all feed" if feeds else f"no graph input (of {self.g.inputs}) feeds"
            raise UnsupportedModelError(f"{found} a Gemm/MatMul/Conv/MaxPool; expected exactly one data input: "
                                        f"{_HINT}")
        return feeds[0]

    def _feeds_layer(self, value: str) -> bool:
        """Whether ``value`` is the first operand of a dense op or MaxPool, through reshaping nodes."""
        users = self.g.consumers(value)
        while len(users) == 1 and users[0].op_type in _RESHAPE_OPS and users[0].input[0] == value:
            value = users[0].output[0]
            users = self.g.consumers(value)
        return any(node.op_type in _DENSE_OPS | {"MaxPool"} and node.input[0] == value for node in users)

    def _reject_leftovers(self) -> None:
        for node in self.g.nodes:
            if id(node) not in self.covered:
                raise UnsupportedModelError(f"unsupported {_describe(node)}: it is not part of any layer; {_HINT}")

    # -- helpers

    def _take(self, *nodes: onnx.NodeProto) -> None:
        self.covered.update(id(node) for node in nodes)

    def _unexpected(self, node: onnx.NodeProto, expected: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"unsupported {_describe(node)} where {expected} was expected: {_HINT}")

    def _only_consumer(self, value: str, expected: str) -> onnx.NodeProto:
        users = self.g.consumers(value)
        if len(users) == 1:
            return users[0]
        if not users:
            raise UnsupportedModelError(f"value {value!r} is not used, but {expected} was expected: {_HINT}")
        names = ", ".join(_describe(node) for node in users[:3])
        raise UnsupportedModelError(f"value {value!r} feeds {len(users)} nodes ({names}) where only {expected} "
                                    f"was expected: {_HINT}")

    def _const_input(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        name = node.input[index] if len(node.input) > index else ""
        value = self.g.const(name) if name else None
        if value is None:
            raise UnsupportedModelError(f"{_describe(node)}: the {what} {name!r} is not a constant")
        return value.astype(np.float64)

    def _mul_factors(self, value: str) -> tuple[list[str], list[onnx.NodeProto]]:
        """The operands of the tree of Mul nodes computing ``value`` (``[value]`` if it is not a Mul)."""
        node = self.g.producer(value, "Mul")
        if node is None:
            return [value], []
        factors, nodes = [], [node]
        for operand in node.input:
            more_factors, more_nodes = self._mul_factors(operand)
            factors += more_factors
            nodes += more_nodes
        return factors, nodes

    def _split_product(self, value: str) -> tuple[np.ndarray, list[str], list[onnx.NodeProto]]:
        """``value`` as (product of its constant Mul factors, its dynamic factors, the Mul nodes)."""
        factors, nodes = self._mul_factors(value)
        scale = _product([self.g.const(f).astype(np.float64) for f in factors if self.g.const(f) is not None])
        return scale, [f for f in factors if self.g.const(f) is None], nodes

    # -- one layer

    def _layer(self, value: str, dims: tuple[int, ...] | None, index: int
               ) -> tuple[SourceLayer, tuple[str, ...], str, tuple[int, ...]]:
        """Match the layer fed by ``value`` of shape ``dims``; return it, its state inputs, its spike value and
        the spikes' shape."""
        dense, weight, bias, current, grid, dims, conv = self._dense(value, dims)
        self.neuron_dims = dims
        name = layer_name(_prefix(dense), index, self.names)
        if is_stateful(self, current):
            return (*self._stateful_layer(name, weight, bias, current, grid, conv), dims)
        add = self._only_consumer(current, "the membrane Add of an snnTorch Leaky")
        if add.op_type == "MaxPool":
            raise UnsupportedModelError(f"unsupported {_describe(add)}: it pools the currents of "
                                        f"{_describe(dense)}; only max pooling of spikes (after an snn.Leaky) is "
                                        f"supported")
        if add.op_type != "Add":
            raise self._unexpected(add, "the membrane Add of an snnTorch Leaky")
        self._take(add)
        n_out = weight.shape[0]
        beta, mem_in, zero_fire = self._leak(_other(add, current), add, name)
        mem_out, subtract = self._subtract_reset(add.output[0])
        spike, fire = self._spike(mem_out, name)
        threshold = self._param(fire.threshold, n_out, "threshold", name)
        reset = self._reset(subtract, zero_fire, mem_in, threshold, n_out, name)
        if grid is not None:
            weight, bias, threshold, _ = _integer_weights(weight, bias, threshold, None, grid[0])
        layer = SourceLayer(name=name, weight=weight, bias=bias, beta=self._param(beta, n_out, "beta", name),
                            threshold=threshold, reset=reset, conv=conv)
        return layer, (mem_in,), spike, dims

    def _stateful_layer(self, name: str, weight: np.ndarray, bias: np.ndarray, current: str,
                        grid: tuple | None, conv: ConvGeometry | None) -> tuple[SourceLayer, tuple[str, ...], str]:
        """A layer whose neuron is a Synaptic, an RLeaky or an RSynaptic (:mod:`.onnx_neurons`)."""
        n_out = weight.shape[0]
        neuron = match_stateful(self, current, n_out, name, self.neuron_dims)
        bias, threshold, recurrent = bias + neuron.extra_bias, neuron.threshold, neuron.recurrent
        if grid is not None:
            weight, bias, threshold, recurrent = _integer_weights(weight, bias, threshold, recurrent, grid[0])
        alpha = None if neuron.alpha is None else self._param(neuron.alpha, n_out, "alpha", name)
        layer = SourceLayer(name=name, weight=weight, bias=bias, beta=self._param(neuron.beta, n_out, "beta", name),
                            threshold=threshold, reset=neuron.reset, alpha=alpha, recurrent=recurrent, conv=conv)
        return layer, neuron.states, neuron.spike

    # -- what onnx_neurons uses

    describe = staticmethod(_describe)

    def take(self, *nodes: onnx.NodeProto) -> None:
        self._take(*nodes)

    def fire(self, value: str) -> _Fire:
        return self._fire(value)

    def spike(self, mem_out: str, name: str) -> tuple[str, _Fire]:
        return self._spike(mem_out, name)

    def dense_weights(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        return self._gemm(node) if node.op_type == "Gemm" else self._matmul(node)

    def _param(self, values, n_out: int, what: str, name: str) -> float | np.ndarray:
        """A neuron parameter of the layer being matched (:func:`neuron_param`), a per-channel tensor of a
        feature map spread over its neurons (:func:`.spatial.spread_over`)."""
        dims = self.neuron_dims
        shape = FeatureShape(*dims[1:]) if dims is not None and len(dims) == 4 else None
        return neuron_param(spread_over(values, shape), n_out, what, name)

    def _reshapes(self, value: str, dims: tuple[int, ...] | None) -> tuple[str, tuple[int, ...] | None]:
        """Follow the Flatten/Reshape/Squeeze/Unsqueeze nodes that alone read ``value``: they keep the element
        order, so they are the identity on neuron indices. Return the last value and its shape."""
        users = self.g.consumers(value)
        while len(users) == 1 and users[0].op_type in _RESHAPE_OPS and users[0].input[0] == value:
            node = users[0]
            operands = [self.g.const(name) if name else None for name in node.input[1:]]
            if any(name and operand is None for name, operand in zip(node.input[1:], operands)):
                raise UnsupportedModelError(f"{_describe(node)}: its shape or axes are not constant")
            try:
                dims = None if dims is None else _FOLDERS[node.op_type](node, [np.zeros(dims), *operands]).shape
            except Exception as exc:  # a shape that does not fit the data
                raise UnsupportedModelError(f"{_describe(node)} cannot reshape {dims}: {one_line(exc)}") from exc
            self._take(node)
            value = node.output[0]
            users = self.g.consumers(value)
        return value, dims

    def _max_pool(self, node: onnx.NodeProto, dims: tuple[int, ...] | None, index: int
                  ) -> tuple[SourceLayer, str, tuple[int, ...]]:
        """A MaxPool of spikes (the data input or a layer's) as a fixed OR layer: (layer, its output, its shape)."""
        attrs = _attrs(node)
        kernel = attrs.get("kernel_shape", [])
        if len(kernel) != 2:
            raise UnsupportedModelError(f"{_describe(node)}: kernel {kernel}; only 2-D max pooling is supported")
        unsupported = [f"{key}={attrs[key]}" for key, default in (("ceil_mode", 0), ("dilations", [1, 1]))
                       if key in attrs and attrs[key] != default]
        if any(name in self.g.outputs or self.g.consumers(name) for name in node.output[1:] if name):
            unsupported.append("its Indices output")
        if unsupported:
            raise UnsupportedModelError(f"{_describe(node)}: {', '.join(unsupported)} is not supported")
        _check_auto_pad(node, attrs)
        name = layer_name(_scope(node) or f"pool{index}", index, self.names)
        layer, out = max_pool_layer(name, _feature_shape(node, dims), kernel, attrs.get("strides", 1),
                                    attrs.get("pads", 0))
        self._take(node)
        return layer, node.output[0], (1, *out.dims)

    def _reset(self, subtract: tuple[_Fire, np.ndarray] | None, zero_fire: _Fire | None, mem_in: str,
               threshold: float | np.ndarray, n_out: int, name: str) -> Reset:
        """The reset mechanism, once its spike is checked to be ``Greater(mem_in, threshold)``."""
        if subtract:
            fire, scale = subtract
            self._check_reset_fire(fire, mem_in, threshold, n_out, name)
            scale = self._param(scale, n_out, "reset scale", name)
            if not _same(scale, threshold):
                raise UnsupportedModelError(f"layer {name!r}: the subtract reset removes {_show(scale)} * spike, "
                                            f"not threshold {_show(threshold)} * spike")
            return Reset.SUBTRACT
        if zero_fire:
            self._check_reset_fire(zero_fire, mem_in, threshold, n_out, name)
            return Reset.ZERO
        return Reset.NONE

    def _dense(self, value: str, dims: tuple[int, ...] | None
               ) -> tuple[onnx.NodeProto, np.ndarray, np.ndarray, str, tuple | None, tuple[int, ...],
                          ConvGeometry | None]:
        """Match ``Gemm``/``MatMul``/``Conv`` [+ constant Add] on ``value`` of shape ``dims``: (node, weight,
        bias, output, (neuron scales, quantizer) of a quantized weight (:func:`_neuron_scales`), output shape,
        the Conv's geometry (groups 1, dilation 1; else None))."""
        node = self._only_consumer(value, "a Gemm, MatMul or Conv")
        if node.op_type not in _DENSE_OPS:
            raise self._unexpected(node, "a Gemm, MatMul or Conv")
        if node.input[0] != value:
            raise UnsupportedModelError(f"{_describe(node)}: the data {value!r} must be its first operand")
        conv = None
        if node.op_type == "Conv":
            weight, bias, dims, conv = self._conv(node, dims)
        else:
            weight, bias = self._gemm(node) if node.op_type == "Gemm" else self._matmul(node)
            dims = (1, weight.shape[0])
        grid = self.g.grid(node.input[1])
        if grid is not None:
            grid = (_neuron_scales(node, grid[0], dims, grid[1]), grid[1])
        self._take(node)
        out = node.output[0]
        users = self.g.consumers(out)
        if len(users) == 1 and users[0].op_type == "Add" and self.g.const(_other(users[0], out)) is not None:
            bias = bias + _broadcast_bias(users[0], self.g.const(_other(users[0], out)), dims)
            self._take(users[0])
            out = users[0].output[0]
        return node, weight, bias, out, grid, dims, conv

    def _conv(self, node: onnx.NodeProto, dims: tuple[int, ...] | None
              ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], ConvGeometry | None]:
        """A 2-D Conv unrolled to a dense matrix (:func:`conv2d_dense`): (weight, bias, output shape, geometry
        or None)."""
        attrs = _attrs(node)
        weight = self._const_input(node, 1, "weight")
        if weight.ndim != 4:
            raise UnsupportedModelError(f"{_describe(node)}: weight has shape {weight.shape}; only 2-D "
                                        f"convolutions (nn.Conv2d) are supported")
        _check_auto_pad(node, attrs)
        bias = self._const_input(node, 2, "bias") if len(node.input) > 2 and node.input[2] else None
        matrix, bias, out, conv = conv2d_dense(weight, bias, _feature_shape(node, dims), attrs.get("strides", 1),
                                               attrs.get("pads", 0), attrs.get("dilations", 1),
                                               attrs.get("group", 1), name=_describe(node))
        return matrix, bias, (1, *out.dims), conv

    def _gemm(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            raise UnsupportedModelError(f"{_describe(node)}: transA=1 on the data path is not supported")
        b = self._const_input(node, 1, "weight")
        if b.ndim != 2:
            raise UnsupportedModelError(f"{_describe(node)}: weight has shape {b.shape}, expected 2-D")
        weight = attrs.get("alpha", 1.0) * (b if attrs.get("transB", 0) else b.T)
        bias = np.zeros(weight.shape[0])
        if len(node.input) > 2 and node.input[2]:
            bias = attrs.get("beta", 1.0) * _broadcast_bias(node, self._const_input(node, 2, "bias"),
                                                            (1, len(bias)))
        return weight, bias

    def _matmul(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        b = self._const_input(node, 1, "weight")
        if b.ndim != 2:
            raise UnsupportedModelError(f"{_describe(node)}: weight has shape {b.shape}, expected 2-D")
        return b.T, np.zeros(b.shape[1])

    def _leak(self, leak: str, add: onnx.NodeProto, name: str) -> tuple[np.ndarray, str, _Fire | None]:
        """Match ``beta * m`` or ``beta * (1 - r) * m``: (beta, membrane input m, reset spike r or None)."""
        beta, dynamic, muls = self._split_product(leak)
        mems = [value for value in dynamic if self.g.is_input(value)]
        gates = [value for value in dynamic if not self.g.is_input(value)]
        if len(mems) != 1 or len(gates) > 1:
            raise UnsupportedModelError(f"layer {name!r}: {_describe(add)} adds {leak!r}, which is not beta * a "
                                        f"membrane graph input [* (1 - reset)]: {_HINT}")
        self._take(*muls)
        return beta, mems[0], self._zero_gate(gates[0], name) if gates else None

    def _zero_gate(self, value: str, name: str) -> _Fire:
        """Match ``Sub(1, r)`` of a zero reset; return the reset spike r."""
        sub = self.g.producer(value, "Sub")
        one = self.g.const(sub.input[0]) if sub is not None else None
        if one is None or not np.all(one == 1):
            raise UnsupportedModelError(f"layer {name!r}: the membrane factor {value!r} is not the (1 - reset) of "
                                        f"an snnTorch zero reset: {_HINT}")
        self._take(sub)
        return self._fire(sub.input[1])

    def _subtract_reset(self, value: str) -> tuple[str, tuple[_Fire, np.ndarray] | None]:
        """Match an optional ``Sub(value, r * threshold)``: (membrane output, (reset spike, scale) or None)."""
        users = self.g.consumers(value)
        if not any(node.op_type == "Sub" and node.input[0] == value and self.g.const(node.input[1]) is None
                   for node in users):
            return value, None
        sub = self._only_consumer(value, "the subtract reset of an snnTorch Leaky")
        scale, dynamic, muls = self._split_product(sub.input[1])
        if len(dynamic) != 1:
            raise UnsupportedModelError(f"{_describe(sub)} does not subtract spike * threshold: {_HINT}")
        self._take(sub, *muls)
        return sub.output[0], (self._fire(dynamic[0]), scale)

    def _spike(self, mem_out: str, name: str) -> tuple[str, _Fire]:
        """Match the spike of membrane ``mem_out`` [* graded_spikes_factor]: (spike value, its comparison)."""
        expected = "the Sub/Greater/Cast spike of an snnTorch Leaky"
        node = self._only_consumer(mem_out, expected)
        for op_type in ("Sub", "Greater"):
            if node.op_type == op_type:
                node = self._only_consumer(node.output[0], expected)
        if node.op_type != "Cast":
            raise self._unexpected(node, expected)
        fire = self._fire(node.output[0])
        if fire.mem != mem_out:
            raise self._unexpected(fire.cast, f"a spike of membrane {mem_out!r}")
        spike = node.output[0]
        users = self.g.consumers(spike)
        if len(users) == 1 and users[0].op_type == "Mul" and self.g.const(_other(users[0], spike)) is not None:
            check_graded_spikes(self.g.const(_other(users[0], spike)), name)
            self._take(users[0])
            spike = users[0].output[0]
        return spike, fire

    def _fire(self, value: str) -> _Fire:
        """Match ``Cast(Greater(Sub(m, a), b))`` (threshold a + b) or ``Cast(Greater(m, b))`` (threshold b)."""
        cast = self.g.producer(value, "Cast")
        greater = self.g.producer(cast.input[0], "Greater") if cast is not None else None
        bound = self.g.const(greater.input[1]) if greater is not None else None
        if bound is None or _attrs(cast).get("to") not in _FLOAT_TYPES:
            raise UnsupportedModelError(f"value {value!r} is not a spike Cast(Greater(membrane - threshold, 0)) "
                                        f"to float: {_HINT}")
        self._take(cast, greater)
        sub = self.g.producer(greater.input[0], "Sub")
        if sub is not None and self.g.const(sub.input[1]) is not None:
            self._take(sub)
            return _Fire(sub.input[0], self.g.const(sub.input[1]) + bound, cast)
        return _Fire(greater.input[0], bound, cast)

    def _check_reset_fire(self, fire: _Fire, mem_in: str, threshold: float | np.ndarray, n_out: int,
                          name: str) -> None:
        """The reset spike must be the spike of the membrane input against the layer's threshold."""
        if fire.mem != mem_in:
            raise UnsupportedModelError(f"layer {name!r}: the reset spike {_describe(fire.cast)} compares "
                                        f"{fire.mem!r}, not the membrane input {mem_in!r}")
        reset_threshold = self._param(fire.threshold, n_out, "threshold", name)
        if not _same(reset_threshold, threshold):
            raise UnsupportedModelError(f"layer {name!r}: the reset spike {_describe(fire.cast)} uses threshold "
                                        f"{_show(reset_threshold)}, the output spike {_show(threshold)}")


def _show(value: float | np.ndarray) -> str:
    """A scalar or per-neuron parameter in a message."""
    return f"{value:g}" if np.ndim(value) == 0 else f"[{', '.join(f'{v:g}' for v in value)}]"


def _neuron_scales(node: onnx.NodeProto, scales: np.ndarray, dims: tuple[int, ...], quantizer: str
                   ) -> float | np.ndarray:
    """The weight scale of each output neuron of dense ``node`` (output shape ``dims``) whose weight a quantizer
    put on the grid ``scales`` (one per weight element): one float when all are equal, else [n_out] per-neuron
    values (a Conv's per-output-channel scale repeated over its map, C,H,W order). Gemm's ``alpha`` scales them
    with the weight; scales that vary along an input axis are refused."""
    attrs = _attrs(node)
    out_axis = 0 if node.op_type == "Conv" or node.op_type == "Gemm" and attrs.get("transB", 0) else 1
    per_out = np.moveaxis(scales, out_axis, 0).reshape(scales.shape[out_axis], -1)
    factor = attrs.get("alpha", 1.0) if node.op_type == "Gemm" else 1.0
    if np.all(per_out == per_out.flat[0]):
        return factor * float(per_out.flat[0])
    if not np.all(per_out == per_out[:, :1]):
        raise UnsupportedModelError(f"{quantizer}: the scales of the weight {node.input[1]!r} of {_describe(node)} "
                                    f"(shape {list(scales.shape)}) vary along an input axis, not only along its "
                                    f"output axis {out_axis}; only per-output-channel scales fold into per-neuron "
                                    f"thresholds")
    return factor * np.repeat(per_out[:, 0], int(np.prod(dims[2:])))


def _integer_weights(weight: np.ndarray, bias: np.ndarray, threshold: float | np.ndarray,
                     recurrent: np.ndarray | None, scale: float | np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, float | np.ndarray, np.ndarray | None]:
    """Divide each neuron's weights, bias, threshold and recurrent weights (RLeaky's V: [n] one-to-one or a row of
    [n, n] dense) by the weight quantizer's scale of that neuron (``scale``: one float or [n_out]): the weights
    become its integers and every neuron's equations (linear in v, W, V, b, theta) are unchanged."""
    rows = np.reshape(scale, (-1, 1)) if np.ndim(scale) else scale
    integers = np.round(weight / rows)
    if not np.allclose(weight / rows, integers, rtol=0, atol=1e-3):  # off the grid after a Cast: a float model
        return weight, bias, threshold, recurrent
    if recurrent is not None:
        recurrent = recurrent / (rows if recurrent.ndim == 2 else scale)
    return integers, bias / scale, threshold / scale, recurrent


def _same(a: float | np.ndarray, b: float | np.ndarray) -> bool:
    """Equal (a scalar and a per-neuron array never are), with NaN equal to NaN (the IR then rejects the NaN
    with a clear message)."""
    return np.shape(a) == np.shape(b) and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _prefix(dense: onnx.NodeProto) -> str | None:
    """The module name of a dense node: ``fc1`` for a weight named ``fc1.weight``, else its :func:`_scope`."""
    weight = dense.input[1]
    if "." in weight and not weight.startswith("onnx::"):
        return weight.rsplit(".", 1)[0]
    return _scope(dense)


def _scope(node: onnx.NodeProto) -> str | None:
    """The module a node of the legacy exporter belongs to (``/fc2/MatMul`` -> ``fc2``, ``/pool/MaxPool`` ->
    ``pool``); None for other names."""
    scope = node.name.strip("/").split("/")
    return ".".join(scope[:-1]) if node.name.startswith("/") and len(scope) > 1 else None


def _feature_shape(node: onnx.NodeProto, dims: tuple[int, ...] | None) -> FeatureShape:
    """The one-sample feature map of a Conv/MaxPool input of shape ``dims`` ([1, C, H, W])."""
    if dims is None or len(dims) != 4 or dims[0] != 1:
        shown = "an unknown shape" if dims is None else f"shape {list(dims)}"
        raise UnsupportedModelError(f"{_describe(node)}: its input {node.input[0]!r} has {shown}; 2-D "
                                    f"convolution and pooling need a static [1, C, H, W] input")
    return FeatureShape(*dims[1:])


def _check_auto_pad(node: onnx.NodeProto, attrs: dict) -> None:
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad != "NOTSET":
        raise UnsupportedModelError(f"{_describe(node)}: auto_pad {auto_pad} is not supported (explicit pads only)")


def _broadcast_bias(node: onnx.NodeProto, bias: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """``bias`` broadcast to an output of shape ``dims``, flattened in C,H,W order."""
    try:
        return np.broadcast_to(bias.astype(np.float64), dims).reshape(-1)
    except ValueError:
        raise UnsupportedModelError(f"{_describe(node)}: bias of shape {bias.shape} does not broadcast to the "
                                    f"output shape {list(dims)}") from None
