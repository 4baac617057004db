"""snnTorch ``Synaptic``, ``RLeaky`` and ``RSynaptic`` neurons in an ONNX step graph, recognised by the polynomial
they compute.

A ``Leaky`` neuron is matched node by node (:mod:`.onnx_model`). The neurons with two states come in more shapes
(the zero reset recomputes the whole membrane, the two exporters share and order subexpressions differently), so
they are recognised by value: the Add/Sub/Mul/Neg nodes computing the layer's new states are evaluated
symbolically into polynomials with per-neuron float64 coefficients over these atoms:

* ``I``: the layer's current (its Gemm/MatMul output, bias included);
* the graph inputs the neuron reads (its states: membrane m, synaptic current syn, previous spikes spk);
* ``R``: the reset spike ``Cast(Greater(m - theta, 0))`` of a graph input m;
* ``D``: a Gemm/MatMul of a graph input spk (an RLeaky's or RSynaptic's dense recurrence ``recurrent``; its bias
  c is a constant term, folded into the layer's bias).

With theta the threshold of the output spike ``Cast(Greater(m' - theta, 0))`` [* graded_spikes_factor = 1] and
the reset spike R of the membrane input m against that theta, the new membrane m' must be exactly::

    Synaptic:  syn' = alpha syn + I  (a second graph output)       L = beta m + syn'
    RSynaptic: syn' = alpha syn + I + V spk   or   syn' = alpha syn + I + D(spk) + c   L = beta m + syn'
    RLeaky:    L = beta m + I + V spk (one-to-one, V per neuron)   or   L = beta m + I + D(spk) + c (dense)
    m' = L (none)   m' = L - theta R (subtract)   m' = L - R L (zero: snnTorch clears the whole new membrane)

A neuron with a second state output is a Synaptic, or an RSynaptic if its synaptic current also reads previous
spikes, else an RLeaky; a recurrent neuron's spikes must be a graph output (they are fed back as its spike input).
The roles of the graph inputs come from the structure (m is what R compares; syn is what syn' reads; spk is what
D reads), except where a one-to-one V makes them symmetric (``beta m + V spk`` of an RLeaky without reset,
``alpha syn + V spk`` of an RSynaptic): there spk is the input multiplied inside the ``recurrent`` module
(snnTorch's ``RecurrentOneToOne``), which both exporters record in the node's scope. Where the exporter records
scopes, an RLeaky's one-to-one spk read outside a ``recurrent`` module is refused: the same arithmetic is a
Synaptic exported without its synaptic current.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import UnsupportedModelError
from ..ir import Reset
from . import neuron_param

__all__ = ["StatefulNeuron", "is_stateful", "match_stateful", "recurrent_scope"]

Monomial = tuple[str, ...]          # sorted atom names; () is the constant term
Poly = dict[Monomial, np.ndarray]   # coefficient [n] per monomial, no all-zero coefficient
_ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Neg"})
_DENSE_OPS = frozenset({"Gemm", "MatMul"})
_HINT = "snn2hw maps snnTorch Synaptic, RLeaky and RSynaptic (one-to-one or dense Linear recurrence) neurons"


@dataclass(frozen=True)
class StatefulNeuron:
    """The neuron parameters recovered from a layer's polynomials (see the module docstring)."""

    beta: np.ndarray
    threshold: np.ndarray
    reset: Reset
    alpha: np.ndarray | None        # Synaptic
    recurrent: np.ndarray | None    # RLeaky, RSynaptic: [n] one-to-one or [n, n] dense
    extra_bias: np.ndarray          # the dense recurrence's bias c
    states: tuple[str, ...]         # the graph inputs the neuron reads
    spike: str


def _scopes(node: onnx.NodeProto) -> list[str] | None:
    """The module scopes the exporter recorded for ``node`` (legacy: name ``/lif1/recurrent/Mul``; dynamo:
    ``pkg.torch.onnx.name_scopes`` metadata ``['', 'lif1', 'lif1.recurrent', 'mul_1']``), None if none."""
    if node.name.startswith("/"):
        return node.name.strip("/").split("/")[:-1]
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                return [str(scope).split(".")[-1] for scope in ast.literal_eval(prop.value)[:-1]]
            except (ValueError, SyntaxError, TypeError, IndexError):
                return None
    return None


