"""Tests for the ONNX importer on convolutional snnTorch step exports (both exporters): Conv, MaxPool of spikes
and Flatten/Reshape lowered to dense layers whose golden model equals an independent PyTorch reference exactly;
unsupported spatial constructs are refused in one line naming the node."""

import numpy as np
import onnx
import pytest
import snntorch as snn
import torch
from onnx import helper

from conv_models import export_spatial_onnx, make_spatial_step_module, reference_outputs
from importer_checks import assert_import_fails
from snn2hw import golden
from snn2hw.errors import UnsupportedModelError
from snn2hw.importers import load_model
from snn2hw.ir import Reset
from snn2hw.passes.quantize import quantize

ARCHITECTURES = {
    # name: (input shape, spec)
    "conv-pool-fc": ((1, 6, 6), [("conv", 4, 3, 1, 1), ("lif", 0.5, 2.0, "subtract"), ("pool", 2), ("flatten",),
                                 ("fc", 3), ("lif", 0.875, 1.0, "zero")]),
    "conv-stride2-fc": ((2, 8, 8), [("conv", 4, 3, 2, 1), ("lif", 0.75, 3.0, "zero"), ("flatten",), ("fc", 5),
                                    ("lif", 0.5, 2.0, "subtract")]),
    "conv-conv-pool": ((2, 8, 8), [("conv", 3, 3, 1, 1), ("lif", 0.5, 1.0, "none"), ("conv", 4, 3, 2, 0),
                                   ("lif", 1.0, 2.0, "subtract"), ("pool", 3)]),
    "pool-input-fc-unflatten-conv": ((1, 6, 6), [("pool", 2), ("flatten",), ("fc", 18), ("lif", 0.5, 1.0, "zero"),
                                                 ("unflatten", (2, 3, 3)), ("conv", 2, 2, 1, 0),
                                                 ("lif", 0.25, 1.0, "subtract")]),
    "per-channel-beta": ((1, 5, 5), [("conv", 3, 3, 1, 1),
                                     ("lif", torch.tensor([0.5, 0.25, 1.0]).view(3, 1, 1),
                                      torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1), "subtract"),
                                     ("pool", 2), ("flatten",), ("fc", 2), ("lif", 0.5, 1.0, "subtract")]),
}


def _spikes(n_in, seed=0, samples=6, steps=10):
    rng = np.random.default_rng(seed)
    return (rng.random((samples, steps, n_in)) < rng.choice([0.2, 0.5], (samples, 1, 1))).astype(np.uint8)


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_golden_model_equals_pytorch_reference(tmp_path, architecture, dynamo):
    input_shape, spec = ARCHITECTURES[architecture]
    module = make_spatial_step_module(input_shape, spec, seed=len(architecture))
    source = load_model(export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=dynamo))
    network, report = quantize(source)
    assert report.exact
    spikes = _spikes(module.n_in)
    expected = reference_outputs(module, spikes, input_shape)
    assert expected.any(), "the test network should spike"
    assert np.array_equal(golden.run(network, spikes).output, expected)


@pytest.mark.parametrize("dynamo", [False, True])
def test_layers_of_conv_pool_fc(tmp_path, dynamo):
    input_shape, spec = ARCHITECTURES["conv-pool-fc"]
    module = make_spatial_step_module(input_shape, spec)
    layers = load_model(export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=dynamo)).layers
    assert [layer.name for layer in layers] == ["conv1", "pool2", "fc4"]
    assert [(layer.n_in, layer.n_out) for layer in layers] == [(36, 144), (144, 36), (36, 3)]
    assert [layer.fixed for layer in layers] == [False, True, False]
    assert [layer.reset for layer in layers] == [Reset.SUBTRACT, Reset.NONE, Reset.ZERO]
    assert (layers[0].beta, layers[0].threshold, layers[2].beta) == (0.5, 2.0, 0.875)
    assert np.array_equal(layers[0].bias, np.repeat(module.conv1.bias.detach().numpy(), 36))


@pytest.mark.parametrize("dynamo", [False, True])
def test_max_pool_of_currents_is_refused(tmp_path, dynamo):
    module = make_spatial_step_module((1, 6, 6), [("conv", 2, 3, 1, 1), ("pool", 2), ("lif", 0.5, 1.0, "zero")])
    # the pool precedes the Leaky: the membrane has the pooled shape
    path = export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=dynamo)
    assert_import_fails(UnsupportedModelError, path, "(op MaxPool): it pools the currents of", "(op Conv)",
                        "only max pooling of spikes")


def _edit_node(path, op_type, **attributes):
    model = onnx.load(str(path))
    node = next(node for node in model.graph.node if node.op_type == op_type)
    for name, value in attributes.items():
        for attr in [attr for attr in node.attribute if attr.name == name]:
            node.attribute.remove(attr)
        node.attribute.append(helper.make_attribute(name, value))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("op_type, attributes, fragments", [
    ("MaxPool", {"ceil_mode": 1}, ["ceil_mode=1 is not supported"]),
    ("MaxPool", {"dilations": [2, 2]}, ["dilations=[2, 2] is not supported"]),
    ("MaxPool", {"auto_pad": "SAME_UPPER"}, ["auto_pad SAME_UPPER is not supported"]),
    ("Conv", {"auto_pad": "VALID"}, ["(op Conv): auto_pad VALID is not supported"]),
    ("Conv", {"group": 2}, ["(op Conv): weight (4, 1, 3, 3) with groups 2 does not take the 1 channels"]),
])
def test_unsupported_attributes_are_refused_naming_the_node(tmp_path, op_type, attributes, fragments):
    module = make_spatial_step_module(*ARCHITECTURES["conv-pool-fc"])
    path = _edit_node(export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=False), op_type, **attributes)
    assert_import_fails(UnsupportedModelError, path, f"(op {op_type})", *fragments)


def test_conv1d_and_unknown_input_shape_are_refused(tmp_path):
    module = make_spatial_step_module(*ARCHITECTURES["conv-pool-fc"])
    path = export_spatial_onnx(module, tmp_path / "model.onnx", dynamo=False)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, str(tmp_path / "dynamic.onnx"))
    assert_import_fails(UnsupportedModelError, tmp_path / "dynamic.onnx", "(op Conv): its input 'x' has an unknown "
                        "shape; 2-D convolution and pooling need a static [1, C, H, W] input")

    class Conv1dStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(1, 2, 3)
            self.lif1 = snn.Leaky(beta=0.5)

        def forward(self, x, mem):
            return self.lif1(self.conv1(x), mem)

    torch.onnx.export(Conv1dStep(), (torch.zeros(1, 1, 6), torch.zeros(1, 2, 4)), str(tmp_path / "c1.onnx"),
                      dynamo=False)
    assert_import_fails(UnsupportedModelError, tmp_path / "c1.onnx", "(op Conv): weight has shape (2, 1, 3); only "
                        "2-D convolutions (nn.Conv2d) are supported")
