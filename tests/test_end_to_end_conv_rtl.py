"""A tiny convolutional snnTorch network (Conv2d -> Leaky -> MaxPool2d -> Flatten -> Linear -> Leaky) exported to
ONNX, compiled for ice40 and simulated in Verilator (``snn2hw simulate``): bit-exact with an independent PyTorch
reference of the integer contract, and with the golden model."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("lanes", ["8", "auto"])
def test_a_16x16_map_with_8_channels_fits_the_ice40_on_the_weight_shared_core(tmp_path, lanes):
    """Unrolled, this conv would be a 2048 x 256 matrix. With 8 lanes its weight memory is 9 kernel words and its
    layer core integrates each input spike in up to 9 cycles (one per kernel offset); placed automatically it
    integrates by window, the kernel in logic, a cycle per spike. Both in Verilator as the reference says."""
    import json

    shape, spec = (1, 16, 16), [("conv", 8, 3, 1, 1), ("lif", 0.5, 2.0, "subtract"), ("flatten",), ("fc", 4),
                                ("lif", 0.875, 3.0, "zero")]
    module = make_spatial_step_module(shape, spec, seed=3)
    out = tmp_path / "out"
    run_cli("compile", export_spatial_onnx(module, tmp_path / "m.onnx", dynamo=False), "--board", "ice40", "-o",
            out, "--timesteps", 6, "--state-bits", 10, "--lanes", lanes, check=0)
    conv = json.loads((out / "network.json").read_text())["mappings"][0]
    assert conv["lanes"] == 8 and conv["groups"] == 256
    by_window = lanes == "auto"
    assert conv.get("window", False) == by_window
    assert conv["weight_memory_bits"] == (0 if by_window else 9 * 8 * conv["weight_bits"])
    rng = np.random.default_rng(4)
    spikes = (rng.random((3, 6, 256)) < 0.15).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "rtl.npy", "--stats",
            tmp_path / "stats.json", check=0)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "golden.npy", "--engine",
            "golden", "--stats", tmp_path / "model.json", check=0)
    expected = reference_outputs(module, spikes, shape, state_bits=10)
    assert expected.any()
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), expected)
    cycles = [json.loads((tmp_path / name).read_text())["cycles_per_inference"] for name in ("stats.json", "model.json")]
    assert cycles[0] == cycles[1]
