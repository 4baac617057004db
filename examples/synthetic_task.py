"""The task, network and workflow shared by the state_dict and NIR examples (``examples/state_dict``,
``examples/nir``): each trains the same float snnTorch network and saves it in its own format.

Task: four classes, each a fixed vector of 32 firing probabilities in [0.1, 0.3]; a sample is Bernoulli spikes
drawn at its class's probabilities for 20 timesteps. Network: ``nn.Sequential(nn.Linear(32, 24), snn.Leaky,
nn.Linear(24, 4), snn.Leaky)`` with beta 0.875 and threshold 1 (neither learned), trained for a few seconds
with Adam on the cross-entropy of output spike counts. Its weights stay float; ``snn2hw compile --weight-bits
4`` quantizes them, and :meth:`Example.evaluate` compares the float network's accuracy with the golden model's
and the RTL's. An example describes its format with an :class:`Example`; :meth:`Example.main` gives it the
commands ``train``, ``evaluate`` and ``all``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate, utils
from torch import nn

from evaluation import Evaluation, accuracy, evaluate_design  # noqa: F401  (accuracy: for the examples)

SIZES = (32, 24, 4)
BETA = 0.875                       # 224 / 2^8: the compiler represents it exactly
THRESHOLD = 1.0
TIMESTEPS = 20
WEIGHT_BITS = 4
SEED = 0


def prototypes(seed: int = SEED) -> np.ndarray:
    """The task: one vector of firing probabilities in [0.1, 0.3] per class, float32 [classes, inputs]."""
    return np.random.default_rng(seed).uniform(0.1, 0.3, (SIZES[-1], SIZES[0])).astype(np.float32)


def make_split(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` labelled samples, balanced over the classes: 0/1 uint8 spikes [samples, TIMESTEPS, inputs]
    drawn at the class's probabilities, and the labels; the same seed gives the same split."""
    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % SIZES[-1]
    rates = prototypes()[labels]
    return (rng.random((samples, TIMESTEPS, SIZES[0])) < rates[:, None, :]).astype(np.uint8), labels


def held_out_split() -> tuple[np.ndarray, np.ndarray]:
    return make_split(400, SEED + 1)


def make_network(reset: str = "subtract", per_neuron: bool = False) -> nn.Sequential:
    """The untrained network. ``init_hidden=True`` lets snn.Leaky run in a Sequential (it keeps its membrane
    and returns spikes); it does not change the state dict. ``per_neuron``: beta and threshold as tensors of
    equal per-neuron values (snnTorch's NIR export needs them); the dynamics are the same."""
    grad = surrogate.fast_sigmoid(slope=10)

    def leaky(n: int) -> snn.Leaky:
        beta, threshold = (torch.full((n,), BETA), torch.full((n,), THRESHOLD)) if per_neuron else (BETA, THRESHOLD)
        return snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, spike_grad=grad, init_hidden=True)
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), leaky(SIZES[1]), nn.Linear(SIZES[1], SIZES[2]),
                         leaky(SIZES[2]))


def run_network(net: nn.Sequential, spikes: torch.Tensor) -> torch.Tensor:
    """Output spikes [B, T, n_out] of ``net`` over input spikes [B, T, n_in], membranes cleared first."""
    utils.reset(net)
    return torch.stack([net(spikes[:, t]) for t in range(spikes.shape[1])], dim=1)


