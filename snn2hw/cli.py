"""The ``snn2hw`` command line. User errors print one line on stderr and exit with code 2; a failed
verification exits with code 1."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import Snn2hwError, VerificationError
from .importers import DEFAULT_NIR_DT
from .passes.quantize import DEFAULT_MEMBRANE_FRAC_BITS

EXIT_USER_ERROR = 2
EXIT_VERIFY_FAILED = 1


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_SILENT = False  # set by main() for --quiet / --json: no progress at all


def _progress(message: str) -> None:
    """Progress lines go to an interactive terminal only, so that stderr of a failed run is one line."""
    if sys.stderr.isatty() and not _SILENT:
        _log(message)


def _display():
    """A rich progress display (spinner or bar) on an interactive stderr, unless --quiet or --json."""
    from .progress import Progress

    return Progress(enabled=False if _SILENT else None)


def _finish(args, lines: list[str], data: dict, summary: int = -1) -> None:
    """Print a command's result: ``lines``; with --quiet only ``lines[summary]``; with --json ``data``."""
    if args.json_output:
        print(json.dumps(data, indent=2, default=str))
    elif args.quiet:
        print(lines[summary])
    else:
        print("\n".join(lines))


def _cmd_compile(args) -> int:
    from .pipeline import CompileConfig, compile_model

    config = CompileConfig(model=args.model, outdir=args.output, board=args.board, state_bits=args.state_bits,
                           timesteps=args.timesteps, lanes=args.lanes, weight_bits=args.weight_bits,
                           beta_frac_bits=args.beta_frac_bits, frac_bits=args.frac_bits,
                           fidelity_input=args.fidelity_input, nir_dt=args.nir_dt, reset=args.reset,
                           input_shape=args.input_shape, force=args.force)
    with _display() as display:
        result = compile_model(config, progress=lambda step: display.step(f"compile: {step}"))
    network, quant, latency = result.network, result.quantization, result.report["latency"]
    shape = " -> ".join([str(network.n_in)] + [str(layer.n_out) for layer in network.layers])
    lines = [f"compiled {Path(args.model).name}: {shape} neurons, {len(network.layers)} LIF layers, "
             f"state {network.state_bits} bits, beta {quant.beta_frac_bits} fraction bits, board {config.board}"]
    if quant.exact:
        lines.append("integer model: compiled exactly as given (no rescaling)")
    lines += [f"note: {note}" for note in quant.notes]
    if result.fidelity is not None:
        lines.append(_fidelity_line(result.fidelity))
    lines.append(f"latency (cycle model): {latency['cycles_per_inference']} cycles per inference of "
                 f"{latency['timesteps']} timesteps ({latency['stimulus']})")
    lines.append(f"wrote {result.outdir}/ in {result.timings['compile']:.2f} s")
    _finish(args, lines, {"outdir": str(result.outdir), "model": Path(args.model).name, "board": config.board,
                          "neurons": [network.n_in] + [layer.n_out for layer in network.layers],
                          "quantization": result.report["quantization"], "notes": list(quant.notes),
                          "latency": latency, "timings_s": result.timings})
    return 0


def _fidelity_line(fidelity) -> str:
    """One line of a compile's agreement with the float model (:class:`snn2hw.fidelity.Fidelity`)."""
    saturated = f", {100 * fidelity.saturated:.2f} % of membrane values saturated" if fidelity.saturated else ""
    return (f"fidelity against the float model ({fidelity.reference}) on {fidelity.samples} x {fidelity.timesteps} "
            f"timesteps of {fidelity.stimulus}: {100 * fidelity.spike_agreement:.2f} % of output spikes, "
            f"{100 * fidelity.class_agreement:.2f} % of predicted classes agree{saturated}")


