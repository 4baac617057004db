"""Workload B1: 8x8 digits on a 64-128-10 LIF network with 4-bit weights, from snnTorch to the iCEBreaker.

Trains with snnTorch on scikit-learn's bundled digits, quantizes to integer weights in [-7, 7], compiles for
the iCEBreaker and measures test accuracy in the float model, the golden model and the RTL.

    python examples/digits/digits.py train             # retrain: rewrites model.onnx and float_model.pt
    python examples/digits/digits.py all out/digits    # compile, verify, build, evaluate the shipped model
    python examples/digits/digits.py evaluate out/digits
    python examples/digits/digits.py test-spikes out/test_spikes.npy   # for compile --fidelity-input

Training runs in two phases: the float network (snn.Leaky, threshold 1, surrogate gradient, cross-entropy on
output spike counts), then quantization-aware fine-tuning in the integer domain: each layer's weights are
scaled so that they span [-7, 7], its threshold by the same factor (rounded), and the forward pass uses
straight-through rounded weights and the golden model's floored leak, so that the trained network *is* the
integer network snn2hw compiles exactly as given.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from torch import nn

from snn2hw.fidelity import predicted_class as predict  # noqa: F401  (the examples' class decision)

sys.path.append(str(Path(__file__).resolve().parent.parent))  # examples/: the evaluation all examples print
from evaluation import Evaluation, accuracy, evaluate_design  # noqa: E402,F401  (accuracy: used by other examples)

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.onnx"              # the integer network, the one that is compiled
FLOAT_MODEL = HERE / "float_model.pt"    # the float network before quantization (state_dict)
SIZES = (64, 128, 10)
BETA = 0.9375
TIMESTEPS = 16
WEIGHT_MAX = 7                           # 4-bit signed weights: integers in [-7, 7]
SEED = 0
SLOPE = 25.0                             # fast-sigmoid surrogate slope at threshold 1


def load_digits_split(seed: int = SEED):
    """scikit-learn's digits as (x_train, x_test, y_train, y_test), pixels in [0, 1], a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.data / 16.0).astype(np.float32)
    return train_test_split(pixels, digits.target, test_size=0.2, random_state=seed, stratify=digits.target)


def rate_code(pixels: np.ndarray, timesteps: int = TIMESTEPS, seed: int = SEED) -> np.ndarray:
    """Bernoulli rate code, P(spike) = pixel intensity: 0/1 uint8 [B, timesteps, n_pixels], same seed same spikes."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(pixels)
    return (rng.random((len(pixels), timesteps, pixels.shape[1])) < pixels[:, None, :]).astype(np.uint8)


def test_spikes(seed: int = SEED) -> np.ndarray:
    """The test split's rate code, uint8 [360, TIMESTEPS, 64]: the spikes every accuracy here is measured on."""
    _, x_test, _, _ = load_digits_split(seed)
    return rate_code(x_test, TIMESTEPS, seed)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class Step(nn.Module):
    """One timestep of the 64-128-10 network, membranes in and out: the graph exported to ONNX.

    With ``integer`` set (quantization-aware training) the weights are rounded straight-through and the leak
    is floored as in the golden model; the exported forward is the plain snnTorch one on integer weights.
    """

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(SIZES[0], SIZES[1], bias=False)
        self.lif1 = snn.Leaky(beta=BETA, reset_mechanism="subtract", spike_grad=surrogate.fast_sigmoid(SLOPE))
        self.fc2 = nn.Linear(SIZES[1], SIZES[2], bias=False)
        self.lif2 = snn.Leaky(beta=BETA, reset_mechanism="subtract", spike_grad=surrogate.fast_sigmoid(SLOPE))
        self.integer = False

    def layers(self):
        return ((self.fc1, self.lif1), (self.fc2, self.lif2))

    def _layer(self, fc, lif, x, mem):
        if not self.integer:
            return lif(fc(x), mem)
        decayed = lif.beta * mem
        floor_correction = (torch.floor(decayed) - decayed).detach()
        return lif(F.linear(x, ste_round(fc.weight)) + floor_correction, mem)

    def forward(self, x, mem1, mem2):
        s1, mem1 = self._layer(self.fc1, self.lif1, x, mem1)
        s2, mem2 = self._layer(self.fc2, self.lif2, s1, mem2)
        return s2, mem1, mem2