def recurrent_scope(node: onnx.NodeProto) -> bool:
    """Whether the exporter recorded ``node`` as part of a module named ``recurrent``."""
    return "recurrent" in (_scopes(node) or [])


def _forward(matcher, current: str) -> tuple[set[str], list[onnx.NodeProto]]:
    """The values computed from ``current`` by arithmetic nodes, and the Greater nodes they reach."""
    values, greaters, todo = {current}, [], [current]
    while todo:
        for node in matcher.g.consumers(todo.pop()):
            if node.op_type == "Greater":
                if node not in greaters:
                    greaters.append(node)
            elif node.op_type in _ARITHMETIC and node.output[0] not in values:
                values.add(node.output[0])
                todo.append(node.output[0])
    return values, greaters


def is_stateful(matcher, current: str) -> bool:
    """Whether the neuron fed by ``current`` reads two or more graph inputs or a recurrent Gemm/MatMul (not a
    Leaky). Never raises: a malformed Leaky is left to the Leaky matcher's messages."""
    values, _ = _forward(matcher, current)
    inputs, seen, todo = set(), set(values), list(values)
    while todo:
        value = todo.pop()
        if matcher.g.is_input(value):
            inputs.add(value)
            continue
        node = matcher.g.node_of(value)
        if node is None or node.op_type not in _ARITHMETIC | _DENSE_OPS | {"Cast", "Greater"} or value == current:
            continue
        if node.op_type in _DENSE_OPS:
            if matcher.g.is_input(node.input[0]):
                return True
            continue
        for operand in node.input:
            if operand and operand not in seen and matcher.g.const(operand) is None:
                seen.add(operand)
                todo.append(operand)
    return len(inputs) >= 2


# --- polynomials ---------------------------------------------------------------------------------------------

def _clean(poly: Poly) -> Poly:
    return {key: coef for key, coef in poly.items() if np.any(coef != 0)}


def _sum(a: Poly, b: Poly, sign: float = 1.0) -> Poly:
    out = dict(a)
    for key, coef in b.items():
        out[key] = out[key] + sign * coef if key in out else sign * coef
    return _clean(out)


def _product(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for key_a, coef_a in a.items():
        for key_b, coef_b in b.items():
            key = tuple(sorted(key_a + key_b))
            out[key] = out[key] + coef_a * coef_b if key in out else coef_a * coef_b
    return _clean(out)


def _equal(a: Poly, b: Poly) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)


def _show(poly: Poly) -> str:
    def term(key, coef):
        value = f"{coef[0]:g}" if np.all(coef == coef[0]) else f"[{', '.join(f'{c:g}' for c in coef)}]"
        return "*".join([value, *key])
    return " + ".join(term(key, coef) for key, coef in sorted(poly.items())) or "0"


