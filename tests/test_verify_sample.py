"""The report's sample: golden until the design's Verilator build is cached, then measured in RTL."""

import numpy as np

from model_factory import make_sequential, save_state_dict
from snn2hw.backends.design import CompiledDesign
from snn2hw.backends.sample_trace import golden_sample
from snn2hw.pipeline import CompileConfig, compile_model
from snn2hw.verify.sample import observed_sample
from snn2hw.verify.simulate import rtl_simulator, simulate_design


def test_rtl_sample_only_from_a_cached_build(tmp_path):
    model = save_state_dict(make_sequential([4, 5, 3], betas=0.5, thresholds=1.0, seed=7), tmp_path / "m.pt")
    compile_model(CompileConfig(model=str(model), outdir=str(tmp_path / "out"), timesteps=8))
    design = CompiledDesign.load(tmp_path / "out")
    first = observed_sample(design)
    assert first.source == "golden" and "No cached Verilator build" in first.note
    assert not rtl_simulator(design, build=False).built  # asking did not build it
    simulate_design(design, first.inputs)  # builds and caches the simulator, as verify does
    measured = observed_sample(design)
    golden = golden_sample(design)
    assert measured.source == "rtl" and "equal to the golden model's bit for bit" in measured.note
    assert np.array_equal(measured.spikes[-1], golden.spikes[-1]) and measured.cycles == golden.cycles