def _cmd_simulate(args) -> int:
    from .backends.design import CompiledDesign
    from .verify.simulate import simulate_design

    design = CompiledDesign.load(args.outdir)
    inputs = _load_spikes(args.input)
    with _display() as display:
        display.step(f"simulate: {args.engine} engine")
        result = simulate_design(design, inputs, engine=args.engine)
    _save_atomically(Path(args.output), lambda path: np.save(path, result.outputs))
    if args.membrane:
        _save_atomically(Path(args.membrane), lambda path: np.save(path, result.membranes))
    stats = {"engine": result.engine, "samples": len(result.cycles), "cycles_per_inference": result.cycles,
             "cycles_source": "simulation" if result.engine == "rtl" else "model",
             "mean_cycles_per_inference": float(np.mean(result.cycles))}
    if args.stats:
        _save_atomically(Path(args.stats), lambda path: path.write_text(json.dumps(stats, indent=2) + "\n"))
    _finish(args, [f"simulated {len(result.cycles)} samples with the {result.engine} engine: "
                   f"{int(result.outputs.sum())} output spikes, mean {np.mean(result.cycles):.1f} cycles per "
                   f"inference"], {**stats, "output": args.output, "output_spikes": int(result.outputs.sum()),
                                   "membrane": args.membrane})
    return 0


def _cmd_verify(args) -> int:
    from .backends.design import CompiledDesign
    from .verify.verifier import verify_design

    design = CompiledDesign.load(args.outdir)
    with _display() as display:
        display.step(f"verify: {args.samples} stimuli on {design.verilog_path} (Verilator + cocotb)")
        outcome = verify_design(design, samples=args.samples, seed=args.seed, vcd_path=args.vcd)
    data = {"ok": outcome.ok, "samples": outcome.samples, "matched": outcome.matched,
            "divergence": dataclasses.asdict(outcome.divergence) if outcome.divergence else None,
            "error": outcome.error or None, "rtl_cycles": outcome.rtl_cycles, "model_cycles": outcome.model_cycles,
            "vcd": str(outcome.vcd) if outcome.vcd else None}
    if outcome.ok:
        gap = sum(abs(a - b) for a, b in zip(outcome.rtl_cycles, outcome.model_cycles))
        _finish(args, [f"PASS: {outcome.samples}/{outcome.samples} samples bit-exact with the golden model "
                       f"({design.timesteps} timesteps each); mean {np.mean(outcome.rtl_cycles):.1f} cycles per "
                       f"inference measured, cycle model {'exact' if gap == 0 else f'off by {gap} cycles in total'}"],
                data)
        return 0
    message = outcome.divergence.describe() if outcome.divergence else outcome.error
    lines = [f"FAIL: {outcome.matched}/{outcome.samples} samples matched before the failure; {message}"]
    if outcome.vcd is not None:
        lines.append(f"waveform of the failing sample: {outcome.vcd}")
    _finish(args, lines, data, summary=0)
    return EXIT_VERIFY_FAILED


def _cmd_build(args) -> int:
    from .pipeline import build_outdir

    outdir = Path(args.outdir)
    with _display() as display:
        report = build_outdir(outdir, progress=lambda step: display.step(f"build: {step}"))
        display.step("build: report.html ...")
        html, source = _write_html(outdir, report, args.explore)
    luts = report["resources"].get("LC") or report["resources"].get("LUT") or {}
    lines = [f"built {outdir / report['bitstream']}: {luts.get('used')} of {luts.get('available')} logic "
             f"cells, Fmax {report['fmax_mhz']} MHz, {report['latency']['us_per_inference']} us per inference "
             f"({report['timings_s']['build']:.1f} s)", f"wrote {html} (sample from {source})"]
    _finish(args, lines, {"outdir": str(outdir), "bitstream": report["bitstream"], "html": str(html),
                          "report": report}, summary=0)
    return 0


