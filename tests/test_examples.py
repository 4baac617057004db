"""The examples run as tests, at reduced size: the shipped digits model through golden model and Verilator, a
short digits training run through export and exact compilation, and the quickstart model."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.backends.design import CompiledDesign

from cli_helpers import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load_example(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits():
    return _load_example(EXAMPLES / "digits" / "digits.py")


def _compile_exactly(model: Path, outdir: Path, timesteps: int) -> CompiledDesign:
    result = run_cli("compile", model, "--board", "ice40", "-o", outdir, "--timesteps", timesteps, check=0)
    assert "compiled exactly as given" in result.stdout
    return CompiledDesign.load(outdir)


def test_rate_code_is_deterministic_binary_and_follows_intensity(digits):
    pixels = np.array([[0.0, 1.0, 0.5]] * 400, np.float32)
    spikes = digits.rate_code(pixels, timesteps=8, seed=3)
    assert spikes.dtype == np.uint8 and spikes.shape == (400, 8, 3)
    assert np.array_equal(spikes, digits.rate_code(pixels, timesteps=8, seed=3))
    assert spikes[..., 0].sum() == 0 and spikes[..., 1].all() and 0.45 < spikes[..., 2].mean() < 0.55


def test_prediction_ties_go_to_the_lowest_index(digits):
    spikes = np.zeros((1, 4, 3), np.uint8)
    spikes[0, :2, 1] = spikes[0, 1:3, 2] = 1
    assert digits.predict(spikes).tolist() == [1]


def test_shipped_digits_model_is_accurate_in_golden_model_and_rtl(digits, tmp_path):
    _compile_exactly(digits.MODEL, tmp_path / "out", digits.TIMESTEPS)
    evaluation = digits.evaluate(tmp_path / "out", rtl_samples=32)
    assert evaluation.samples == 360 and evaluation.rtl_samples == 32
    assert evaluation.golden_accuracy >= 0.90
    assert evaluation.rtl_identical


def test_short_digits_training_exports_an_integer_model_equal_to_the_golden_model(digits, tmp_path):
    result = digits.train(model=tmp_path / "model.onnx", float_model=tmp_path / "float.pt", epochs=1,
                          qat_epochs=1, train_samples=256)
    design = _compile_exactly(tmp_path / "model.onnx", tmp_path / "out", digits.TIMESTEPS)
    assert all(np.abs(layer.weight).max() <= digits.WEIGHT_MAX for layer in design.network.layers)
    _, x_test, _, _ = digits.load_digits_split()
    spikes = digits.rate_code(x_test[:64])
    expected = golden.run(design.network, spikes).output
    result.step.integer = True  # the training forward: straight-through rounding, floored leak
    assert expected.any() and np.array_equal(digits.model_outputs(result.step, spikes), expected)


def test_quickstart_model_compiles_and_simulates_in_the_golden_model(tmp_path):
    run_cli("compile", EXAMPLES / "quickstart" / "model.onnx", "--board", "ice40", "-o", tmp_path / "out", check=0)
    spikes = (np.random.default_rng(0).random((4, 10, 16)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", tmp_path / "out", "--input", tmp_path / "in.npy", "--output", tmp_path / "out.npy",
            "--engine", "golden", check=0)
    outputs = np.load(tmp_path / "out.npy")
    assert outputs.shape == (4, 10, 4)
    assert np.array_equal(outputs, golden.run(CompiledDesign.load(tmp_path / "out").network, spikes).output)