def run_steps(step: Step, spikes: torch.Tensor) -> torch.Tensor:
    """Output spikes [B, T, n_out] of ``step`` unrolled over the input spikes [B, T, n_in], state cleared."""
    batch = spikes.shape[0]
    mem1, mem2 = torch.zeros(batch, SIZES[1]), torch.zeros(batch, SIZES[2])
    outputs = []
    for t in range(spikes.shape[1]):
        s2, mem1, mem2 = step(spikes[:, t], mem1, mem2)
        outputs.append(s2)
    return torch.stack(outputs, dim=1)


def model_outputs(step: Step, spikes: np.ndarray) -> np.ndarray:
    """``step``'s output spikes as uint8 [B, T, n_out] for 0/1 input spikes [B, T, n_in]."""
    with torch.no_grad():
        return run_steps(step, torch.from_numpy(spikes).float()).numpy().astype(np.uint8)


def train_epochs(step: Step, pixels: np.ndarray, labels: np.ndarray, epochs: int, lr: float, seed: int,
                 batch_size: int = 128) -> None:
    """Adam on cross-entropy of output spike counts; fresh rate codes every epoch."""
    optimizer = torch.optim.Adam(step.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs))
    generator = np.random.default_rng(seed)
    targets = torch.from_numpy(labels).long()
    for _ in range(epochs):
        spikes = torch.from_numpy(rate_code(pixels, TIMESTEPS, int(generator.integers(2**31)))).float()
        for batch in torch.from_numpy(generator.permutation(len(pixels))).split(batch_size):
            counts = run_steps(step, spikes[batch]).sum(dim=1)
            loss = F.cross_entropy(counts, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step.integer:
                with torch.no_grad():
                    for fc, _ in step.layers():
                        fc.weight.clamp_(-WEIGHT_MAX, WEIGHT_MAX)
        schedule.step()


def to_integer_domain(step: Step, percentile: float = 99.5) -> None:
    """Scale each layer so its weights span [-7, 7] (outliers clipped) and its threshold by the same factor."""
    with torch.no_grad():
        for fc, lif in step.layers():
            scale = WEIGHT_MAX / float(np.percentile(fc.weight.abs().numpy(), percentile))
            fc.weight.mul_(scale).clamp_(-WEIGHT_MAX, WEIGHT_MAX)
            lif.threshold.fill_(max(1.0, round(float(lif.threshold) * scale)))
            lif.spike_grad = surrogate.fast_sigmoid(SLOPE / float(lif.threshold))
    step.integer = True


def freeze(step: Step) -> None:
    """Round the weights in place: the module now holds the integer network, for export."""
    with torch.no_grad():
        for fc, _ in step.layers():
            fc.weight.copy_(torch.round(fc.weight))
    step.integer = False


def export_onnx(step: Step, path: Path) -> Path:
    """The single-timestep ONNX graph snn2hw compiles (membranes as explicit inputs and outputs)."""
    args = (torch.zeros(1, SIZES[0]), torch.zeros(1, SIZES[1]), torch.zeros(1, SIZES[2]))
    with warnings.catch_warnings():  # the legacy exporter's deprecation; snn.Leaky's shape check traced as constant
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(step, args, path, input_names=["x", "mem1", "mem2"],
                          output_names=["spk", "mem1_out", "mem2_out"], dynamo=False)
    return path


@dataclass(frozen=True)
class TrainResult:
    """Test accuracies before and after quantization, wall time, and the trained integer network."""

    float_accuracy: float
    integer_accuracy: float
    seconds: float
    step: Step


def train(model: Path = MODEL, float_model: Path = FLOAT_MODEL, epochs: int = 30, qat_epochs: int = 20,
          train_samples: int | None = None, seed: int = SEED) -> TrainResult:
    """Train the float network, fine-tune it in 4-bit integers; write ``float_model`` and ``model`` (ONNX)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    test_spikes = rate_code(x_test, TIMESTEPS, seed)
    step = Step()
    train_epochs(step, x_train, y_train, epochs, lr=5e-3, seed=seed)
    float_accuracy = accuracy(model_outputs(step, test_spikes), y_test)
    torch.save(step.state_dict(), float_model)
    to_integer_domain(step)
    train_epochs(step, x_train, y_train, qat_epochs, lr=0.05, seed=seed + 1)
    integer_accuracy = accuracy(model_outputs(step, test_spikes), y_test)
    freeze(step)
    export_onnx(step, model)
    return TrainResult(float_accuracy, integer_accuracy, time.perf_counter() - start, step)


def load_float_model(path: Path = FLOAT_MODEL) -> Step:
    step = Step()
    step.load_state_dict(torch.load(path))
    return step


def evaluate(outdir: Path, rtl_samples: int = 64, float_model: Path = FLOAT_MODEL, seed: int = SEED) -> Evaluation:
    """Accuracy of the float model, of the golden model on the compiled network and of the RTL on a subset."""
    y_test = load_digits_split(seed)[3]
    spikes = test_spikes(seed)
    float_out = model_outputs(load_float_model(float_model), spikes) if Path(float_model).exists() else None
    return evaluate_design(outdir, spikes, y_test, float_out, rtl_samples)


def run_snn2hw(*args) -> None:
    """Run the snn2hw CLI; raise CalledProcessError on failure."""
    subprocess.run([sys.executable, "-m", "snn2hw.cli", *map(str, args)], check=True)


def compile_verify_build(outdir: Path, model: Path = MODEL) -> None:
    run_snn2hw("compile", model, "--board", "ice40", "-o", outdir, "--timesteps", TIMESTEPS, "--force")
    run_snn2hw("verify", outdir)
    run_snn2hw("build", outdir)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_ = commands.add_parser("train", help=f"train; write {MODEL.name} and {FLOAT_MODEL.name}")
    train_.add_argument("--epochs", type=int, default=30, help="float training epochs (default: %(default)s)")
    train_.add_argument("--qat-epochs", type=int, default=20, help="4-bit fine-tuning epochs (default: %(default)s)")
    spikes = commands.add_parser("test-spikes", help="write the test split's input spikes [360, T, 64] as .npy "
                                 "(e.g. for snn2hw compile --fidelity-input)")
    spikes.add_argument("output", type=Path)
    for name, text in (("evaluate", "print float, golden and RTL accuracy of a compiled design"),
                       ("all", f"compile {MODEL.name} for ice40 into OUTDIR, verify, build, evaluate")):
        command = commands.add_parser(name, help=text)
        command.add_argument("outdir", type=Path)
        command.add_argument("--rtl-samples", type=int, default=64,
                             help="test samples simulated in RTL (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "train":
        result = train(epochs=args.epochs, qat_epochs=args.qat_epochs)
        print(f"float model accuracy: {100 * result.float_accuracy:.1f} %, 4-bit integer model: "
              f"{100 * result.integer_accuracy:.1f} % (test split); trained in {result.seconds:.1f} s; "
              f"wrote {MODEL} and {FLOAT_MODEL}")
        return 0
    if args.command == "test-spikes":
        np.save(args.output, test_spikes())
        print(f"wrote {args.output}: the test split's rate code, {TIMESTEPS} timesteps")
        return 0
    if args.command == "all":
        compile_verify_build(args.outdir)
    evaluation = evaluate(args.outdir, args.rtl_samples)
    print("\n".join(evaluation.lines()))
    return 0 if evaluation.rtl_identical else 1


if __name__ == "__main__":
    sys.exit(main())
