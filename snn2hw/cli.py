"""The ``snn2hw`` command line. User errors print one line on stderr and exit with code 2; a failed
verification exits with code 1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import Snn2hwError, VerificationError

EXIT_USER_ERROR = 2
EXIT_VERIFY_FAILED = 1


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(message: str) -> None:
    """Progress lines go to an interactive terminal only, so that stderr of a failed run is one line."""
    if sys.stderr.isatty():
        _log(message)


def _cmd_compile(args) -> int:
    from .pipeline import CompileConfig, compile_model

    config = CompileConfig(model=args.model, outdir=args.output, board=args.board, state_bits=args.state_bits,
                           timesteps=args.timesteps, lanes=args.lanes, weight_bits=args.weight_bits,
                           frac_bits=args.frac_bits, force=args.force)
    result = compile_model(config, progress=lambda step: _progress(f"snn2hw: {step} ..."))
    network, quant, latency = result.network, result.quantization, result.report["latency"]
    shape = " -> ".join([str(network.n_in)] + [str(layer.n_out) for layer in network.layers])
    print(f"compiled {Path(args.model).name}: {shape} neurons, {len(network.layers)} LIF layers, "
          f"state {network.state_bits} bits, beta {quant.frac_bits} fraction bits, board {config.board}")
    if quant.exact:
        print("integer model: compiled exactly as given (no rescaling)")
    for note in quant.notes:
        print(f"note: {note}")
    if result.fidelity is not None:
        fid = result.fidelity
        print(f"agreement with the float model on {fid['samples']} random samples: "
              f"{100 * fid['spike_agreement']:.2f} % of output spikes, {100 * fid['class_agreement']:.2f} % of "
              f"predicted classes")
    print(f"latency (cycle model): {latency['cycles_per_inference']} cycles per inference of "
          f"{latency['timesteps']} timesteps ({latency['stimulus']})")
    print(f"wrote {result.outdir}/ in {result.timings['compile']:.2f} s")
    return 0


def _cmd_simulate(args) -> int:
    from .backends.design import CompiledDesign
    from .verify.simulate import simulate_design

    design = CompiledDesign.load(args.outdir)
    inputs = _load_spikes(args.input)
    result = simulate_design(design, inputs, engine=args.engine)
    _save_atomically(Path(args.output), lambda path: np.save(path, result.outputs))
    if args.stats:
        stats = {"engine": result.engine, "samples": len(result.cycles),
                 "cycles_per_inference": result.cycles,
                 "cycles_source": "simulation" if result.engine == "rtl" else "model",
                 "mean_cycles_per_inference": float(np.mean(result.cycles))}
        _save_atomically(Path(args.stats), lambda path: path.write_text(json.dumps(stats, indent=2) + "\n"))
    print(f"simulated {len(result.cycles)} samples with the {result.engine} engine: "
          f"{int(result.outputs.sum())} output spikes, mean {np.mean(result.cycles):.1f} cycles per inference")
    return 0


def _cmd_verify(args) -> int:
    from .backends.design import CompiledDesign
    from .verify.verifier import verify_design

    design = CompiledDesign.load(args.outdir)
    _progress(f"snn2hw: verifying {design.verilog_path} on {args.samples} stimuli (Verilator + cocotb) ...")
    outcome = verify_design(design, samples=args.samples, seed=args.seed, vcd_path=args.vcd)
    if outcome.ok:
        gap = sum(abs(a - b) for a, b in zip(outcome.rtl_cycles, outcome.model_cycles))
        print(f"PASS: {outcome.samples}/{outcome.samples} samples bit-exact with the golden model "
              f"({design.timesteps} timesteps each); mean {np.mean(outcome.rtl_cycles):.1f} cycles per inference "
              f"measured, cycle model {'exact' if gap == 0 else f'off by {gap} cycles in total'}")
        return 0
    message = outcome.divergence.describe() if outcome.divergence else outcome.error
    print(f"FAIL: {outcome.matched}/{outcome.samples} samples matched before the failure; {message}")
    if outcome.vcd is not None:
        print(f"waveform of the failing sample: {outcome.vcd}")
    return EXIT_VERIFY_FAILED


def _cmd_build(args) -> int:
    from .backends.boards import load_board
    from .backends.design import REPORT_FILE, CompiledDesign
    from .backends.fpga_build import build_design
    from .backends.report import merge_build_results

    design = CompiledDesign.load(args.outdir)
    board = load_board(design.options["board"])
    measured = build_design(design, board, progress=lambda step: _progress(f"snn2hw: {step}"))
    report = merge_build_results(_read_report(design.path), measured)
    _save_atomically(design.path / REPORT_FILE,
                     lambda path: path.write_text(json.dumps(report, indent=2) + "\n"))
    luts = report["resources"].get("LC") or report["resources"].get("LUT") or {}
    print(f"built {design.path / measured['bitstream']}: {luts.get('used')} of {luts.get('available')} logic "
          f"cells, Fmax {report['fmax_mhz']} MHz, {report['latency']['us_per_inference']} us per inference "
          f"({measured['timings_s']['build']:.1f} s)")
    return 0


def _cmd_run(args) -> int:
    from .backends.design import CompiledDesign
    from .backends.uart_protocol import run_on_serial

    design = CompiledDesign.load(args.outdir)
    inputs = _load_spikes(args.input)
    outputs = run_on_serial(args.port, design, inputs, baudrate=args.baud, timeout_s=args.timeout)
    _save_atomically(Path(args.output), lambda path: np.save(path, outputs))
    print(f"ran {outputs.shape[0]} samples on the board at {args.port}: {int(outputs.sum())} output spikes")
    return 0


def _cmd_report(args) -> int:
    from .backends.report_text import render_markdown, render_text

    path = Path(args.outdir)
    report = _read_report(path)
    _save_atomically(path / "report.md", lambda target: target.write_text(render_markdown(report)))
    print(render_text(report), end="")
    return 0


def _read_report(outdir: Path) -> dict:
    from .backends.design import REPORT_FILE

    try:
        return json.loads((Path(outdir) / REPORT_FILE).read_text())
    except FileNotFoundError:
        raise Snn2hwError(f"{outdir} has no {REPORT_FILE} (run snn2hw compile first)") from None
    except ValueError as exc:
        raise Snn2hwError(f"{Path(outdir) / REPORT_FILE} is not valid JSON ({exc})") from None


def _load_spikes(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Snn2hwError(f"input file {path!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise Snn2hwError(f"input file {path!r} is not a .npy array ({exc})") from None


def _save_atomically(path: Path, write) -> None:
    """Write through a temporary sibling so a failure never leaves a half-written file."""
    temporary = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        write(temporary)
        temporary.replace(path)
    except OSError as exc:
        raise Snn2hwError(f"cannot write {path}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _lanes(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snn2hw", description="Compile trained spiking neural networks to "
                                     "bit-exact FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"snn2hw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    compile_ = commands.add_parser("compile", help="compile a model (.onnx, .pt) to Verilog", formatter_class=fmt)
    compile_.add_argument("model", help="ONNX step graph or PyTorch state_dict of an snnTorch network")
    compile_.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    compile_.add_argument("--board", default="ice40", help="target board (ice40, generic)")
    compile_.add_argument("--state-bits", type=int, default=16, metavar="B", help="membrane width in bits")
    compile_.add_argument("--timesteps", type=int, default=25, metavar="T",
                          help="timesteps per inference, for the latency report")
    compile_.add_argument("--lanes", type=_lanes, default="auto", metavar="auto|N",
                          help="neurons updated per cycle per layer: N for every layer, or auto (chosen per layer "
                               "from the board's resources)")
    compile_.add_argument("--weight-bits", type=int, default=None, metavar="N",
                          help="quantize a float model to N-bit weights (float default 8; an integer model "
                               "must fit)")
    compile_.add_argument("--frac-bits", type=int, default=None, metavar="F",
                          help="beta fraction bits (default: smallest >= 8 that is exact, else 16)")
    compile_.add_argument("--force", action="store_true", help="replace an existing OUTDIR")
    compile_.set_defaults(handler=_cmd_compile)

    simulate = commands.add_parser("simulate", help="run input spikes through a compiled design",
                                   formatter_class=fmt)
    simulate.add_argument("outdir", metavar="OUTDIR")
    simulate.add_argument("--input", required=True, metavar="IN.npy", help="0/1 spikes [B, T, N_in] or [T, N_in]")
    simulate.add_argument("--output", required=True, metavar="OUT.npy", help="uint8 output spikes [B, T, N_out]")
    simulate.add_argument("--engine", choices=("rtl", "golden"), default="rtl",
                          help="rtl: the Verilog in OUTDIR under Verilator; golden: the integer golden model")
    simulate.add_argument("--stats", metavar="STATS.json", help="write cycles per inference of each sample")
    simulate.set_defaults(handler=_cmd_simulate)

    verify = commands.add_parser("verify", help="check the Verilog in OUTDIR against the golden model",
                                 formatter_class=fmt)
    verify.add_argument("outdir", metavar="OUTDIR")
    verify.add_argument("--samples", type=int, default=32, metavar="N", help="number of stimuli")
    verify.add_argument("--seed", type=int, default=0, metavar="S", help="stimulus seed")
    verify.add_argument("--vcd", metavar="FILE", help="also write the waveform of the first stimulus to FILE")
    verify.set_defaults(handler=_cmd_verify)

    _outdir_command(commands, "build", _cmd_build, "synthesise, place and route OUTDIR to a bitstream for its board")
    _outdir_command(commands, "report", _cmd_report, "print OUTDIR's report as tables and write report.md")

    run = _outdir_command(commands, "run", _cmd_run, "run input spikes on a board programmed with OUTDIR's "
                          "bitstream, over its USB UART")
    run.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    run.add_argument("--input", required=True, metavar="IN.npy", help="0/1 spikes [B, T, N_in] or [T, N_in]")
    run.add_argument("--output", required=True, metavar="OUT.npy", help="uint8 output spikes [B, T, N_out]")
    run.add_argument("--baud", type=int, default=115200, help="UART baud rate of the board top")
    run.add_argument("--timeout", type=float, default=5.0, metavar="S", help="longest silence while a reply is due")
    return parser


def _outdir_command(commands, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose only argument is OUTDIR."""
    command = commands.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    command.add_argument("outdir", metavar="OUTDIR", help="a directory written by snn2hw compile")
    command.set_defaults(handler=handler)
    return command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except VerificationError as exc:
        _log(f"snn2hw: error: {exc}")
        return EXIT_VERIFY_FAILED
    except Snn2hwError as exc:
        _log(f"snn2hw: error: {exc}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _log("snn2hw: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