def _write_html(outdir: Path, report: dict, explore: str | None) -> tuple[Path, str]:
    """Write OUTDIR/report.html (with the design space of the explore result ``explore`` if given); return
    its path and where its sample came from (RTL simulation if the Verilator build is cached, else golden)."""
    from .backends.design import CompiledDesign
    from .backends.report_html import write_html
    from .verify.sample import observed_sample

    sample = observed_sample(CompiledDesign.load(outdir))
    return write_html(outdir, report, sample, _read_explore(explore) if explore else None), sample.source


def _read_explore(path: str) -> dict:
    """An explore result: ``explore.json`` or the directory holding it."""
    from .explore import EXPLORE_FILE

    file = Path(path) / EXPLORE_FILE if Path(path).is_dir() else Path(path)
    try:
        result = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise Snn2hwError(f"cannot read the explore result {file} ({exc})") from None
    if not isinstance(result, dict) or not {"objectives", "points"} <= result.keys():
        raise Snn2hwError(f"{file} is not an explore result (written by snn2hw explore)")
    return result


def _cmd_run(args) -> int:
    from .backends.design import CompiledDesign
    from .backends.uart_protocol import run_on_serial

    design = CompiledDesign.load(args.outdir)
    inputs = _load_spikes(args.input)
    outputs = run_on_serial(args.port, design, inputs, baudrate=args.baud, timeout_s=args.timeout)
    _save_atomically(Path(args.output), lambda path: np.save(path, outputs))
    _finish(args, [f"ran {outputs.shape[0]} samples on the board at {args.port}: {int(outputs.sum())} output "
                   f"spikes"], {"port": args.port, "samples": int(outputs.shape[0]), "output": args.output,
                                "output_spikes": int(outputs.sum())})
    return 0


def _cmd_report(args) -> int:
    from .backends.report_text import render_markdown, render_text

    path = Path(args.outdir)
    report = _read_report(path)
    _save_atomically(path / "report.md", lambda target: target.write_text(render_markdown(report)))
    lines = [render_text(report).rstrip("\n"), f"wrote {path / 'report.md'}"]
    if args.html or args.explore:
        with _display() as display:
            display.step("report: report.html ...")
            html, source = _write_html(path, report, args.explore)
        lines.append(f"wrote {html} (sample from {source})")
    _finish(args, lines, report)
    return 0


def _cmd_explore(args) -> int:
    from .backends.report_text import text_table
    from .explore import EXPLORE_FILE, PLOT_FILE, ExploreConfig, explore, explore_rows

    outdir = args.output or f"explore-{Path(args.model).stem}"
    config = ExploreConfig(model=args.model, outdir=outdir, board=args.board, lanes=tuple(args.lanes),
                           weight_bits=tuple(args.weight_bits) if args.weight_bits else (None,),
                           timesteps=args.timesteps, state_bits=args.state_bits, jobs=args.jobs,
                           build=not args.no_build, cache_dir=args.cache_dir, nir_dt=args.nir_dt, reset=args.reset,
                           input_shape=args.input_shape)
    with _display() as display:
        result = explore(config, progress=display.bar, advance=display.advance)
    points = result["points"]
    done = sum(point["status"] == "ok" for point in points)
    cached = sum(point["cached"] for point in points)
    summary = (f"explored {len(points)} points ({done} ok, {len(points) - done} refused, {cached} from the cache) "
               f"in {result['time_s']:.1f} s; Pareto front over {' and '.join(result['objectives'])}: "
               f"{sum(point['pareto'] for point in points)} points; wrote {Path(outdir) / EXPLORE_FILE} and "
               f"{Path(outdir) / PLOT_FILE}")
    _finish(args, [text_table(f"{result['model']} on {result['board']}", explore_rows(result)), summary], result)
    return 0


