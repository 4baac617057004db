"""The Verilator simulation top on a stand-in accelerator whose behaviour is known exactly, under both drivers
(the standalone program and cocotb): batches spanning several harness runs, cycle counts, the timeout
boundary, malformed output and a stalled weight image load, each reported for the right sample; the same
results from either driver; waveforms; the templates as package data."""

import fnmatch
import tomllib
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from snn2hw.errors import ToolError
from snn2hw.hw.accelerator import TOP_NAME
from snn2hw.hw.events import event_stream
from snn2hw.hw.membrane_readout import MembraneFormat, membrane_stream
from snn2hw.hw.weight_memory import load_stream
from snn2hw.verify.beats import encode_batch
from snn2hw.verify.harness import HarnessCapacity
from snn2hw.verify.verilator import DRIVERS, RtlSimulator, template

N_IN, N_OUT, STEPS = 4, 3, 4
STALL_WORD = 0xDEAD
# 4 samples per run at most, and 2 by the membrane beats (one per timestep)
SMALL = HarnessCapacity(in_beats=64, out_beats=64, samples=4, image_words=4, membrane_beats=2 * STEPS)
MEMBRANES = MembraneFormat(N_OUT, lanes=N_OUT, groups=1, bits=4)


class EchoAccelerator(wiring.Component):
    """Echoes every input beat as an output beat in the same cycle (input index 3 is out of range for 3
    outputs: malformed output); ``done`` one cycle after the last beat, never if the sample had a spike of
    input 2. ``loaded`` rises with the first weight word taken; the word STALL_WORD is never taken. Each
    end-of-timestep beat t is also a membrane beat of lane values t - k."""

    def __init__(self):
        super().__init__({"start": In(1), "done": Out(1), "i_spikes": In(event_stream(N_IN)),
                          "o_spikes": Out(event_stream(N_OUT)), "w_load": In(load_stream()), "loaded": Out(1),
                          "o_membranes": Out(membrane_stream(MEMBRANES))})

    def elaborate(self, platform):
        m = Module()
        hang, ending, step = Signal(), Signal(), Signal(range(STEPS))
        beat = self.i_spikes.payload
        m.d.comb += [self.i_spikes.ready.eq(1), self.o_spikes.valid.eq(self.i_spikes.valid),
                     self.o_spikes.payload.as_value().eq(beat.as_value()),
                     self.w_load.ready.eq(self.w_load.payload != STALL_WORD), self.done.eq(ending & ~hang)]
        m.d.sync += ending.eq(0)
        with m.If(self.w_load.valid & self.w_load.ready):
            m.d.sync += self.loaded.eq(1)
        m.d.comb += self.o_membranes.valid.eq(self.i_spikes.valid & beat.eot)
        m.d.comb += [self.o_membranes.payload[k].eq(step - k) for k in range(N_OUT)]
        with m.If(self.start):
            m.d.sync += [hang.eq(0), step.eq(0)]
        with m.Elif(self.i_spikes.valid):
            with m.If(beat.eot):
                m.d.sync += step.eq(step + 1)
            with m.If(~beat.eot & (beat.index == 2)):
                m.d.sync += hang.eq(1)
            with m.If(beat.eot & beat.last):
                m.d.sync += ending.eq(1)
        return m


@pytest.fixture(scope="module")
def echo_verilog(tmp_path_factory):
    path = tmp_path_factory.mktemp("echo") / "echo.v"
    path.write_text(verilog.convert(EchoAccelerator(), name=TOP_NAME, emit_src=False))
    return path


def _simulator(path, driver, image=(1,), waves=False):
    return RtlSimulator(path, N_IN, MEMBRANES, path.parent / ".sim", capacity=SMALL, image=list(image), driver=driver,
                        waves=waves)


@pytest.fixture(scope="module", params=DRIVERS)
def echo(request, echo_verilog):
    return lambda image=(1,): _simulator(echo_verilog, request.param, image)


def _spikes(samples=11):
    """Spikes on inputs 0 and 1 only (the echo's well-behaved inputs)."""
    spikes = (np.random.default_rng(5).random((samples, STEPS, N_IN)) < 0.5).astype(np.uint8)
    spikes[:, :, 2:] = 0
    return spikes