def network_outputs(net: nn.Sequential, spikes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run_network(net, torch.from_numpy(spikes).float()).numpy().astype(np.uint8)


def train_network(net: nn.Sequential, epochs: int, train_samples: int, seed: int) -> None:
    """Adam on the cross-entropy of output spike counts, in place; deterministic for a given seed."""
    spikes, labels = make_split(train_samples, seed)
    inputs, targets = torch.from_numpy(spikes).float(), torch.from_numpy(labels).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for batch in torch.from_numpy(order.permutation(train_samples)).split(64):
            loss = F.cross_entropy(run_network(net, inputs[batch]).sum(dim=1), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@dataclass(frozen=True)
class TrainResult:
    accuracy: float          # of the float network on the test split
    seconds: float
    net: nn.Sequential


def run_snn2hw(*args) -> None:
    """Run the snn2hw CLI (its output goes to this process's stdout); raise CalledProcessError on failure."""
    subprocess.run([sys.executable, "-m", "snn2hw.cli", *map(str, args)], check=True)


def verify_design(outdir: Path, samples: int = 32) -> None:
    """``snn2hw verify``: the Verilog in OUTDIR against the golden model in Verilator, spike for spike."""
    run_snn2hw("verify", outdir, "--samples", samples)


@dataclass(frozen=True)
class Example:
    """One example: where its model file is, how its network is made, saved and read back, and the
    ``snn2hw compile`` options its format needs beyond the common ones."""

    model: Path                                        # the shipped model file
    make_network: Callable[[], nn.Sequential]
    save: Callable[[nn.Sequential, Path], None]        # write the trained network to a model file
    load: Callable[[Path], nn.Sequential]              # the float network of a model file
    compile_options: tuple[str, ...] = ()

    def train(self, model: Path | None = None, epochs: int = 10, train_samples: int = 512,
              seed: int = SEED) -> TrainResult:
        """Train a new network (:func:`train_network`) and save it to ``model`` (default: the shipped file)."""
        start = time.perf_counter()
        torch.manual_seed(seed)
        torch.set_num_threads(2)
        net = self.make_network()
        train_network(net, epochs, train_samples, seed)
        self.save(net, self.model if model is None else Path(model))
        test_spikes, test_labels = held_out_split()
        return TrainResult(accuracy(network_outputs(net, test_spikes), test_labels), time.perf_counter() - start,
                           net)

    def compile_design(self, outdir: Path, model: Path | None = None) -> None:
        """``snn2hw compile``: import the model, quantize it to WEIGHT_BITS, write OUTDIR for the iCEBreaker."""
        run_snn2hw("compile", self.model if model is None else model, "--board", "ice40", "-o", outdir,
                   "--weight-bits", WEIGHT_BITS, "--timesteps", TIMESTEPS, *self.compile_options, "--force")

    def evaluate(self, outdir: Path, model: Path | None = None, rtl_samples: int = 64) -> Evaluation:
        """Float (the network of ``model``), golden and RTL accuracy of the design in OUTDIR on the test split."""
        spikes, labels = held_out_split()
        float_out = network_outputs(self.load(self.model if model is None else Path(model)), spikes)
        return evaluate_design(outdir, spikes, labels, float_out, rtl_samples, f"{WEIGHT_BITS}-bit weights")

    def main(self, description: str, argv=None) -> int:
        """The example's command line: ``train``, ``evaluate OUTDIR``, ``all OUTDIR``."""
        parser = argparse.ArgumentParser(description=description)
        commands = parser.add_subparsers(dest="command", required=True)
        train_ = commands.add_parser("train", help=f"train; write {self.model.name}")
        train_.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
        for name, text in (("evaluate", "print float, golden and RTL accuracy of a compiled design"),
                           ("all", f"compile {self.model.name} for ice40 into OUTDIR, verify, evaluate")):
            command = commands.add_parser(name, help=text)
            command.add_argument("outdir", type=Path)
            command.add_argument("--rtl-samples", type=int, default=64,
                                 help="test samples simulated in RTL (default: %(default)s)")
        args = parser.parse_args(argv)
        if args.command == "train":
            result = self.train(epochs=args.epochs)
            print(f"float model accuracy: {100 * result.accuracy:.1f} % (test split); trained in "
                  f"{result.seconds:.1f} s; wrote {self.model}")
            return 0
        if args.command == "all":
            self.compile_design(args.outdir)
            verify_design(args.outdir)
        evaluation = self.evaluate(args.outdir, rtl_samples=args.rtl_samples)
        print("\n".join(evaluation.lines()))
        return 0 if evaluation.rtl_identical else 1