class _Evaluator:
    """Evaluates values of one layer into polynomials, marking the nodes it explains as covered."""

    def __init__(self, matcher, current: str, n: int, name: str, dims: tuple[int, ...] | None):
        self.m, self.current, self.n, self.name = matcher, current, n, name
        self.dims = (1, n) if dims is None else dims
        self.fires: dict[str, object] = {}              # reset atom -> its _Fire
        self.dense: dict[str, tuple[str, np.ndarray]] = {}   # D atom -> (its graph input, matrix)
        self.inputs: dict[str, set[str]] = {}           # value -> graph inputs it reads
        self._memo: dict[str, Poly] = {}

    def coef(self, values: np.ndarray, node: onnx.NodeProto) -> np.ndarray:
        try:
            return np.broadcast_to(np.asarray(values, np.float64), self.dims).reshape(self.n).copy()
        except ValueError:
            raise UnsupportedModelError(f"layer {self.name!r}: constant of shape {list(np.shape(values))} in "
                                        f"{self.m.describe(node)} does not broadcast to its {self.n} neurons") from None

    def atom(self, key: str) -> Poly:
        return {(key,): np.ones(self.n)}

    def value(self, name: str, user: onnx.NodeProto) -> Poly:
        if name in self._memo:
            return self._memo[name]
        const = self.m.g.const(name)
        self.inputs[name] = set()
        if const is not None:
            poly = _clean({(): self.coef(const, user)})
        elif name == self.current:
            poly = self.atom(name)
        elif self.m.g.is_input(name):
            poly, self.inputs[name] = self.atom(name), {name}
        else:
            poly = self._node(name)
        self._memo[name] = poly
        return poly

    def _node(self, name: str) -> Poly:
        node = self.m.g.node_of(name)
        if node.op_type in _ARITHMETIC:
            operands = [self.value(operand, node) for operand in node.input]
            self.inputs[name] = set().union(*(self.inputs[operand] for operand in node.input))
            self.m.take(node)
            if node.op_type == "Neg":
                return _sum({}, operands[0], -1.0)
            if node.op_type == "Mul":
                return _product(*operands)
            return _sum(*operands, 1.0 if node.op_type == "Add" else -1.0)
        if node.op_type == "Cast":
            fire = self.m.fire(name)
            if not self.m.g.is_input(fire.mem):
                raise UnsupportedModelError(f"layer {self.name!r}: the spike {self.m.describe(fire.cast)} of "
                                            f"{fire.mem!r} enters the membrane, but only the reset spike of the "
                                            f"membrane graph input may: {_HINT}")
            self.fires[name] = fire
            self.inputs[name] = {fire.mem}
            return self.atom(name)
        if node.op_type in _DENSE_OPS and self.m.g.is_input(node.input[0]):
            weight, bias = self.m.dense_weights(node)
            if weight.shape != (self.n, self.n):
                raise UnsupportedModelError(f"layer {self.name!r}: recurrent {self.m.describe(node)} has weight "
                                            f"shape {list(weight.shape)}, expected [{self.n}, {self.n}]")
            self.m.take(node)
            self.dense[name] = (node.input[0], weight)
            self.inputs[name] = {node.input[0]}
            return _sum(self.atom(name), _clean({(): self.coef(bias, node)}))
        if node.op_type == "Conv" and recurrent_scope(node):
            raise UnsupportedModelError(f"layer {self.name!r}: snn.RLeaky/RSynaptic with a convolutional recurrence "
                                        f"({self.m.describe(node)}) is not supported; use linear_features")
        raise UnsupportedModelError(f"layer {self.name!r}: unsupported {self.m.describe(node)} in the membrane "
                                    f"update: {_HINT}")


# --- one layer -----------------------------------------------------------------------------------------------

def match_stateful(matcher, current: str, n: int, name: str, dims: tuple[int, ...] | None = None) -> StatefulNeuron:
    """Recognise the Synaptic, RLeaky or RSynaptic neuron fed by ``current`` (``n`` neurons of shape ``dims`` with
    the batch, e.g. (1, C, H, W) on a feature map; default (1, n)) of layer ``name``."""
    values, greaters = _forward(matcher, current)
    if len(greaters) != 1:
        raise UnsupportedModelError(f"layer {name!r}: its current {current!r} reaches {len(greaters)} spike "
                                    f"comparisons, expected 1: {_HINT}")
    casts = [node for node in matcher.g.consumers(greaters[0].output[0]) if node.op_type == "Cast"]
    if len(casts) != 1:
        raise UnsupportedModelError(f"layer {name!r}: {matcher.describe(greaters[0])} is not cast to a spike: "
                                    f"{_HINT}")
    mem_out = matcher.fire(casts[0].output[0]).mem
    spike, fire = matcher.spike(mem_out, name)
    threshold = neuron_param(fire.threshold, n, "threshold", name)
    ev = _Evaluator(matcher, current, n, name, dims)
    mem = ev.value(mem_out, fire.cast)
    others = [value for value in values if value in matcher.g.outputs and value != mem_out]
    if len(others) > 1:
        raise UnsupportedModelError(f"layer {name!r}: the graph outputs {sorted(others)} are all computed from its "
                                    f"current; a Synaptic has one synaptic-current output: {_HINT}")
    syn = ev.value(others[0], fire.cast) if others else None
    linear = {key: coef for key, coef in mem.items() if not any(atom in ev.fires for atom in key)}
    reset, mem_in = _reset(ev, mem, linear, threshold, name)
    if syn is not None:
        return _synaptic(matcher, ev, linear, syn, others[0], mem_out, mem_in, threshold, reset, spike)
    return _rleaky(matcher, ev, linear, mem_out, mem_in, threshold, reset, spike)


