"""Import a NIR graph (``nir.read``, the Neuromorphic Intermediate Representation) of LIF layers.

Accepted: a chain ``Input -> (linear+ -> LIF | CubaLIF | IF)+ [-> linear+ -> LI] -> Flatten* -> Output`` where the
linear nodes are
``Affine``, ``Linear``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d`` and ``Flatten`` (at least one not a Flatten),
nodes named freely and edges listed in any order (snnTorch's ``export_to_nir`` lists them unordered). The linear
nodes before a neuron compose into the layer's one dense matrix (:mod:`.nir_spatial`); a neuron over a (C, H, W)
map is C*H*W neurons in C,H,W order, its parameters given per neuron ([C, H, W]), per channel ([C, 1, 1]) or as
one value. The shape of the Input node (or a first Conv2d's ``input_shape``) gives the first map. A layer is named
after its last Affine/Linear/Conv2d node (else its last pooling node; ``fc1``; ``0`` becomes ``layer0``). A layer
whose linear nodes are one Conv2d (groups 1, dilation 1; Flattens aside) keeps its geometry as ``conv`` unless
per-neuron input scales (below) differ within a channel, which makes the weight no convolution. Every
other node type, a cycle (recurrent connection), a branch or a node off the chain is refused naming the node.

NIR neurons are continuous-time; they are discretized by forward Euler at the time step ``dt``::

    LIF:  tau dv/dt = (v_leak - v) + r I  ->  v[t] = (1 - dt/tau) v[t-1] + (r dt/tau) I[t]
    IF:       dv/dt = r I                 ->  v[t] = v[t-1] + (r dt) I[t]
    LI:   tau dv/dt = (v_leak - v) + r I  ->  v[t] = (1 - dt/tau) v[t-1] + (r dt/tau) I[t]   (never fires)
    CubaLIF:  tau_syn dJ/dt = -J + w_in I  ->  J[t] = (1 - dt/tau_syn) J[t-1] + (w_in dt/tau_syn) I[t]
              tau_mem dv/dt = (v_leak - v) + r J  ->  v[t] = (1 - dt/tau_mem) v[t-1] + (r dt/tau_mem) J[t]

so ``beta = 1 - dt/tau`` (IF: 1) and the input scale ``s = r dt/tau`` (IF: ``r dt``) multiplies the weight row and
bias of each neuron. A CubaLIF is an snnTorch ``Synaptic``: ``alpha = 1 - dt/tau_syn``, ``beta = 1 - dt/tau_mem``,
the membrane integrating the *updated* synaptic current J[t] (as snnTorch does), and the two input scales folded
into the weights: the synaptic state scaled by ``r dt/tau_mem`` obeys ``syn[t] = alpha syn[t-1] + s I[t]`` with
``s = (w_in dt/tau_syn) (r dt/tau_mem)``. snnTorch's exporter writes ``tau = dt/(1 - beta)`` and ``r = tau/dt``
(a Synaptic also ``tau_syn = dt/(1 - alpha)``, ``w_in = tau_syn/dt``) at its ``dt = 1e-4``, so at the same dt this
gives back alpha, beta and ``s = 1``, up to the rounding of the stored tensors, which is undone:

* beta is computed with dt rounded to the dtype of ``tau`` and rounded to that dtype itself (exact for every
  float32 beta in [0.5, 1], off by at most a float32 step below 0.5);
* a scale within one machine epsilon of the parameters' dtype of 1 is 1.

Spikes are ``v > v_threshold``. An LI, a leaky integrator without threshold, is a non-spiking readout
(:attr:`snn2hw.ir.SourceLayer.readout`): only as the last layer, its membrane being the network's output
(``simulate --membrane``). ``v_leak`` and ``v_reset`` must be 0; NIR's "v = v_reset on a spike" cannot say
whether the reset subtracts the threshold or clears the membrane, so the caller chooses ``reset`` (snnTorch's
timing: a spike at t-1 resets at t). ``tau`` and ``v_threshold`` may differ per neuron (per-neuron beta and
threshold; equal values are the layer's scalar ones); ``r`` may differ per neuron since it folds into the weight
rows.

The file is read (``nir.read``) in a forked child process, stopped after :data:`READ_TIMEOUT_S`: libhdf5 loops
forever on some corrupted files (a global heap collection whose size field was changed), and a crash of libhdf5
is contained the same way. Both are a one-line ModelFormatError naming the file. The fork adds about 15 ms to an
import (30-60 ms in a process that has loaded torch, whose larger address space is slower to fork); where
``os.fork`` does not exist the file is read in this process, unbounded.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import signal
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import nir

from ..errors import ModelFormatError, QuantizationError, UnsupportedModelError
from ..ir import Reset, SourceLayer, SourceNetwork
from . import DEFAULT_NIR_DT, check_model_file, layer_name, one_line
from .nir_spatial import LINEAR_NODES, WEIGHTED_NODES, Signal, compose, floats, input_signal
from .spatial import FeatureShape, spread_over

__all__ = ["load_nir", "NIR_RESETS", "READ_TIMEOUT_S"]

NIR_RESETS = (Reset.ZERO, Reset.SUBTRACT)
_SHAPE = ("snn2hw maps NIR chains Input -> ((Affine|Linear|Conv2d|SumPool2d|AvgPool2d|Flatten)+ -> "
          "LIF|CubaLIF|IF|LI)+ -> Flatten* -> Output, an LI only last")
_NEURONS = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI)
_NAMING = (nir.Affine, nir.Linear, nir.Conv2d)   # a layer is named after the last of these in its group
_SUPPORTED = (nir.Input, nir.Output) + LINEAR_NODES + _NEURONS
READ_TIMEOUT_S = 5.0  # a valid file reads in milliseconds; libhdf5 can loop forever on a corrupted one


def load_nir(path: str | os.PathLike, *, dt: float = DEFAULT_NIR_DT, reset: Reset = Reset.ZERO) -> SourceNetwork:
    """Import a NIR file, discretized at time step ``dt`` with spikes resetting by ``reset`` (zero or subtract)."""
    path = check_model_file(path)
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise QuantizationError(f"NIR time step dt {dt!r} must be finite and > 0")
    if reset not in NIR_RESETS:
        raise UnsupportedModelError(f"reset {reset.value!r} for a NIR model: NIR neurons always reset, choose "
                                    f"{' or '.join(mode.value for mode in NIR_RESETS)}")
    graph = _read(path)
    names = _chain(graph)
    groups = _groups(graph, names)
    declared = (graph.nodes[names[0]].input_type or {}).get("input")
    dims = floats([] if declared is None else declared, f"the shape of {_describe(graph, names[0])}").ravel()
    signal = input_signal(_describe(graph, names[0]), dims, (_describe(graph, names[1]), graph.nodes[names[1]]))
    taken: set[str] = set()
    layers = []
    for index, (linear, neuron) in enumerate(groups, start=1):
        if isinstance(graph.nodes[neuron], nir.LI) and index < len(groups):
            raise UnsupportedModelError(f"{_describe(graph, neuron)}: an LI is a non-spiking readout, supported only "
                                        f"as the last layer (the layers after it would receive no spikes)")
        layer, signal = _layer(graph, linear, neuron, index, dt, reset, taken, signal)
        layers.append(layer)
    return SourceNetwork(tuple(layers), origin=str(path))


def _read(path: Path) -> nir.NIRGraph:
    outcome, value = _read_in_child(path) if hasattr(os, "fork") else _read_here(path)
    if outcome == "error":
        raise ModelFormatError(f"model file {str(path)!r} is not a readable NIR file: {value}")
    if not isinstance(value, nir.NIRGraph):
        raise ModelFormatError(f"model file {str(path)!r} holds a single NIR {type(value).__name__} node, not a graph")
    return value


def _read_here(path: Path) -> tuple[str, object]:
    """``("graph", node)`` of ``nir.read``, or ``("error", one-line message)`` for a broken file."""
    try:  # type_check=False: older or hand-written graphs may lack types; the shapes are checked here instead
        return "graph", nir.read(path, type_check=False)
    except Exception as exc:  # h5py OSError, KeyError, nir's ValueError/AssertionError for broken files
        return "error", one_line(exc)


def _read_in_child(path: Path) -> tuple[str, object]:
    """:func:`_read_here` in a forked child that sends its pickled result through a pipe; killed after
    READ_TIMEOUT_S. A child that dies without an answer (a crash in libhdf5) is an error too."""
    receive, send = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns that a child forked from a threaded process may deadlock on a lock another thread
        # held; this child only reads the file and writes a pipe, and a deadlock would end as the timeout error.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into the caller's stack
        try:
            os.close(receive)
            result = _read_here(path)
            try:
                data = pickle.dumps(result)
            except Exception as exc:  # an object nir.read built from a corrupted file that cannot be pickled
                data = pickle.dumps(("error", f"its content cannot be passed on ({one_line(exc)})"))
            with os.fdopen(send, "wb") as pipe:
                pipe.write(data)
        finally:
            os._exit(0)
    os.close(send)
    chunks, finished = [], False
    try:
        readable = select.poll()  # not select.select: it fails on descriptors above 1023
        readable.register(receive, select.POLLIN)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not finished and (left := deadline - time.monotonic()) > 0:
            if readable.poll(1000 * left):
                chunk = os.read(receive, 1 << 16)
                chunks.append(chunk)
                finished = not chunk
    finally:
        os.close(receive)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not finished:
        return "error", (f"reading it did not finish within {READ_TIMEOUT_S:g} s (libhdf5 loops forever on some "
                         f"corrupted files)")
    if os.waitstatus_to_exitcode(status) != 0 or len(chunks) == 1:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"
        return "error", f"the reader process died without an answer ({how})"
    return pickle.loads(b"".join(chunks))


def _kind(node) -> str:
    return type(node).__name__


def _describe(graph: nir.NIRGraph, name: str) -> str:
    return f"NIR node {name!r} ({_kind(graph.nodes[name])})"


# --- graph shape --------------------------------------------------------------------------------------------

def _chain(graph: nir.NIRGraph) -> list[str]:
    """The node names from the Input to the Output, once the graph is checked to be exactly that chain."""
    nodes = graph.nodes
    for name, node in nodes.items():
        if not isinstance(node, _SUPPORTED):
            what = "a subgraph (e.g. snnTorch's RLeaky)" if isinstance(node, nir.NIRGraph) else "this node type"
            raise UnsupportedModelError(f"{_describe(graph, name)}: {what} is not supported yet; {_SHAPE}")
    successors, predecessors = defaultdict(list), defaultdict(list)
    for src, dst in dict.fromkeys((str(src), str(dst)) for src, dst in graph.edges):
        for end in (src, dst):
            if end not in nodes:
                raise ModelFormatError(f"NIR edge ({src!r}, {dst!r}) names no node {end!r} (malformed NIR file)")
        successors[src].append(dst)
        predecessors[dst].append(src)
    _reject_cycles(graph, successors)
    inputs = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise UnsupportedModelError(f"the NIR graph has {len(inputs)} Input nodes {inputs}, expected one; {_SHAPE}")
    chain = [inputs[0]]
    while not isinstance(nodes[chain[-1]], nir.Output):
        name, following = chain[-1], successors[chain[-1]]
        if not following:
            raise UnsupportedModelError(f"{_describe(graph, name)} feeds no node: the chain from the Input does not "
                                        f"reach an Output; {_SHAPE}")
        if len(following) > 1:
            raise UnsupportedModelError(f"{_describe(graph, name)} feeds {len(following)} nodes {following}: "
                                        f"branches are not supported yet; {_SHAPE}")
        chain.append(following[0])
        if len(predecessors[following[0]]) > 1:
            raise UnsupportedModelError(f"{_describe(graph, following[0])} sums {len(predecessors[following[0]])} "
                                        f"inputs {predecessors[following[0]]}: merging branches is not supported "
                                        f"yet; {_SHAPE}")
    if successors[chain[-1]]:
        raise UnsupportedModelError(f"{_describe(graph, chain[-1])} feeds {successors[chain[-1]]}; {_SHAPE}")
    stray = [name for name in nodes if name not in set(chain)]
    if stray:
        raise UnsupportedModelError(f"{_describe(graph, stray[0])} is not on the chain from Input {inputs[0]!r} to "
                                    f"Output {chain[-1]!r}; {_SHAPE}")
    return chain


def _reject_cycles(graph: nir.NIRGraph, successors: dict[str, list[str]]) -> None:
    """Refuse a cycle (a recurrent connection), naming an edge that closes it."""
    state: dict[str, str] = {}  # "open" while on the depth-first path, "done" after
    for root in graph.nodes:
        stack = [(root, iter(successors[root]))] if root not in state else []
        state.setdefault(root, "open")
        while stack:
            name, following = stack[-1]
            nxt = next(following, None)
            if nxt is None:
                state[name] = "done"
                stack.pop()
            elif state.get(nxt) == "open":
                raise UnsupportedModelError(f"NIR edge ({name!r}, {nxt!r}) closes a cycle through "
                                            f"{_describe(graph, nxt)}: recurrent connections are not supported yet")
            elif nxt not in state:
                state[nxt] = "open"
                stack.append((nxt, iter(successors[nxt])))


def _groups(graph: nir.NIRGraph, chain: list[str]) -> list[tuple[list[str], str]]:
    """The layers of the chain: (the linear nodes, the neuron node after them); between Input and Output the
    chain must be such groups, each with a weighted node (not only Flatten), then only Flattens (the identity)."""
    inner = chain[1:-1]
    if not inner:
        raise UnsupportedModelError(f"the NIR graph has no layers between Input {chain[0]!r} and Output "
                                    f"{chain[-1]!r}; {_SHAPE}")
    groups, linear = [], []
    for position, name in enumerate(inner):
        node = graph.nodes[name]
        if isinstance(node, LINEAR_NODES):
            linear.append(name)
            continue
        if not any(isinstance(graph.nodes[other], WEIGHTED_NODES) for other in linear):
            raise UnsupportedModelError(f"{_describe(graph, name)} follows {_describe(graph, chain[position])} "
                                        f"where an Affine, Linear, Conv2d, SumPool2d or AvgPool2d was expected; "
                                        f"{_SHAPE}")
        groups.append((linear, name))
        linear = []
    weighted = [name for name in linear if isinstance(graph.nodes[name], WEIGHTED_NODES)]
    if weighted:
        raise UnsupportedModelError(f"{_describe(graph, weighted[-1])} is not followed by a LIF, CubaLIF or IF "
                                    f"before Output {chain[-1]!r}; {_SHAPE}")
    return groups


# --- one layer ----------------------------------------------------------------------------------------------

def _layer(graph: nir.NIRGraph, linear: list[str], neuron: str, index: int, dt: float, reset: Reset,
           taken: set[str], signal: Signal) -> tuple[SourceLayer, Signal]:
    """The layer of the ``linear`` nodes composed (:func:`.nir_spatial.compose`) and the ``neuron`` node after
    them, reading ``signal``; and the signal of its spikes."""
    naming = [name for name in linear if isinstance(graph.nodes[name], _NAMING)]
    name = layer_name((naming or [name for name in linear if isinstance(graph.nodes[name], WEIGHTED_NODES)])[-1],
                      index, taken)
    weight, bias, signal, conv = compose([(_describe(graph, node), graph.nodes[node]) for node in linear], signal)
    node = graph.nodes[neuron]
    params = _Params(graph, neuron, weight.shape[0], signal.shape)
    for field in ("v_leak", "v_reset"):
        if hasattr(node, field) and np.any(params.array(field) != 0):
            raise UnsupportedModelError(f"{_describe(graph, neuron)}: {field} {params.summary(field)} is not 0 "
                                        f"(snn2hw neurons rest at 0 and reset to 0 or by the threshold)")
    alpha = None
    if isinstance(node, (nir.LIF, nir.LI)):
        beta, scale = params.lif_discretization(dt)
    elif isinstance(node, nir.CubaLIF):
        beta, scale = params.euler("tau_mem", "r", dt)
        alpha, syn_scale = params.euler("tau_syn", "w_in", dt)
        scale = scale * syn_scale
    else:
        beta, scale = 1.0, params.snap(params.array("r") * params.rounded_dt("r", dt), "r")
    readout = isinstance(node, nir.LI)
    weight = weight * scale[:, None]
    if conv is not None and not conv.matches(weight):
        conv = None   # input scales that differ within a channel: no longer one convolution
    layer = SourceLayer(name=name, weight=weight, bias=bias * scale, beta=beta,
                        threshold=np.inf if readout else params.array("v_threshold"), reset=reset, alpha=alpha,
                        readout=readout, conv=conv)
    return layer, Signal(signal.size, signal.shape, _describe(graph, neuron))


class _Params:
    """The parameter arrays of one neuron node, broadcast to its ``n`` neurons, with the node's precision; the
    neurons of a feature map ``shape`` (else None) take a parameter broadcasting to (C, H, W), e.g. one value per
    channel [C, 1, 1], in C,H,W order."""

    def __init__(self, graph: nir.NIRGraph, name: str, n: int, shape: FeatureShape | None):
        self.node, self.n, self.shape = graph.nodes[name], n, shape
        self.describe = _describe(graph, name)

    def dtype(self, field: str) -> np.dtype:
        """The float dtype ``field`` is stored in (float64 for integers): the precision its values carry."""
        dtype = np.asarray(getattr(self.node, field)).dtype
        return dtype if dtype.kind == "f" else np.dtype(np.float64)

    def array(self, field: str) -> np.ndarray:
        values = floats(getattr(self.node, field), f"{field} of {self.describe}")
        values = np.asarray(spread_over(values, self.shape)).reshape(-1)
        if values.size not in (1, self.n):
            raise UnsupportedModelError(f"{self.describe}: {field} has {values.size} values for the {self.n} "
                                        f"outputs of the layer before it")
        return np.broadcast_to(values, (self.n,))

    def summary(self, field: str) -> str:
        values = np.unique(self.array(field))
        return f"{values[0]:g}" if values.size == 1 else f"from {values.min():g} to {values.max():g}"

    def rounded_dt(self, field: str, dt: float) -> float:
        """``dt`` at the precision of ``field``, as an exporter computing in that precision used it."""
        return float(self.dtype(field).type(dt))

    def snap(self, scale: np.ndarray, *fields: str) -> np.ndarray:
        """Input scales equal to 1 within the precision of ``fields`` become exactly 1; others must be finite."""
        if not np.all(np.isfinite(scale)):
            raise QuantizationError(f"{self.describe}: input scale {scale[~np.isfinite(scale)][0]} is not finite")
        eps = max(np.finfo(self.dtype(field)).eps for field in fields)
        return np.where(np.abs(scale - 1) <= eps, 1.0, scale)

    def lif_discretization(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(per-neuron beta, per-neuron input scale) of a LIF or LI node by forward Euler at ``dt``."""
        return self.euler("tau", "r", dt)

    def euler(self, tau_field: str, gain_field: str, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(per-neuron decay ``1 - dt/tau``, per-neuron input scale ``gain dt/tau``) of the state with time
        constant ``tau_field`` and input gain ``gain_field`` by forward Euler at ``dt``."""
        tau = self.array(tau_field)
        bad = ~(tau > 0)
        if np.any(bad):
            raise QuantizationError(f"{self.describe}: {tau_field} {tau[bad][0]} must be > 0")
        precision = self.dtype(tau_field)
        decay = (1.0 - self.rounded_dt(tau_field, dt) / tau).astype(precision).astype(np.float64)
        short = decay < -np.finfo(precision).eps
        if np.any(short):
            raise QuantizationError(f"{self.describe}: {tau_field} {tau[short][0]:.9g} is shorter than the time step "
                                    f"dt {dt:.9g} (1 - dt/{tau_field} = {decay[short][0]:.6g} < 0); choose a "
                                    f"smaller --nir-dt")
        decay = np.maximum(decay, 0.0)  # tau = dt within the precision of tau
        gain = self.array(gain_field)
        with np.errstate(invalid="ignore"):  # tau = gain = inf is snnTorch's decay 1: no leak, scale 1
            scale = np.where(np.isinf(gain) & np.isinf(tau), 1.0, gain * (self.rounded_dt(tau_field, dt) / tau))
        return decay, self.snap(scale, gain_field, tau_field)
