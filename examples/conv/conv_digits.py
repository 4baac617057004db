"""A small convolutional SNN on the 8x8 digits: Conv2d -> Leaky -> MaxPool2d -> Flatten -> Linear -> Leaky.

The network (``nn.Conv2d(1, 4, 3, padding=1)``, ``snn.Leaky``, ``nn.MaxPool2d(2)``, ``nn.Flatten``,
``nn.Linear(64, 10)``, ``snn.Leaky``; beta 0.875, threshold 1, subtract reset) is trained in floating point with
snnTorch on scikit-learn's digits, rate-coded as in the digits example (``examples/digits``), and exported to ONNX
as one timestep with explicit membranes. ``snn2hw compile --weight-bits 8`` quantizes it: the convolution becomes a
layer of 256 neurons on the weight-shared conv core (its 9 kernel words in the weight memory), the max pooling of
spikes a fixed OR layer of 64 neurons, so the compiled network is 64 -> 256 -> 64 -> 10 neurons in 3 layers.

    python examples/conv/conv_digits.py all out/conv          # compile model.onnx, evaluate float/golden/RTL
    python examples/conv/conv_digits.py evaluate out/conv
    python examples/conv/conv_digits.py train                 # retrain: rewrites model.onnx
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import snntorch as snn
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from snntorch import surrogate
from torch import nn

sys.path.append(str(Path(__file__).resolve().parent.parent / "digits"))  # data and rate code of examples/digits
from digits import accuracy, load_digits_split, rate_code  # noqa: E402
from evaluation import Evaluation, evaluate_design, example_main  # noqa: E402


HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.onnx"
CHANNELS = 4
TIMESTEPS = 16
BETA = 0.875                     # 224 / 2^8: exact in the compiled model
WEIGHT_BITS = 8
SEED = 0


class Step(nn.Module):
    """One timestep, membranes in and out: ``forward(x [B, 1, 8, 8], mem1 [B, 4, 8, 8], mem2 [B, 10])``."""

    def __init__(self):
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=25)
        self.conv1 = nn.Conv2d(1, CHANNELS, 3, padding=1)
        self.lif1 = snn.Leaky(beta=BETA, spike_grad=grad)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc2 = nn.Linear(CHANNELS * 16, 10)
        self.lif2 = snn.Leaky(beta=BETA, spike_grad=grad)

    def forward(self, x, mem1, mem2):
        spk1, mem1 = self.lif1(self.conv1(x), mem1)
        spk2, mem2 = self.lif2(self.fc2(self.flat(self.pool(spk1))), mem2)
        return spk2, mem1, mem2


def run_steps(step: Step, spikes: torch.Tensor) -> torch.Tensor:
    """Output spikes [B, T, 10] of ``step`` over input spikes [B, T, 64] (8x8 pixels row by row), state cleared."""
    batch = spikes.shape[0]
    mem1, mem2 = torch.zeros(batch, CHANNELS, 8, 8), torch.zeros(batch, 10)
    outputs = []
    for t in range(spikes.shape[1]):
        out, mem1, mem2 = step(spikes[:, t].reshape(batch, 1, 8, 8), mem1, mem2)
        outputs.append(out)
    return torch.stack(outputs, dim=1)


def model_outputs(step: Step, spikes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run_steps(step, torch.from_numpy(spikes).float()).numpy().astype(np.uint8)


def test_split(samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The digits test split (first ``samples``), rate-coded: spikes [B, TIMESTEPS, 64] and labels."""
    _, x_test, _, y_test = load_digits_split()
    return rate_code(x_test[:samples], TIMESTEPS), y_test[:samples]


def export(step: Step, model: Path) -> None:
    """One timestep of ``step`` to ONNX (TorchScript exporter), inputs ``x, mem1, mem2``."""
    args = (torch.zeros(1, 1, 8, 8), torch.zeros(1, CHANNELS, 8, 8), torch.zeros(1, 10))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(step, args, str(model), dynamo=False, input_names=["x", "mem1", "mem2"],
                          output_names=["spk", "mem1_out", "mem2_out"])


def load(model: Path = MODEL) -> Step:
    """The float network of an exported model (its initializers are the modules' parameters)."""
    step = Step()
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
               for init in onnx.load(str(model)).graph.initializer}
    step.load_state_dict({name: weights[name] for name in ("conv1.weight", "conv1.bias", "fc2.weight", "fc2.bias")},
                         strict=False)
    return step


@dataclass(frozen=True)
class TrainResult:
    accuracy: float      # of the float network on the test split
    seconds: float
    step: Step


def train(model: Path = MODEL, epochs: int = 12, train_samples: int | None = None, seed: int = SEED) -> TrainResult:
    """Adam on the cross-entropy of output spike counts (fresh rate codes every epoch); export to ``model``."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x_train, _, y_train, _ = load_digits_split()
    x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    step = Step()
    optimizer = torch.optim.Adam(step.parameters(), lr=5e-3)
    order = np.random.default_rng(seed)
    for epoch in range(epochs):
        spikes = torch.from_numpy(rate_code(x_train, TIMESTEPS, seed + 1 + epoch)).float()
        for batch in torch.from_numpy(order.permutation(len(x_train))).split(64):
            loss = F.cross_entropy(run_steps(step, spikes[batch]).sum(dim=1), torch.from_numpy(y_train[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    export(step, Path(model))
    spikes, labels = test_split()
    return TrainResult(accuracy(model_outputs(step, spikes), labels), time.perf_counter() - start, step)


def compile_design(outdir: Path, model: Path = MODEL) -> None:
    """``snn2hw compile``: quantize to WEIGHT_BITS, write OUTDIR for the iCEBreaker."""
    subprocess.run([sys.executable, "-m", "snn2hw.cli", "compile", str(model), "--board", "ice40", "-o",
                    str(outdir), "--weight-bits", str(WEIGHT_BITS), "--timesteps", str(TIMESTEPS), "--force"],
                   check=True)


def evaluate(outdir: Path, model: Path = MODEL, samples: int | None = None, rtl_samples: int = 32) -> Evaluation:
    spikes, labels = test_split(samples)
    return evaluate_design(outdir, spikes, labels, model_outputs(load(model), spikes), rtl_samples,
                           f"{WEIGHT_BITS}-bit weights")


def main(argv=None) -> int:
    return example_main(__doc__.splitlines()[0], MODEL, 12, train, compile_design, evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