def _reset(ev: _Evaluator, mem: Poly, linear: Poly, threshold, name: str) -> tuple[Reset, str | None]:
    """The reset mechanism the terms with R say, and the membrane input R compares (None without reset)."""
    atoms = sorted({atom for key in mem for atom in key if atom in ev.fires})
    if not atoms:
        return Reset.NONE, None
    if len(atoms) > 1:
        raise UnsupportedModelError(f"layer {ev.name!r}: its membrane depends on {len(atoms)} reset spikes "
                                    f"{atoms}, expected 1: {_HINT}")
    (atom,) = atoms
    fire = ev.fires[atom]
    reset_threshold = neuron_param(fire.threshold, ev.n, "threshold", ev.name)
    if np.shape(reset_threshold) != np.shape(threshold) or not np.all(reset_threshold == threshold):
        raise UnsupportedModelError(f"layer {ev.name!r}: the reset spike {ev.m.describe(fire.cast)} uses threshold "
                                    f"{reset_threshold}, the output spike {threshold}")
    terms = {key: coef for key, coef in mem.items() if key not in linear}
    theta = np.broadcast_to(threshold, (ev.n,)).astype(np.float64)
    if _equal(terms, {(atom,): -theta}):
        return Reset.SUBTRACT, fire.mem
    if _equal(terms, _product(ev.atom(atom), {key: -coef for key, coef in linear.items()})):
        return Reset.ZERO, fire.mem
    raise UnsupportedModelError(f"layer {ev.name!r}: the reset terms {_show(terms)} of its membrane are neither "
                                f"-threshold * {atom} (subtract) nor -{atom} * (membrane) (zero): {_HINT}")


def _take_term(poly: Poly, key: Monomial, n: int) -> np.ndarray:
    """Remove ``key`` from ``poly`` and return its coefficient (zeros if absent)."""
    return poly.pop(key, np.zeros(n))


def _check_rest(ev: _Evaluator, rest: Poly, what: str) -> None:
    if rest:
        raise UnsupportedModelError(f"layer {ev.name!r}: its {what} has the unexpected terms {_show(rest)}: {_HINT}")


def _current_term(ev: _Evaluator, poly: Poly, what: str) -> None:
    coef = _take_term(poly, (ev.current,), ev.n)
    if not np.all(coef == 1):
        raise UnsupportedModelError(f"layer {ev.name!r}: its {what} adds {_show({(ev.current,): coef})}, not the "
                                    f"current {ev.current!r} once: {_HINT}")


def _synaptic(matcher, ev, linear, syn, syn_out, mem_out, mem_in, threshold, reset, spike) -> StatefulNeuron:
    """L = beta m + syn', syn' = alpha syn + I (Synaptic) [+ V spk (one-to-one) or + D(spk) + c (dense):
    RSynaptic]."""
    syn_rest = dict(syn)
    _current_term(ev, syn_rest, f"synaptic current {syn_out!r}")
    states = sorted(ev.inputs[syn_out] - {mem_in})   # a zero reset may multiply the reset spike by 0 here
    dense = _dense_recurrence(ev, syn_rest, f"synaptic current {syn_out!r}")
    spk_in = dense[0] if dense else None
    if spk_in is None and len(states) > 1:
        scoped = [value for value in states if any(map(recurrent_scope, matcher.g.consumers(value)))]
        spk_in = _single(ev, scoped, "spike (the input multiplied in the module 'recurrent')")
    others = [value for value in states if value != spk_in]
    if len(others) > 1:
        raise UnsupportedModelError(f"layer {ev.name!r}: its synaptic current {syn_out!r} reads the graph inputs "
                                    f"{others}, expected one (snnTorch Synaptic: alpha * syn + I): {_HINT}")
    syn_in = others[0] if others else None
    candidates = sorted(ev.inputs[mem_out] - {syn_in, spk_in})
    if mem_in is None and len(candidates) == 1:
        mem_in = candidates[0]
    if mem_in is not None and mem_in in (syn_in, spk_in):
        raise UnsupportedModelError(f"layer {ev.name!r}: graph input {mem_in!r} is both its membrane and its "
                                    f"{'synaptic current' if mem_in == syn_in else 'spike input'}: {_HINT}")
    rest = _sum(linear, syn, -1.0)
    beta = _take_term(rest, (mem_in,), ev.n) if mem_in else np.zeros(ev.n)
    _check_rest(ev, rest, f"membrane {mem_out!r} besides its synaptic current {syn_out!r}")
    alpha = _take_term(syn_rest, (syn_in,), ev.n) if syn_in else np.zeros(ev.n)
    if dense:
        recurrent, extra_bias = dense[1], dense[2]
    else:
        recurrent = _take_term(syn_rest, (spk_in,), ev.n) if spk_in else None
        extra_bias = np.zeros(ev.n)
    _check_rest(ev, syn_rest, f"synaptic current {syn_out!r}")
    if spk_in is not None:
        _check_fed_back(matcher, ev, spike, spk_in, "RSynaptic", "")
    states = tuple(state for state in (mem_in, syn_in, spk_in) if state)
    return StatefulNeuron(beta=beta, threshold=threshold, reset=reset, alpha=alpha, recurrent=recurrent,
                          extra_bias=extra_bias, states=states, spike=spike)


