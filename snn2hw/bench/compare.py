"""The golden model side by side with snnTorch on the same network and stimuli, timed in one process.

snnTorch runs the compiled integer network in float32 on the CPU (:func:`snn2hw.fidelity.snntorch_runner`):
per layer an ``nn.Linear`` holding the integer W and b and an ``snn.Leaky`` with beta = beta_q / 2^F, the
integer threshold and the same reset.
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
from ..fidelity import snntorch_runner
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
    _torch()
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