def _cmd_bench(args) -> int:
    from .bench.runner import BenchOptions, bench_document, run_bench
    from .bench.table import format_table

    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise Snn2hwError(f"cannot write {args.json}: its directory does not exist")
    options = BenchOptions(workloads=args.workloads, board=args.board, samples=args.samples, lanes=args.lanes,
                           build=not args.no_build, workdir=args.output)
    with _display() as display:
        records = run_bench(options, progress=lambda message: display.step(f"bench: {message}"))
    document = bench_document(records, options)
    if args.json:
        text = json.dumps(document, indent=2) + "\n"
        _save_atomically(Path(args.json), lambda path: path.write_text(text))
    _finish(args, [format_table(records).rstrip("\n")], document, summary=0)
    return EXIT_VERIFY_FAILED if any(record["bit_exact"] is False for record in records) else 0


def _read_report(outdir: Path) -> dict:
    from .backends.design import REPORT_FILE

    try:
        return json.loads((Path(outdir) / REPORT_FILE).read_text())
    except FileNotFoundError:
        raise Snn2hwError(f"{outdir} has no {REPORT_FILE} (run snn2hw compile first)") from None
    except ValueError as exc:
        raise Snn2hwError(f"{Path(outdir) / REPORT_FILE} is not valid JSON ({exc})") from None


