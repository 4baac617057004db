"""The golden model: the single definition of snn2hw's integer numeric semantics.

Every other implementation (the RTL, the cycle model's activity counts, the verifier) is compared to
:func:`run` with exact equality. The equations are in :mod:`snn2hw.ir`'s docstring; this module is their
literal transcription in numpy int64, vectorised over the batch.
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


def _leak(layer: Layer, v: np.ndarray, s_prev: np.ndarray) -> np.ndarray:
    """floor(beta_q * v / 2^F), with the zero reset applied to v first."""
    if layer.reset is Reset.ZERO:
        v = np.where(s_prev == 1, 0, v)
    return (layer.beta_q * v) >> layer.frac_bits  # arithmetic shift = floor division by 2^F


def run(network: Network, inputs: np.ndarray) -> Trace:
    """Run the integer network on 0/1 ``inputs`` ([B, T, n_in] or [T, n_in]), state cleared per sample."""
    x_all = as_batch(inputs, network.n_in).astype(np.int64)
    batch, steps, _ = x_all.shape
    lo, hi = network.state_min, network.state_max
    spikes = [np.zeros((batch, steps, layer.n_out), np.uint8) for layer in network.layers]
    membranes = [np.zeros((batch, steps, layer.n_out), np.int64) for layer in network.layers]
    v = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
    s = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
    for t in range(steps):
        x = x_all[:, t]
        for index, layer in enumerate(network.layers):
            current = x @ layer.weight.T + layer.bias
            u = _leak(layer, v[index], s[index]) + current
            if layer.reset is Reset.SUBTRACT:
                u = u - s[index] * layer.threshold
            v[index] = np.clip(u, lo, hi)
            s[index] = (v[index] > layer.threshold).astype(np.int64)
            spikes[index][:, t] = s[index]
            membranes[index][:, t] = v[index]
            x = s[index]
    return Trace(spikes=spikes, membranes=membranes)


def run_float(network: SourceNetwork, inputs: np.ndarray) -> Trace:
    """Run the float source model with snnTorch ``Leaky`` semantics (reset_delay=True), no saturation.

    This is the reference for quantization fidelity, not for bit-exactness.
    """
    x_all = as_batch(inputs, network.n_in).astype(np.float64)
    batch, steps, _ = x_all.shape
    spikes = [np.zeros((batch, steps, layer.n_out), np.uint8) for layer in network.layers]
    membranes = [np.zeros((batch, steps, layer.n_out), np.float64) for layer in network.layers]
    mem = [np.zeros((batch, layer.n_out)) for layer in network.layers]
    for t in range(steps):
        x = x_all[:, t]
        for index, layer in enumerate(network.layers):
            reset = (mem[index] - layer.threshold > 0).astype(np.float64)
            current = x @ layer.weight.T + layer.bias
            if layer.reset is Reset.ZERO:
                mem[index] = layer.beta * ((1 - reset) * mem[index]) + current
            else:
                mem[index] = layer.beta * mem[index] + current
                if layer.reset is Reset.SUBTRACT:
                    mem[index] = mem[index] - reset * layer.threshold
            x = (mem[index] - layer.threshold > 0).astype(np.float64)
            spikes[index][:, t] = x
            membranes[index][:, t] = mem[index]
    return Trace(spikes=spikes, membranes=membranes)
