"""The golden model side by side with snnTorch on the same network and stimuli, timed in one process.

snnTorch runs the compiled integer network in float32 on the CPU: per layer an ``nn.Linear`` holding the
integer W and b and an ``snn.Leaky`` with beta = beta_q / 2^F, the integer threshold and the same reset.
Its spikes differ from the golden model's only where the golden model floors the decayed membrane or
saturates it. Both run one batch, single-threaded (so that a shared machine's other load disturbs neither
more than the other); each time is the best of several alternating runs.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import golden
from ..errors import Snn2hwError
from ..ir import Network

__all__ = ["Comparison", "snntorch_runner", "compare_with_snntorch", "TIMING_BATCH"]

TIMING_BATCH = 64
REPEATS = 7


@dataclass(frozen=True)
class Comparison:
    """Best wall time (s) of one batch in each engine, and their output spike agreement."""

    batch: int
    golden_s: float
    snntorch_s: float
    spike_agreement: float

    @property
    def golden_speedup(self) -> float:
        """snnTorch's time over the golden model's: >= 1 when the golden model is at least as fast."""
        return self.snntorch_s / self.golden_s


def _torch():
    try:
        import snntorch
        import torch
    except ImportError as exc:
        raise Snn2hwError(f"the snnTorch comparison needs {exc.name} (pip install -e '.[torch]')") from None
    return torch, snntorch


def snntorch_runner(network: Network) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``network`` in snnTorch on uint8 spikes [B, T, n_in], giving uint8 [B, T, n_out]."""
    torch, snn = _torch()
    layers = []
    for layer in network.layers:
        linear = torch.nn.Linear(layer.n_in, layer.n_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.astype(np.float32)))
            linear.bias.copy_(torch.from_numpy(layer.bias.astype(np.float32)))
        layers.append((linear, snn.Leaky(beta=layer.beta, threshold=float(layer.threshold),
                                         reset_mechanism=layer.reset.value)))

    def run(spikes: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(spikes).float()
        with torch.no_grad():
            mems = [torch.zeros(x.shape[0], layer.n_out) for layer in network.layers]
            outputs = []
            for t in range(x.shape[1]):
                s = x[:, t]
                for index, (linear, leaky) in enumerate(layers):
                    s, mems[index] = leaky(linear(s), mems[index])
                outputs.append(s)
            return torch.stack(outputs, dim=1).numpy().astype(np.uint8)

    return run


@contextmanager
def _single_threaded():
    """numpy's BLAS and torch on one thread each, restored afterwards."""
    torch, _ = _torch()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise Snn2hwError("the snnTorch comparison needs threadpoolctl (pip install -e '.[torch]')") from None

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def _timed(function: Callable[[], object], times: list[float]) -> None:
    started = time.perf_counter()
    function()
    times.append(time.perf_counter() - started)


def compare_with_snntorch(network: Network, stimuli: np.ndarray, repeats: int = REPEATS) -> Comparison:
    """Time the golden model and snnTorch on ``stimuli`` (one batch), alternating, after a warm-up run."""
    run_snntorch = snntorch_runner(network)
    with _single_threaded():
        reference, ours = run_snntorch(stimuli), golden.run(network, stimuli).output
        golden_times: list[float] = []
        snntorch_times: list[float] = []
        for _ in range(repeats):
            _timed(lambda: golden.run(network, stimuli), golden_times)
            _timed(lambda: run_snntorch(stimuli), snntorch_times)
    return Comparison(batch=int(stimuli.shape[0]), golden_s=min(golden_times), snntorch_s=min(snntorch_times),
                      spike_agreement=float(np.mean(reference == ours)))