def _load_spikes(path: str) -> np.ndarray:
    from .spike_files import load_npy
    return load_npy(path, "input file")


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

    compile_ = commands.add_parser("compile", help="compile a model (.onnx, .pt, .nir) to Verilog",
                                   formatter_class=fmt)
    compile_.add_argument("model", help="ONNX step graph or PyTorch state_dict of an snnTorch network, or a NIR "
                                        "graph")
    compile_.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    compile_.add_argument("--board", default="ice40", help="target board (ice40, generic)")
    compile_.add_argument("--state-bits", type=int, default=16, metavar="B", help="membrane width in bits")
    compile_.add_argument("--timesteps", type=int, default=25, metavar="T",
                          help="timesteps per inference, for the latency report")
    compile_.add_argument("--lanes", type=_lanes, default="auto", metavar="auto|N",
                          help="neurons updated per cycle per layer: N for every layer, or auto (chosen per layer "
                               "from the board's resources, possibly integrating wider into accumulators)")
    compile_.add_argument("--weight-bits", type=int, default=None, metavar="N",
                          help="quantize a float model to N-bit weights (float default 8; an integer model "
                               "must fit)")
    compile_.add_argument("--frac-bits", type=int, default=DEFAULT_MEMBRANE_FRAC_BITS, metavar="G",
                          help="float models: G extra membrane fraction bits (W, b, threshold scaled by 2^G; "
                               "stored weights N + G bits wide); refused above 0 for an integer model")
    compile_.add_argument("--beta-frac-bits", type=int, default=None, metavar="F",
                          help="beta fraction bits, beta_q = round(beta * 2^F) (None: the smallest F >= 8 that "
                               "is exact, else 16)")
    compile_.add_argument("--fidelity-input", metavar="IN.npy", default=None,
                          help="0/1 spikes [B, T, N_in] on which to measure agreement with the float model "
                               "(None: 256 random rate-coded samples, float models only)")
    _add_nir_options(compile_)
    _add_input_shape_option(compile_)
    compile_.add_argument("--force", action="store_true", help="replace an existing OUTDIR")
    compile_.set_defaults(handler=_cmd_compile)

    simulate = _outdir_command(commands, "simulate", _cmd_simulate, "run input spikes through a compiled design")
    simulate.add_argument("--input", required=True, metavar="IN.npy", help="0/1 spikes [B, T, N_in] or [T, N_in]")
    simulate.add_argument("--output", required=True, metavar="OUT.npy", help="uint8 output spikes [B, T, N_out]")
    simulate.add_argument("--engine", choices=("rtl", "golden"), default="rtl",
                          help="rtl: the Verilog in OUTDIR under Verilator; golden: the integer golden model")
    simulate.add_argument("--stats", metavar="STATS.json", help="write cycles per inference of each sample")
    simulate.add_argument("--membrane", metavar="MEM.npy",
                          help="write the last layer's membranes v[t] (after the update, before the next reset), "
                               "int64 [B, T, N_out]: the readout of a non-spiking (NIR LI) output layer")

    verify = _outdir_command(commands, "verify", _cmd_verify, "check the Verilog in OUTDIR against the golden model")
    verify.add_argument("--samples", type=int, default=32, metavar="N", help="number of stimuli")
    verify.add_argument("--seed", type=int, default=0, metavar="S", help="stimulus seed")
    verify.add_argument("--vcd", metavar="FILE", help="also write the waveform of the first stimulus to FILE")

    build = _outdir_command(commands, "build", _cmd_build, "synthesise, place and route OUTDIR to a bitstream "
                            "for its board, then write OUTDIR/report.html")
    build.add_argument("--explore", metavar="DIR", help="also plot this snn2hw explore result (its -o directory "
                       "or explore.json) in report.html")
    report = _outdir_command(commands, "report", _cmd_report, "print OUTDIR's report as tables and write "
                             "report.md (and report.html)")
    report.add_argument("--html", action="store_true", help="also write the self-contained OUTDIR/report.html")
    report.add_argument("--explore", metavar="DIR", help="plot this snn2hw explore result (its -o directory or "
                        "explore.json) in report.html (implies --html)")
    _explore_command(commands)

    run = _outdir_command(commands, "run", _cmd_run, "run input spikes on a board programmed with OUTDIR's "
                          "bitstream, over its USB UART")
    run.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    run.add_argument("--input", required=True, metavar="IN.npy", help="0/1 spikes [B, T, N_in] or [T, N_in]")
    run.add_argument("--output", required=True, metavar="OUT.npy", help="uint8 output spikes [B, T, N_out]")
    run.add_argument("--baud", type=int, default=115200, help="UART baud rate of the board top")
    run.add_argument("--timeout", type=float, default=5.0, metavar="S", help="longest silence while a reply is due")

    bench = commands.add_parser("bench", help="compile, simulate and build the reference workloads "
                                "(BENCHMARKS.md), time the golden model against snnTorch, print a table",
                                formatter_class=fmt)
    bench.add_argument("--workloads", default="B1,B2,B3", help="comma-separated workload ids: B1, B2, B3, B4")
    bench.add_argument("--board", default="ice40", help="target board")
    bench.add_argument("--json", metavar="FILE", help="also write the records (and date, machine, versions) to FILE")
    bench.add_argument("--no-build", action="store_true", help="skip the FPGA builds (their fields stay null)")
    bench.add_argument("--samples", type=int, default=16, metavar="N", help="stimuli per workload simulated in RTL")
    lanes = next(action for action in compile_._actions if action.dest == "lanes")  # exactly as compile takes it
    bench.add_argument("--lanes", type=lanes.type, default=lanes.default, metavar=lanes.metavar, help=lanes.help)
    bench.add_argument("-o", "--output", metavar="DIR", default=None,
                       help="work directory, its B1/, B2/, ... replaced (None: a temporary directory)")
    bench.set_defaults(handler=_cmd_bench)
    _add_output_flags(parser, commands)
    return parser


