"""Tests for nn.Conv2d in state dicts (snn2hw.importers.state_dict with an input shape): the golden model equals an
independent PyTorch reference; what a state dict cannot say (input shape, pooling, padding, strides) is asked for
or refused in one line."""

import json

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from cli_helpers import run_cli
from conv_models import reference_outputs
from importer_checks import assert_import_fails
from model_factory import export_onnx, make_step_module, save_state_dict
from snn2hw import golden
from snn2hw.errors import Snn2hwError, UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.importers.spatial import FeatureShape
from snn2hw.passes.quantize import quantize


def _leaky(beta=0.5, threshold=1.0, reset="subtract"):
    return snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True)


def _integer(module: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for child in module.children():
            if not isinstance(child, snn.Leaky):
                for param in child.parameters():
                    param.copy_(torch.randint(-3, 4, tuple(param.shape), generator=generator).float())
    return module


NETWORKS = {
    # name: (input shape, module)
    "conv-fc": ((1, 6, 6), lambda: nn.Sequential(nn.Conv2d(1, 4, 3), _leaky(0.5, 2.0), nn.Flatten(),
                                                 nn.Linear(64, 3), _leaky(0.875, 1.0, "zero"))),
    "conv-conv-fc-nobias": ((2, 7, 7), lambda: nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), _leaky(0.75, 1.0, "none"),
                                                             nn.Conv2d(3, 2, 2), _leaky(1.0, 2.0), nn.Flatten(),
                                                             nn.Linear(32, 4), _leaky())),
    "per-channel": ((1, 5, 5), lambda: nn.Sequential(
        nn.Conv2d(1, 3, 2), _leaky(torch.tensor([0.5, 0.25, 1.0]).view(3, 1, 1),
                                   torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)),
        nn.Flatten(), nn.Linear(48, 2), _leaky())),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_golden_model_equals_pytorch_reference(tmp_path, name):
    input_shape, factory = NETWORKS[name]
    module = _integer(factory(), seed=len(name))
    path = save_state_dict(module, tmp_path / "model.pt")
    network, report = quantize(load_model(path, input_shape=",".join(map(str, input_shape))))
    assert report.exact and network.layers[0].name == "layer0"
    rng = np.random.default_rng(4)
    spikes = (rng.random((6, 10, int(np.prod(input_shape)))) < 0.4).astype(np.uint8)
    expected = reference_outputs(module, spikes, input_shape)
    assert expected.any(), "the test network should spike"
    assert np.array_equal(golden.run(network, spikes).output, expected)


def _conv_fc(tmp_path, *middle, n_in=64, padding=0):
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=padding), _leaky(), *middle, nn.Flatten(), nn.Linear(n_in, 3),
                           _leaky())
    return save_state_dict(module, tmp_path / "model.pt")


@pytest.mark.parametrize("middle, n_in, padding", [((nn.MaxPool2d(2),), 16, 0), ((), 144, 1)],
                         ids=["pooling", "padding"])
def test_geometry_a_state_dict_cannot_say_is_refused(tmp_path, middle, n_in, padding):
    path = _conv_fc(tmp_path, *middle, n_in=n_in, padding=padding)
    assert_import_fails(UnsupportedModelError, path, f"layer 'layer{3 + len(middle)}' (nn.Linear) takes {n_in} "
                        f"inputs but its "
                        f"nn.Conv2d input gives 4x4x4 = 64 (stride 1, padding 0, no pooling assumed)",
                        "cannot be recovered from a state dict: export the network to ONNX or NIR",
                        input_shape=FeatureShape(1, 6, 6))


def test_conv_needs_the_input_shape(tmp_path):
    assert_import_fails(UnsupportedModelError, _conv_fc(tmp_path), "layer 'layer0' is an nn.Conv2d: a state dict "
                        "does not hold its input shape; give it with --input-shape C,H,W")


def test_conv_channels_must_match_the_input_shape(tmp_path):
    assert_import_fails(UnsupportedModelError, _conv_fc(tmp_path), "layer 'layer0' (nn.Conv2d): weight (4, 1, 3, 3) "
                        "with groups 1 does not take the 2 channels of its 2x6x6 input", input_shape="2,6,6")


def test_conv_at_the_end_or_after_a_linear_is_refused(tmp_path):
    last = save_state_dict(nn.Sequential(nn.Conv2d(1, 2, 3), _leaky()), tmp_path / "last.pt")
    assert_import_fails(UnsupportedModelError, last, "layer 'layer0' (nn.Conv2d) is not followed by an nn.Linear",
                        input_shape="1,4,4")
    after = save_state_dict(nn.Sequential(nn.Linear(16, 18), _leaky(), nn.Unflatten(1, (2, 3, 3)),
                                          nn.Conv2d(2, 2, 2), _leaky(), nn.Flatten(), nn.Linear(8, 2), _leaky()),
                            tmp_path / "after.pt")
    assert_import_fails(UnsupportedModelError, after, "layer 'layer3' (nn.Conv2d) follows an nn.Linear")


def test_linear_first_checks_the_input_shape(tmp_path):
    module = nn.Sequential(nn.Flatten(), nn.Linear(36, 3), _leaky())
    path = save_state_dict(module, tmp_path / "model.pt")
    assert load_model(path, input_shape="1,6,6").n_in == 36
    assert_import_fails(UnsupportedModelError, path, "layer 'layer1' (nn.Linear) takes 36 inputs but the input "
                        "gives 1x5x5 = 25", input_shape="1,5,5")


def test_input_shape_is_refused_for_onnx(tmp_path):
    path = export_onnx(make_step_module([4, 3]), tmp_path / "model.onnx", dynamo=False)
    assert_import_fails(UnsupportedModelError, path, "an input shape (1,2,2) can only be given for a state dict",
                        input_shape="1,2,2")
    with pytest.raises(Snn2hwError, match="is not C,H,W"):
        load_model(_conv_fc(tmp_path), input_shape="1,6")


def test_cli_input_shape(tmp_path):
    path = _conv_fc(tmp_path)
    missing = run_cli("compile", path, "-o", tmp_path / "a", check=2)
    assert missing.stderr.count("\n") == 1 and "--input-shape C,H,W" in missing.stderr
    bad = run_cli("compile", path, "-o", tmp_path / "b", "--input-shape", "1x6x6", check=2)
    assert "argument --input-shape: input shape '1x6x6' is not C,H,W" in bad.stderr
    done = run_cli("compile", path, "-o", tmp_path / "c", "--input-shape", "1, 6, 6", check=0)
    assert "compiled model.pt: 36 -> 64 -> 3 neurons" in done.stdout


def test_explore_passes_the_input_shape(tmp_path):
    run_cli("explore", _conv_fc(tmp_path), "--input-shape", "1,6,6", "--no-build", "--lanes", "1", "--jobs", "1",
            "-o", tmp_path / "explore", check=0)
    points = json.loads((tmp_path / "explore" / "explore.json").read_text())["points"]
    assert [point["status"] for point in points] == ["ok"]
    refused = run_cli("explore", _conv_fc(tmp_path), "--no-build", "--lanes", "1", "-o", tmp_path / "e2", check=2)
    assert "--input-shape C,H,W" in refused.stderr
