"""The examples run as tests, at reduced size: the shipped digits model through golden model and Verilator, the
float digits model's fidelity at 8-bit weights, a short digits training run through export and exact
compilation, the quickstart model, and the state_dict, NIR, conv and recurrent examples (each: its shipped model
in the golden model; a short training run through compile (verify) and RTL)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snn2hw import golden
from snn2hw.backends.design import CompiledDesign

from cli_helpers import run_cli
from model_factory import assert_imported
from snn2hw.importers import load_model

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


def test_float_digits_model_agrees_with_snntorch_on_the_test_split_at_8_bit_weights(digits, tmp_path):
    # issue 6's target: >= 99 % predicted-class agreement with 8-bit weights and the default --frac-bits
    np.save(tmp_path / "test.npy", digits.test_spikes())
    result = run_cli("compile", digits.FLOAT_MODEL, "--board", "ice40", "-o", tmp_path / "out", "--timesteps",
                     digits.TIMESTEPS, "--weight-bits", "8", "--fidelity-input", tmp_path / "test.npy", check=0)
    quantization = json.loads((tmp_path / "out" / "report.json").read_text())["quantization"]
    fidelity = quantization["fidelity"]
    assert quantization["weight_bits"] == 8 and quantization["membrane_frac_bits"] == 0
    assert fidelity["reference"].startswith("snntorch") and (fidelity["samples"], fidelity["timesteps"]) == (360, 16)
    assert fidelity["class_agreement"] >= 0.99, result.stdout


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


@pytest.fixture(scope="module")
def state_dict_example():
    return _load_example(EXAMPLES / "state_dict" / "state_dict.py")


def test_shipped_state_dict_model_keeps_its_accuracy_at_4_bits(state_dict_example, tmp_path):
    example = state_dict_example
    example.compile_design(tmp_path / "out")
    design = CompiledDesign.load(tmp_path / "out")
    assert all(np.abs(layer.weight).max() <= 7 for layer in design.network.layers)
    spikes, labels = example.held_out_split()
    float_accuracy = example.accuracy(example.network_outputs(example.load_network(), spikes), labels)
    golden_accuracy = example.accuracy(golden.run(design.network, spikes).output, labels)
    assert float_accuracy >= 0.95 and golden_accuracy >= 0.93


def test_short_state_dict_training_runs_through_compile_verify_and_rtl(state_dict_example, tmp_path):
    example = state_dict_example
    model = tmp_path / "model.pt"
    result = example.train(model=model, epochs=1, train_samples=128)
    assert list(torch.load(model, weights_only=True))[:2] == ["0.weight", "0.bias"]
    assert_imported(load_model(model), result.net)
    example.compile_design(tmp_path / "out", model)
    example.verify_design(tmp_path / "out", samples=4)
    evaluation = example.evaluate(tmp_path / "out", model, rtl_samples=8)
    assert evaluation.rtl_samples == 8 and evaluation.rtl_identical
    assert evaluation.float_accuracy == result.accuracy


@pytest.fixture(scope="module")
def nir_example():
    return _load_example(EXAMPLES / "nir" / "nir_example.py")


def test_shipped_nir_model_round_trips_and_keeps_its_accuracy_at_4_bits(nir_example, tmp_path):
    example = nir_example
    float_net = example.load_network()
    assert_imported(load_model(example.MODEL, nir_dt=example.NIR_DT, reset=example.RESET), float_net)
    example.compile_design(tmp_path / "out")
    design = CompiledDesign.load(tmp_path / "out")
    assert all(np.abs(layer.weight).max() <= 7 for layer in design.network.layers)
    spikes, labels = example.held_out_split()
    float_accuracy = example.accuracy(example.network_outputs(float_net, spikes), labels)
    golden_accuracy = example.accuracy(golden.run(design.network, spikes).output, labels)
    assert float_accuracy >= 0.95 and golden_accuracy >= 0.90


def test_short_nir_training_runs_through_export_compile_and_rtl(nir_example, tmp_path):
    """``all`` without its ``snn2hw verify`` step (the state_dict test runs that shared step): the RTL run of
    ``evaluate`` is compared with the golden model too."""
    example = nir_example
    model = tmp_path / "model.nir"
    result = example.train(model=model, epochs=1, train_samples=128)
    assert_imported(load_model(model, reset="zero"), result.net)
    example.compile_design(tmp_path / "out", model)
    evaluation = example.evaluate(tmp_path / "out", model, rtl_samples=8)
    assert evaluation.rtl_samples == 8 and evaluation.rtl_identical
    assert evaluation.float_accuracy == result.accuracy  # the network rebuilt from the file is the trained one


@pytest.fixture(scope="module")
def conv_example():
    return _load_example(EXAMPLES / "conv" / "conv_digits.py")


def test_shipped_conv_model_keeps_its_accuracy_at_8_bits(conv_example, tmp_path):
    example = conv_example
    example.compile_design(tmp_path / "out")
    spikes, labels = example.test_split()
    design = CompiledDesign.load(tmp_path / "out")
    assert [layer.n_out for layer in design.network.layers] == [256, 64, 10]
    float_accuracy = example.accuracy(example.model_outputs(example.load(), spikes), labels)
    golden_accuracy = example.accuracy(golden.run(design.network, spikes).output, labels)
    assert float_accuracy >= 0.90 and golden_accuracy >= float_accuracy - 0.02


def test_short_conv_training_runs_through_export_compile_and_rtl(conv_example, tmp_path):
    example = conv_example
    result = example.train(model=tmp_path / "model.onnx", epochs=3, train_samples=512)
    example.compile_design(tmp_path / "out", tmp_path / "model.onnx")
    evaluation = example.evaluate(tmp_path / "out", tmp_path / "model.onnx", rtl_samples=8)
    print("\n".join(evaluation.lines()))
    assert evaluation.rtl_samples == 8 and evaluation.rtl_identical
    assert evaluation.golden_accuracy > 0.3   # well above chance (0.1): the compiled network spikes and separates
    assert evaluation.float_accuracy == result.accuracy  # the network read back from the file is the trained one


@pytest.fixture(scope="module")
def recurrent_example():
    return _load_example(EXAMPLES / "recurrent" / "recurrent_digits.py")


def test_shipped_recurrent_model_keeps_its_accuracy_at_8_bits(recurrent_example, tmp_path):
    example = recurrent_example
    example.compile_design(tmp_path / "out")
    spikes, labels = example.test_split()
    assert spikes.shape == (360, example.TIMESTEPS, 8) and spikes[:, -example.READOUT_STEPS:].sum() == 0
    design = CompiledDesign.load(tmp_path / "out")
    hidden, output = design.network.layers
    assert (hidden.n_out, output.n_out) == (example.HIDDEN, 10)
    assert hidden.recurrent.shape == (example.HIDDEN, example.HIDDEN) and output.recurrent is None
    float_accuracy = example.accuracy(example.model_outputs(example.load(), spikes), labels)
    golden_accuracy = example.accuracy(golden.run(design.network, spikes).output, labels)
    assert float_accuracy >= 0.80 and golden_accuracy >= float_accuracy - 0.03


def test_short_recurrent_training_runs_through_export_compile_and_rtl(recurrent_example, tmp_path):
    example = recurrent_example
    result = example.train(model=tmp_path / "model.onnx", epochs=2, train_samples=256, hidden=16)
    example.compile_design(tmp_path / "out", tmp_path / "model.onnx")
    assert CompiledDesign.load(tmp_path / "out").network.layers[0].recurrent.shape == (16, 16)
    evaluation = example.evaluate(tmp_path / "out", tmp_path / "model.onnx", rtl_samples=8)
    print("\n".join(evaluation.lines()))
    assert evaluation.rtl_samples == 8 and evaluation.rtl_identical
    assert evaluation.golden_accuracy > 0.15  # above chance (0.1, +3 sigma on 360 samples): it spikes and separates
    assert evaluation.float_accuracy == result.accuracy  # the network read back from the file is the trained one