def _int_list(text: str) -> list[int]:
    """argparse type of a comma-separated list of integers, e.g. ``1,2,4``."""
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _lanes_list(text: str) -> list[int | str]:
    """argparse type of a comma-separated list of ``auto`` and integers, e.g. ``auto,1,2,4``."""
    try:
        return [_lanes(item.strip()) for item in text.split(",") if item.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers or 'auto', got {text!r}") from None


def _add_nir_options(parser: argparse.ArgumentParser) -> None:
    """``--nir-dt`` and ``--reset``: how a NIR model's continuous-time neurons become integer LIF layers."""
    parser.add_argument("--nir-dt", type=float, default=DEFAULT_NIR_DT, metavar="SECONDS",
                        help="NIR models: forward-Euler time step (beta = 1 - dt/tau); snnTorch's export_to_nir "
                             "uses 1e-4")
    parser.add_argument("--reset", choices=("zero", "subtract"), default=None,
                        help="NIR models only: what a spike does to the membrane, which NIR cannot say "
                             "(None: zero)")


def _input_shape(text: str) -> str:
    """argparse type of ``--input-shape``: ``C,H,W`` (checked), returned as ``"C,H,W"``."""
    from .importers.spatial import FeatureShape

    try:
        return ",".join(map(str, FeatureShape.parse(text).dims))
    except Snn2hwError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_input_shape_option(parser: argparse.ArgumentParser) -> None:
    """``--input-shape C,H,W``: the input shape a state dict's first nn.Conv2d needs (a state dict lacks it)."""
    parser.add_argument("--input-shape", type=_input_shape, default=None, metavar="C,H,W",
                        help="state dicts only: channels, height and width of the input, needed when the first "
                             "layer is an nn.Conv2d (ONNX and NIR files declare their own)")


def _explore_command(commands) -> None:
    explore = commands.add_parser("explore", help="compile and build a model for every lanes x weight-bits "
                                  "combination in parallel; table, Pareto front, JSON and plot",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    explore.add_argument("model", help="ONNX step graph or PyTorch state_dict of an snnTorch network, or a NIR "
                                        "graph")
    explore.add_argument("--board", default="ice40", help="target board")
    explore.add_argument("--lanes", type=_lanes_list, default="auto,1,2,4,8", metavar="auto,N,...",
                         help="lanes (neurons updated per cycle per layer) to try; auto: each layer's lanes "
                              "chosen from the board, as compile --lanes auto")
    explore.add_argument("--weight-bits", type=_int_list, default=None, metavar="N,N,...",
                         help="weight widths to try (a float model is quantized to each; an integer model is "
                              "refused where its weights do not fit); None: the model's own (float: 8)")
    explore.add_argument("--timesteps", type=int, default=25, metavar="T", help="timesteps per inference")
    explore.add_argument("--state-bits", type=int, default=16, metavar="B", help="membrane width in bits")
    explore.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1), metavar="N",
                         help="worker processes")
    _add_nir_options(explore)
    _add_input_shape_option(explore)
    explore.add_argument("--no-build", action="store_true",
                         help="compile only: the compiler's block-RAM estimate and cycle model, no FPGA build")
    explore.add_argument("-o", "--output", metavar="DIR", default=None,
                         help="where explore.json and explore.svg go (None: explore-MODELNAME)")
    explore.add_argument("--cache-dir", metavar="DIR", default=None,
                         help="cache of evaluated points, by content hash (None: DIR/.cache)")
    explore.set_defaults(handler=_cmd_explore)


def _add_output_flags(parser: argparse.ArgumentParser, commands) -> None:
    """--quiet and --json, before the subcommand or after it; every subcommand's help shows its own help
    line as its description."""
    for flags, dest, text in ((("-q", "--quiet"), "quiet", "no progress display, only the result line"),
                              (("--json",), "json_output", "print the result as JSON on stdout (no progress)")):
        parser.add_argument(*flags, dest=dest, action="store_true", help=text)
        for command in commands.choices.values():
            try:  # SUPPRESS: a subcommand's default must not undo the flag given before the subcommand
                command.add_argument(*flags, dest=dest, action="store_true", default=argparse.SUPPRESS,
                                     help=text)
            except argparse.ArgumentError:
                pass  # the subcommand has its own option of that name
    for choice in commands._choices_actions:  # argparse keeps each subcommand's help line only here
        command = commands.choices[choice.dest]
        command.description = command.description or choice.help


def _outdir_command(commands, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose only argument is OUTDIR."""
    command = commands.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    command.add_argument("outdir", metavar="OUTDIR", help="a directory written by snn2hw compile")
    command.set_defaults(handler=handler)
    return command


def main(argv: list[str] | None = None) -> int:
    global _SILENT
    args = build_parser().parse_args(argv)
    _SILENT = args.quiet or args.json_output
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
