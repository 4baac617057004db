"""The golden model: the single definition of snn2hw's integer numeric semantics.

Every other implementation (the RTL, the cycle model's activity counts, the verifier) is compared to
:func:`run` with exact equality. The equations are in :mod:`snn2hw.ir`'s docstring; this module is their
literal transcription in numpy int64, vectorised over the batch (the synaptic currents are exact
floating-point matrix products where that is exact, see :func:`_exact_matmul_dtype`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import QuantizationError
from .ir import Layer, Network, Reset, SourceNetwork

__all__ = ["Trace", "run", "run_float", "as_batch"]


@dataclass(frozen=True)
class Trace:
    """The result of running a network on a batch of inputs.

    ``spikes[l]`` is uint8 [B, T, n_out(l)] and ``membranes[l]`` int64 (float64 for :func:`run_float`)
    [B, T, n_out(l)]: layer l's spikes and membrane after each timestep.
    """

    spikes: list[np.ndarray]
    membranes: list[np.ndarray]

    @property
    def output(self) -> np.ndarray:
        """The last layer's spikes, uint8 [B, T, n_out]."""
        return self.spikes[-1]


def as_batch(inputs: np.ndarray, n_in: int) -> np.ndarray:
    """Return 0/1 ``inputs`` as uint8 [B, T, n_in]; a [T, n_in] array is one sample."""
    array = np.asarray(inputs)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] != n_in:
        raise QuantizationError(f"input spikes must have shape [B, T, {n_in}] or [T, {n_in}], "
                                f"got {tuple(np.shape(inputs))}")
    if array.shape[1] == 0:
        raise QuantizationError("input spikes have no timesteps")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise QuantizationError("input spikes contain NaN/Inf")
    if not np.all((array == 0) | (array == 1)):
        bad = array[(array != 0) & (array != 1)].flat[0]
        raise QuantizationError(f"input spikes must be 0 or 1, found {bad}")
    return array.astype(np.uint8)


def _decay(q: int | np.ndarray, frac_bits: int, x: np.ndarray) -> np.ndarray:
    """floor(q * x / 2^F): an arithmetic shift of the product is floor division by 2^F."""
    return (q * x) >> frac_bits


def _recurrent_current(recurrent: np.ndarray | None, s_prev: np.ndarray):
    """V s[t-1] for a [batch, n_out] spike vector (0 without recurrence)."""
    if recurrent is None:
        return 0
    return s_prev @ recurrent.T if recurrent.ndim == 2 else s_prev * recurrent


def _exact_matmul_dtype(weight: np.ndarray):
    """The cheapest dtype in which ``x @ weight.T`` is exact for every 0/1 ``x``.

    With 0/1 inputs every partial sum of a row's dot product is an integer no larger in magnitude than the
    row's sum of |W|. While the largest such sum is at most 2^24 (float32) or 2^52 (float64), every partial
    sum is exactly representable, so the floating-point (BLAS) product is the exact integer result in any
    summation order; otherwise int64.
    """
    bound = np.abs(weight.astype(np.float64)).sum(axis=1).max()
    if bound <= 1 << 24:
        return np.float32
    return np.float64 if bound <= 1 << 52 else np.int64


def _synaptic_currents(layer: Layer, x: np.ndarray) -> np.ndarray:
    """``W x[t] + b`` for every sample and timestep at once: int64 [B, T, n_out] from 0/1 ``x`` [B, T, n_in]."""
    dtype = _exact_matmul_dtype(layer.weight)
    flat = x.reshape(-1, layer.n_in).astype(dtype)
    product = flat @ np.ascontiguousarray(layer.weight.T, dtype=dtype)
    return product.astype(np.int64).reshape(x.shape[0], x.shape[1], layer.n_out) + layer.bias


def _integrate(layer: Layer, currents: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``layer``'s (spikes uint8, membranes int64) [B, T, n_out] for its input ``currents``."""
    batch, steps, n_out = currents.shape
    spikes = np.zeros((batch, steps, n_out), np.uint8)
    membranes = np.zeros((batch, steps, n_out), np.int64)
    v, s, syn = (np.zeros((batch, n_out), np.int64) for _ in range(3))
    clear_old = layer.reset is Reset.ZERO and not layer.clears_whole_membrane
    for t in range(steps):
        j = currents[:, t] + _recurrent_current(layer.recurrent, s)
        if layer.synaptic:
            syn = np.clip(_decay(layer.alpha_q, layer.frac_bits, syn) + j, lo, hi)
            j = syn
        u = _decay(layer.beta_q, layer.frac_bits, np.where(s == 1, 0, v) if clear_old else v) + j
        if layer.reset is Reset.SUBTRACT:
            u = u - s * layer.threshold
        v = np.clip(u, lo, hi)
        if layer.clears_whole_membrane:
            v = np.where(s == 1, 0, v)
        s = (v > layer.threshold).astype(np.int64)
        spikes[:, t] = s
        membranes[:, t] = v
    return spikes, membranes


def run(network: Network, inputs: np.ndarray) -> Trace:
    """Run the integer network on 0/1 ``inputs`` ([B, T, n_in] or [T, n_in]), state cleared per sample.

    Layer by layer: a layer's current at t depends only on its inputs at t, so all of a layer's currents
    are one matrix product, and only the membrane update loops over timesteps.
    """
    x = as_batch(inputs, network.n_in)
    spikes, membranes = [], []
    for layer in network.layers:
        layer_spikes, layer_membranes = _integrate(layer, _synaptic_currents(layer, x), network.state_min,
                                                   network.state_max)
        spikes.append(layer_spikes)
        membranes.append(layer_membranes)
        x = layer_spikes
    return Trace(spikes=spikes, membranes=membranes)


def run_float(network: SourceNetwork, inputs: np.ndarray) -> Trace:
    """Run the float source model with snnTorch semantics (``Leaky``, ``RLeaky``, ``Synaptic``, ``RSynaptic``,
    all with reset_delay=True), no saturation.

    This is the reference for quantization fidelity, not for bit-exactness.
    """
    x_all = as_batch(inputs, network.n_in).astype(np.float64)
    batch, steps, _ = x_all.shape
    spikes = [np.zeros((batch, steps, layer.n_out), np.uint8) for layer in network.layers]
    membranes = [np.zeros((batch, steps, layer.n_out), np.float64) for layer in network.layers]
    mem = [np.zeros((batch, layer.n_out)) for layer in network.layers]
    syn = [np.zeros((batch, layer.n_out)) for layer in network.layers]
    for t in range(steps):
        x = x_all[:, t]
        for index, layer in enumerate(network.layers):
            reset = (mem[index] - layer.threshold > 0).astype(np.float64)
            current = x @ layer.weight.T + layer.bias + _recurrent_current(layer.recurrent, reset)
            if layer.alpha is not None:
                syn[index] = layer.alpha * syn[index] + current
                current = syn[index]
            whole = layer.alpha is not None or layer.recurrent is not None
            if layer.reset is Reset.ZERO and not whole:
                mem[index] = layer.beta * ((1 - reset) * mem[index]) + current
            else:
                mem[index] = layer.beta * mem[index] + current
                if layer.reset is Reset.SUBTRACT:
                    mem[index] = mem[index] - reset * layer.threshold
                elif layer.reset is Reset.ZERO:
                    mem[index] = (1 - reset) * mem[index]
            x = (mem[index] - layer.threshold > 0).astype(np.float64)
            spikes[index][:, t] = x
            membranes[index][:, t] = mem[index]
    return Trace(spikes=spikes, membranes=membranes)
