"""What every example prints at the end: test-split accuracy of the float model, of the compiled network in the
golden model and of its Verilog in Verilator (on a subset), and whether RTL and golden model agree spike for
spike. Shared by the examples (each puts ``examples/`` on ``sys.path``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from snn2hw import golden
from snn2hw.backends.design import CompiledDesign
from snn2hw.fidelity import predicted_class
from snn2hw.verify.simulate import simulate_design


def accuracy(output_spikes: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose most-spiking output neuron (lowest index on ties) is the label."""
    return float(np.mean(predicted_class(output_spikes) == labels))


@dataclass(frozen=True)
class Evaluation:
    """Test-split accuracies; ``float_accuracy`` is None when the float model is not available."""

    samples: int
    float_accuracy: float | None
    golden_accuracy: float
    rtl_samples: int
    rtl_accuracy: float
    rtl_identical: bool   # RTL output spikes == golden model output spikes on the RTL subset
    rtl_cycles: float     # mean clock cycles per inference, measured in RTL simulation
    compiled: str = ""    # how the compiled network differs, e.g. "8-bit weights"

    def lines(self) -> list[str]:
        lines = [] if self.float_accuracy is None else [
            f"float model accuracy (snnTorch): {100 * self.float_accuracy:.1f} % ({self.samples} test samples)"]
        compiled = f" ({self.compiled})" if self.compiled else ""
        return lines + [
            f"golden model accuracy{compiled}: {100 * self.golden_accuracy:.1f} % ({self.samples} test samples)",
            f"RTL accuracy on {self.rtl_samples} samples: {100 * self.rtl_accuracy:.1f} % "
            f"(identical to golden: {'yes' if self.rtl_identical else 'NO'}), "
            f"{self.rtl_cycles:.0f} cycles per inference"]


def evaluate_design(outdir: Path, spikes: np.ndarray, labels: np.ndarray, float_outputs: np.ndarray | None,
                    rtl_samples: int, compiled: str = "") -> Evaluation:
    """Score the design in OUTDIR on input ``spikes`` [B, T, n_in] with ``labels``: the golden model on all of
    them, Verilator on the first ``rtl_samples``; ``float_outputs`` are the float model's output spikes."""
    design = CompiledDesign.load(outdir)
    golden_out = golden.run(design.network, spikes).output
    rtl = simulate_design(design, spikes[:rtl_samples], engine="rtl")
    return Evaluation(samples=len(labels),
                      float_accuracy=None if float_outputs is None else accuracy(float_outputs, labels),
                      golden_accuracy=accuracy(golden_out, labels), rtl_samples=len(rtl.outputs),
                      rtl_accuracy=accuracy(rtl.outputs, labels[:rtl_samples]),
                      rtl_identical=bool(np.array_equal(rtl.outputs, golden_out[:rtl_samples])),
                      rtl_cycles=float(np.mean(rtl.cycles)), compiled=compiled)


def example_main(description: str, model: Path, epochs: int, train: Callable, compile_design: Callable,
                 evaluate: Callable, argv=None) -> int:
    """The command line of a trained example: ``train [--epochs N]`` (``train(epochs=N)`` returns an object with
    ``accuracy`` and ``seconds`` and writes ``model``), ``evaluate OUTDIR`` and ``all OUTDIR`` (compile, then
    evaluate); exit status 1 unless RTL and golden model agree."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    train_ = commands.add_parser("train", help=f"train; write {model.name}")
    train_.add_argument("--epochs", type=int, default=epochs, help="training epochs (default: %(default)s)")
    for name, text in (("evaluate", "print float, golden and RTL accuracy of a compiled design"),
                       ("all", f"compile {model.name} for ice40 into OUTDIR, evaluate")):
        command = commands.add_parser(name, help=text)
        command.add_argument("outdir", type=Path)
        command.add_argument("--rtl-samples", type=int, default=32,
                             help="test samples simulated in RTL (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "train":
        result = train(epochs=args.epochs)
        print(f"float model accuracy: {100 * result.accuracy:.1f} % (test split); trained in {result.seconds:.1f} s; "
              f"wrote {model}")
        return 0
    if args.command == "all":
        compile_design(args.outdir)
    evaluation = evaluate(args.outdir, rtl_samples=args.rtl_samples)
    print("\n".join(evaluation.lines()))
    return 0 if evaluation.rtl_identical else 1