def _rleaky(matcher, ev, linear, mem_out, mem_in, threshold, reset, spike) -> StatefulNeuron:
    """L = beta m + I + V spk (one-to-one) or beta m + I + D(spk) + c (dense)."""
    rest = dict(linear)
    _current_term(ev, rest, f"membrane {mem_out!r}")
    dense = _dense_recurrence(ev, rest, f"membrane {mem_out!r}")
    if dense:
        spk_in, recurrent, extra_bias = dense
        if mem_in is None:
            mem_in = _single(ev, sorted(ev.inputs[mem_out] - {spk_in}), "membrane")
    else:
        extra_bias = np.zeros(ev.n)
        inputs = sorted(ev.inputs[mem_out])
        if mem_in is None:
            scoped = [value for value in inputs if any(map(recurrent_scope, matcher.g.consumers(value)))]
            spk_in = _single(ev, scoped, "spike (the input multiplied in the module 'recurrent')")
            mem_in = _single(ev, [value for value in inputs if value != spk_in], "membrane")
        else:
            spk_in = _single(ev, [value for value in inputs if value != mem_in], "spike")
        users = [node for node in matcher.g.consumers(spk_in) if _scopes(node) is not None]
        if users and not any(map(recurrent_scope, users)):
            raise UnsupportedModelError(f"layer {ev.name!r}: graph input {spk_in!r} enters its membrane like an "
                                        f"RLeaky's spikes but not through a module 'recurrent' (a Synaptic whose "
                                        f"synaptic current is not a graph output?): {_HINT}")
        recurrent = _take_term(rest, (spk_in,), ev.n)
    beta = _take_term(rest, (mem_in,), ev.n) if mem_in else np.zeros(ev.n)
    _check_rest(ev, rest, f"membrane {mem_out!r}")
    _check_fed_back(matcher, ev, spike, spk_in, "RLeaky", " (a Synaptic needs its synaptic current as a graph output)")
    states = tuple(state for state in (mem_in, spk_in) if state)
    return StatefulNeuron(beta=beta, threshold=threshold, reset=reset, alpha=None, recurrent=recurrent,
                          extra_bias=extra_bias, states=states, spike=spike)


def _dense_recurrence(ev: _Evaluator, poly: Poly, what: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(spike graph input, V, bias c) of the dense recurrence ``D(spk) + c`` in ``poly``, its terms removed; None
    if the layer has no recurrent Gemm/MatMul."""
    if len(ev.dense) > 1:
        raise UnsupportedModelError(f"layer {ev.name!r}: its {what} reads {len(ev.dense)} recurrent Gemm/MatMul "
                                    f"nodes, expected 1: {_HINT}")
    if not ev.dense:
        return None
    (atom, (spk_in, recurrent)), = ev.dense.items()
    if not np.all(_take_term(poly, (atom,), ev.n) == 1):
        raise UnsupportedModelError(f"layer {ev.name!r}: its recurrent current {atom!r} is scaled: {_HINT}")
    return spk_in, recurrent, _take_term(poly, (), ev.n)


def _check_fed_back(matcher, ev: _Evaluator, spike: str, spk_in: str, neuron: str, hint: str) -> None:
    """A recurrent neuron's spikes must be a graph output, to come back as its spike input ``spk_in``."""
    if spike not in matcher.g.outputs:
        raise UnsupportedModelError(f"layer {ev.name!r} ({neuron}, spike input {spk_in!r}): its spikes {spike!r} are "
                                    f"not a graph output to feed back{hint}")


def _single(ev: _Evaluator, candidates: list[str], role: str) -> str:
    if len(candidates) != 1:
        raise UnsupportedModelError(f"layer {ev.name!r}: cannot tell its {role} graph input among {candidates}: "
                                    f"{_HINT}")
    return candidates[0]
