"""A recurrent SNN reading the 8x8 digits row by row: Linear(8, H) -> RLeaky (dense V) -> Linear(H, 10) -> Leaky.

Each image is a sequence: the input at a timestep is one row of 8 binarized pixels (pixel >= 0.5), the rows top to
bottom, each held for ROW_STEPS timesteps, then READOUT_STEPS timesteps without input. No timestep shows more than
one row, so the class can only be told from the hidden layer's memory of earlier rows: its membranes and the dense
recurrent weights ``V`` of ``snn.RLeaky(all_to_all=True, linear_features=H)``. The network (beta 0.875, threshold 1,
subtract reset) is trained in floating point with snnTorch on scikit-learn's digits (the split of
``examples/digits``), exported to ONNX as one timestep with the states as explicit inputs and outputs
(``forward(x, spk1, mem1, mem2) -> spk, spk1_out, mem1_out, mem2_out``), and quantized by
``snn2hw compile --weight-bits 8``.

    python examples/recurrent/recurrent_digits.py all out/recurrent     # compile model.onnx, evaluate float/golden/RTL
    python examples/recurrent/recurrent_digits.py evaluate out/recurrent
    python examples/recurrent/recurrent_digits.py train                 # retrain: rewrites model.onnx
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
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

sys.path.append(str(Path(__file__).resolve().parent.parent / "digits"))  # data split and readout of examples/digits
from digits import accuracy, load_digits_split  # noqa: E402
from evaluation import Evaluation, evaluate_design, example_main  # noqa: E402


HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.onnx"
ROWS = 8
HIDDEN = 64
ROW_STEPS = 1                    # timesteps each row is shown
READOUT_STEPS = 2                # timesteps without input after the last row
TIMESTEPS = ROWS * ROW_STEPS + READOUT_STEPS
BETA = 0.875                     # 224 / 2^8: exact in the compiled model
WEIGHT_BITS = 8
SEED = 0


class Step(nn.Module):
    """One timestep, states in and out: ``forward(x [B, 8], spk1 [B, H], mem1 [B, H], mem2 [B, 10])``."""

    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=5)
        self.hidden = hidden
        self.fc1 = nn.Linear(ROWS, hidden)
        self.lif1 = snn.RLeaky(beta=BETA, all_to_all=True, linear_features=hidden, spike_grad=grad)
        self.fc2 = nn.Linear(hidden, 10)
        self.lif2 = snn.Leaky(beta=BETA, spike_grad=grad)

    def forward(self, x, spk1, mem1, mem2):
        spk1, mem1 = self.lif1(self.fc1(x), spk1, mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
        return spk2, spk1, mem1, mem2

    def zero_states(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros(batch, self.hidden), torch.zeros(batch, self.hidden), torch.zeros(batch, 10)


def row_code(pixels: np.ndarray) -> np.ndarray:
    """Images [B, 64] (row by row, values in [0, 1]) as 0/1 uint8 sequences [B, TIMESTEPS, 8]: row r, binarized at
    0.5, at timesteps r*ROW_STEPS ... (r+1)*ROW_STEPS - 1, then READOUT_STEPS timesteps of zeros."""
    rows = (np.asarray(pixels).reshape(len(pixels), ROWS, ROWS) >= 0.5).astype(np.uint8)
    shown = np.repeat(rows, ROW_STEPS, axis=1)
    return np.concatenate([shown, np.zeros((len(pixels), READOUT_STEPS, ROWS), np.uint8)], axis=1)


def run_steps(step: Step, spikes: torch.Tensor) -> torch.Tensor:
    """Output spikes [B, T, 10] of ``step`` over input spikes [B, T, 8], state cleared."""
    spk1, mem1, mem2 = step.zero_states(spikes.shape[0])
    outputs = []
    for t in range(spikes.shape[1]):
        out, spk1, mem1, mem2 = step(spikes[:, t], spk1, mem1, mem2)
        outputs.append(out)
    return torch.stack(outputs, dim=1)


def model_outputs(step: Step, spikes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run_steps(step, torch.from_numpy(spikes).float()).numpy().astype(np.uint8)


def test_split(samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The digits test split (first ``samples``) as row sequences [B, TIMESTEPS, 8] and labels."""
    _, x_test, _, y_test = load_digits_split()
    return row_code(x_test[:samples]), y_test[:samples]


def export(step: Step, model: Path) -> None:
    """One timestep of ``step`` to ONNX (TorchScript exporter), inputs ``x, spk1, mem1, mem2``."""
    args = (torch.zeros(1, ROWS), *step.zero_states(1))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(step, args, str(model), dynamo=False, input_names=["x", "spk1", "mem1", "mem2"],
                          output_names=["spk", "spk1_out", "mem1_out", "mem2_out"])


def load(model: Path = MODEL) -> Step:
    """The float network of an exported model (its initializers are the modules' parameters)."""
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
               for init in onnx.load(str(model)).graph.initializer}
    step = Step(hidden=weights["fc1.weight"].shape[0])
    names = ("fc1.weight", "fc1.bias", "lif1.recurrent.weight", "lif1.recurrent.bias", "fc2.weight", "fc2.bias")
    step.load_state_dict({name: weights[name] for name in names}, strict=False)
    return step


@dataclass(frozen=True)
class TrainResult:
    accuracy: float      # of the float network on the test split
    seconds: float
    step: Step


def train(model: Path = MODEL, epochs: int = 30, train_samples: int | None = None, hidden: int = HIDDEN,
          seed: int = SEED) -> TrainResult:
    """Adam (cosine schedule) on the cross-entropy of output spike counts; export to ``model``."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x_train, _, y_train, _ = load_digits_split()
    spikes = torch.from_numpy(row_code(x_train[:train_samples])).float()
    targets = torch.from_numpy(y_train[:train_samples])
    step = Step(hidden)
    optimizer = torch.optim.Adam(step.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs))
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for batch in torch.from_numpy(order.permutation(len(targets))).split(32):
            loss = F.cross_entropy(run_steps(step, spikes[batch]).sum(dim=1), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    export(step, Path(model))
    test_spikes, labels = test_split()
    return TrainResult(accuracy(model_outputs(step, test_spikes), labels), time.perf_counter() - start, step)


def compile_design(outdir: Path, model: Path = MODEL) -> None:
    """``snn2hw compile``: quantize to WEIGHT_BITS, write OUTDIR for the iCEBreaker; fidelity on the test split."""
    with tempfile.TemporaryDirectory() as scratch:
        stimuli = Path(scratch) / "test.npy"
        np.save(stimuli, test_split()[0])
        subprocess.run([sys.executable, "-m", "snn2hw.cli", "compile", str(model), "--board", "ice40", "-o",
                        str(outdir), "--weight-bits", str(WEIGHT_BITS), "--timesteps", str(TIMESTEPS),
                        "--fidelity-input", str(stimuli), "--force"], check=True)


def evaluate(outdir: Path, model: Path = MODEL, samples: int | None = None, rtl_samples: int = 32) -> Evaluation:
    spikes, labels = test_split(samples)
    return evaluate_design(outdir, spikes, labels, model_outputs(load(model), spikes), rtl_samples,
                           f"{WEIGHT_BITS}-bit weights")


def main(argv=None) -> int:
    return example_main(__doc__.splitlines()[0], MODEL, 30, train, compile_design, evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