def test_a_batch_over_several_runs_gives_every_sample_and_its_cycles(echo):
    spikes = _spikes()
    results, error = echo().run(spikes, N_OUT, max_cycles=40)
    assert error == "" and len(results) == len(spikes)
    assert np.array_equal(np.stack([r.raster for r in results]), spikes[:, :, :N_OUT])
    steps_minus_lanes = np.arange(STEPS)[:, None] - np.arange(N_OUT)[None, :]
    assert all(np.array_equal(r.membranes, steps_minus_lanes) for r in results)
    # beat k is taken at cycle k, done rises one cycle after the last: cycles = beats + 1
    assert [r.cycles for r in results] == (encode_batch(spikes)[1] + 1).tolist()


def test_done_at_max_cycles_passes_one_cycle_later_times_out(echo):
    spikes = _spikes(1)
    cycles = int(encode_batch(spikes)[1][0]) + 1
    results, error = echo().run(spikes, N_OUT, max_cycles=cycles)
    assert error == "" and results[0].cycles == cycles
    results, error = echo().run(spikes, N_OUT, max_cycles=cycles - 1)
    assert results == [] and error == f"sample 0: done did not rise within {cycles - 1} cycles"


def test_a_hanging_sample_is_named_and_the_samples_before_it_kept(echo):
    spikes = _spikes()
    spikes[6, 1, 2] = 1
    results, error = echo().run(spikes, N_OUT, max_cycles=40)
    assert error == "sample 6: done did not rise within 40 cycles"
    assert np.array_equal(np.stack([r.raster for r in results]), spikes[:6, :, :N_OUT])


def test_malformed_output_is_named_with_its_sample(echo):
    spikes = _spikes()
    spikes[5, 2, 3] = 1
    results, error = echo().run(spikes, N_OUT, max_cycles=40)
    assert error == "sample 5: output spike index 3 >= 3 at timestep 2" and len(results) == 5


def test_a_stalled_weight_image_load_times_out(echo):
    results, error = echo(image=[STALL_WORD]).run(_spikes(2), N_OUT, max_cycles=40)
    assert results == [] and error.startswith("sample 0: the SPRAM weight image load stalled")


def test_both_drivers_give_the_same_cycles_and_rasters(echo_verilog):
    spikes = _spikes()
    spikes[9, 3, 2] = 1   # sample 9 hangs: the same error too
    runs = [_simulator(echo_verilog, driver).run(spikes, N_OUT, max_cycles=40) for driver in DRIVERS]
    (program, program_error), (cocotb, cocotb_error) = runs
    assert program_error == cocotb_error == "sample 9: done did not rise within 40 cycles"
    assert [r.cycles for r in program] == [r.cycles for r in cocotb] and len(program) == 9
    assert all(np.array_equal(a.raster, b.raster) and np.array_equal(a.membranes, b.membranes)
               for a, b in zip(program, cocotb))


def test_drivers_and_waves_have_their_own_build(echo_verilog):
    builds = {_simulator(echo_verilog, driver, waves=waves).build_dir for driver in DRIVERS for waves in (False, True)}
    assert len(builds) == 4
    with pytest.raises(ToolError, match="unknown simulation driver 'icarus'"):
        _simulator(echo_verilog, "icarus")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_waveform_is_written(echo_verilog, driver, tmp_path):
    vcd = tmp_path / "wave.vcd"
    results, error = _simulator(echo_verilog, driver, waves=True).run(_spikes(2), N_OUT, 40, vcd_path=vcd)
    assert error == "" and len(results) == 2
    assert "$enddefinitions" in vcd.read_text() and "harness" in vcd.read_text()


def test_the_templates_are_package_data():
    """Read through importlib.resources and matched by pyproject's package-data globs (so a wheel has them)."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["snn2hw"]
    for name in ("snn_sim_top.sv", "snn_sim_clocked.sv", "sim_main.cpp"):
        assert template(name).startswith(b"//")
        assert any(fnmatch.fnmatch(f"rtl_templates/{name}", pattern) for pattern in globs)
