"""A tiny convolutional snnTorch network (Conv2d -> Leaky -> MaxPool2d -> Flatten -> Linear -> Leaky) exported to
ONNX, compiled for ice40 and simulated in Verilator (``snn2hw simulate``): bit-exact with an independent PyTorch
reference of the integer contract, and with the golden model."""

import numpy as np

from cli_helpers import run_cli
from conv_models import export_spatial_onnx, make_spatial_step_module, reference_outputs

INPUT_SHAPE = (1, 6, 6)
SPEC = [("conv", 2, 3, 1, 1), ("lif", 0.5, 2.0, "subtract"), ("pool", 2), ("flatten",), ("fc", 3),
        ("lif", 0.875, 1.0, "zero")]


def test_conv_pool_model_rtl_equals_pytorch_reference(tmp_path):
    module = make_spatial_step_module(INPUT_SHAPE, SPEC, seed=5)
    path = export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=True)
    out = tmp_path / "out"
    result = run_cli("compile", path, "--board", "ice40", "-o", out, "--timesteps", 8, check=0)
    assert "36 -> 72 -> 18 -> 3 neurons" in result.stdout and "compiled exactly as given" in result.stdout
    rng = np.random.default_rng(2)
    spikes = (rng.random((4, 8, 36)) < rng.choice([0.2, 0.5], (4, 1, 1))).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "rtl.npy", check=0)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "golden.npy", "--engine",
            "golden", check=0)
    expected = reference_outputs(module, spikes, INPUT_SHAPE)
    assert expected.any(), "the test network should spike"
    assert np.array_equal(np.load(tmp_path / "golden.npy"), expected)
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), expected)
