"""The reference workloads of BENCHMARKS.md: each one a network and its stimuli, identical on every run.

* **B1 digits**: the shipped ``examples/digits/model.onnx`` (64-128-10, 4-bit, beta 0.9375, subtract reset)
  on the example's own rate code of scikit-learn's digits test split, T = 16.
* **B2 mnist-shape**: 784-128-10, integer weights uniform in [-7, 7], beta 0.9375, thresholds 16 / 6,
  subtract reset, T = 25, Bernoulli(0.13) input spikes.
* **B3 binarized**: as B2 with weights in {-1, +1}; each layer's threshold is chosen, layer by layer, with
  the golden model on the first 64 stimuli: thresholds 1, 2, ... are tried until the layer's spike activity
  (the fraction of neuron-timesteps spiking) drops below 20 %, and the one closest to 20 % is kept.
* **B4 conv**: 1x8x8 -> Conv2d 3x3, 8 channels, no padding (8x6x6) -> 10, integer weights uniform in
  [-7, 7], beta 0.875, subtract reset, thresholds calibrated as B3's, on the digits example's rate code of its
  test split, T = 16. The convolution is compiled as importers lower it: a dense layer with the unrolled
  kernel (:mod:`snn2hw.importers.spatial`) that carries its geometry (``conv``).

Random workloads draw their weights and their stimuli from fixed seeds; the first k of n stimuli are the
same for every n.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import golden
from ..errors import Snn2hwError, UnsupportedModelError
from ..ir import Reset, SourceLayer, SourceNetwork
from ..passes.quantize import quantize

__all__ = ["Workload", "WorkloadData", "WORKLOADS", "select_workloads", "DIGITS_EXAMPLE"]

DIGITS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits" / "digits.py"
INPUT_RATE = 0.13            # MNIST's mean pixel intensity
BETA = 0.9375
CONV_BETA = 0.875            # B4
WEIGHT_SEED, STIMULUS_SEED = 1, 0
CALIBRATION_SAMPLES = 64     # B3's thresholds are chosen on this many stimuli
TARGET_ACTIVITY = 0.2        # B3: aim for the middle of 10-30 % activity
MAX_THRESHOLD = 256


@dataclass(frozen=True)
class WorkloadData:
    """A loaded workload: the network (float or integer-valued, as an importer would give it), a name for
    it and its input spikes uint8 [samples, T, n_in]."""

    source: SourceNetwork
    model: str
    stimuli: np.ndarray


@dataclass(frozen=True)
class Workload:
    """One reference workload; ``data(samples)`` gives at least ``samples`` stimuli (B1 and B4: their 360
    test samples at most), or raises the reason it cannot run."""

    name: str
    title: str
    timesteps: int
    load: Callable[[int], WorkloadData] | None
    unsupported: str = ""

    def data(self, samples: int) -> WorkloadData:
        if self.load is None:
            raise UnsupportedModelError(f"{self.title}: {self.unsupported}")
        return self.load(samples)


def bernoulli_stimuli(samples: int, timesteps: int, n_in: int, rate: float = INPUT_RATE,
                      seed: int = STIMULUS_SEED) -> np.ndarray:
    """Bernoulli(``rate``) spikes uint8 [samples, timesteps, n_in]."""
    rng = np.random.default_rng(seed)
    return (rng.random((samples, timesteps, n_in)) < rate).astype(np.uint8)


def _dense(name: str, weight: np.ndarray, threshold: float, beta: float = BETA) -> SourceLayer:
    return SourceLayer(name, weight, np.zeros(weight.shape[0]), beta, threshold, Reset.SUBTRACT)


def _load_b2(samples: int) -> WorkloadData:
    rng = np.random.default_rng(WEIGHT_SEED)
    layers = (_dense("fc1", rng.integers(-7, 8, (128, 784)), 16), _dense("fc2", rng.integers(-7, 8, (10, 128)), 6))
    return WorkloadData(SourceNetwork(layers, origin="B2"), "B2", bernoulli_stimuli(samples, 25, 784))


def activity(spikes: np.ndarray) -> float:
    """The fraction of neuron-timesteps that spike."""
    return float(np.mean(spikes))


def calibrate_threshold(layers: list[SourceLayer], weight: np.ndarray, stimuli: np.ndarray,
                        target: float = TARGET_ACTIVITY, beta: float = BETA) -> int:
    """A threshold for a new last layer with ``weight`` (after ``layers``): trying 1, 2, ... up to
    MAX_THRESHOLD until its activity on ``stimuli`` drops below ``target``, the one closest to ``target``
    (the smallest on ties)."""
    def spiking(threshold: int) -> float:
        network, _ = quantize(SourceNetwork(tuple(layers) + (_dense("probe", weight, threshold, beta),)))
        return activity(golden.run(network, stimuli).output)

    best, best_gap = 1, float("inf")
    for threshold in range(1, MAX_THRESHOLD + 1):
        fraction = spiking(threshold)
        if abs(fraction - target) < best_gap:
            best, best_gap = threshold, abs(fraction - target)
        if fraction < target:
            break
    return best


def _calibrated(weights: list[np.ndarray], stimuli: np.ndarray, names: list[str], beta: float = BETA,
                ) -> SourceNetwork:
    """Layers with ``weights`` and ``names``, each threshold calibrated on the first stimuli in turn."""
    layers: list[SourceLayer] = []
    for name, weight in zip(names, weights):
        threshold = calibrate_threshold(layers, weight, stimuli[:CALIBRATION_SAMPLES], beta=beta)
        layers.append(_dense(name, weight, threshold, beta))
    return SourceNetwork(tuple(layers))


def _load_b3(samples: int) -> WorkloadData:
    rng = np.random.default_rng(WEIGHT_SEED)
    weights = [rng.choice((-1, 1), (128, 784)), rng.choice((-1, 1), (10, 128))]
    stimuli = bernoulli_stimuli(max(samples, CALIBRATION_SAMPLES), 25, 784)
    network = _calibrated(weights, stimuli, ["fc1", "fc2"])
    return WorkloadData(SourceNetwork(network.layers, origin="B3"), "B3", stimuli)


def _load_b4(samples: int) -> WorkloadData:
    from ..importers.spatial import FeatureShape, conv2d_dense

    rng = np.random.default_rng(WEIGHT_SEED)
    kernel = rng.integers(-7, 8, (8, 1, 3, 3))
    conv, _, maps, geometry = conv2d_dense(kernel, None, FeatureShape(1, 8, 8), name="conv1")
    weights = [conv.astype(np.int64), rng.integers(-7, 8, (10, maps.size))]
    stimuli = _digits_stimuli()
    network = _calibrated(weights, stimuli, ["conv1", "fc1"], beta=CONV_BETA)
    layers = (replace(network.layers[0], conv=geometry), *network.layers[1:])
    return WorkloadData(SourceNetwork(layers, origin="B4"), "B4", stimuli)


def _digits_example():
    """examples/digits/digits.py as a module (it defines B1's model, split and rate code)."""
    if not DIGITS_EXAMPLE.is_file():
        raise Snn2hwError(f"B1 needs the digits example, {DIGITS_EXAMPLE} is missing")
    spec = importlib.util.spec_from_file_location("snn2hw_bench_digits", DIGITS_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise Snn2hwError(f"B1 needs {exc.name or exc} for the digits example (pip install -e '.[torch,test]')") \
            from None
    return module


def _digits_stimuli() -> np.ndarray:
    """The digits example's rate code of its test split: 360 samples, T = 16."""
    digits = _digits_example()
    try:
        _, x_test, _, _ = digits.load_digits_split()
    except ImportError as exc:
        raise Snn2hwError(f"B1 and B4 need {exc.name or 'scikit-learn'} for the digits data "
                          f"(pip install scikit-learn)") from None
    return digits.rate_code(x_test, digits.TIMESTEPS)


def _load_b1(samples: int) -> WorkloadData:
    from ..importers import load_model

    digits = _digits_example()
    if not digits.MODEL.is_file():
        raise Snn2hwError(f"B1 needs the trained digits model, {digits.MODEL} is missing")
    return WorkloadData(load_model(digits.MODEL), digits.MODEL.name, _digits_stimuli())


WORKLOADS: dict[str, Workload] = {workload.name: workload for workload in (
    Workload("B1", "digits 64-128-10", 16, _load_b1),
    Workload("B2", "mnist-shape 784-128-10", 25, _load_b2),
    Workload("B3", "binarized 784-128-10", 25, _load_b3),
    Workload("B4", "conv 1x8x8-c3x3x8-10", 16, _load_b4),
)}


def select_workloads(names: str) -> list[Workload]:
    """The workloads named in a comma-separated list, in its order; an unknown name is an error."""
    chosen = [name.strip().upper() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown or not chosen:
        raise Snn2hwError(f"unknown workload {', '.join(unknown) or repr(names)}; choose from "
                          f"{', '.join(WORKLOADS)}")
    return [WORKLOADS[name] for name in chosen]
