"""Synaptic and RLeaky neurons together with Conv2d / MaxPool2d / Flatten in one ONNX step graph: the imported
network run by the float model spikes exactly like snnTorch, per-channel alpha and beta spread over the feature
map."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from snn2hw import golden
from snn2hw.importers import load_model


class ConvStep(nn.Module):
    """x [1, 1, 6, 6] -> Conv2d(1, 2, 3) -> Synaptic (per-channel alpha, beta) -> MaxPool2d(2) -> Flatten ->
    Linear(8, 3) -> RLeaky(linear_features=3); ``forward(x, syn1, mem1, spk2, mem2)``."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(4)
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.lif1 = snn.Synaptic(alpha=torch.tensor([0.5, 0.75]).reshape(2, 1, 1),
                                 beta=torch.tensor([0.875, 0.5]).reshape(2, 1, 1), threshold=1.0, reset_mechanism="zero")
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc2 = nn.Linear(8, 3)
        self.lif2 = snn.RLeaky(beta=0.75, linear_features=3, threshold=0.75, reset_mechanism="subtract")
        with torch.no_grad():
            for param in [*self.conv1.parameters(), *self.fc2.parameters(), *self.lif2.recurrent.parameters()]:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.8)

    def forward(self, x, syn1, mem1, spk2, mem2):
        s1, syn1, mem1 = self.lif1(self.conv1(x), syn1, mem1)
        s2, mem2 = self.lif2(self.fc2(self.flat(self.pool(s1))), spk2, mem2)
        return s2, syn1, mem1, mem2

    @staticmethod
    def zero_states():
        return [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 3), torch.zeros(1, 3)]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_conv_synaptic_pool_rleaky_spikes_like_snntorch(tmp_path, dynamo):
    net = ConvStep()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 6, 6), *net.zero_states()), str(tmp_path / "model.onnx"),
                          dynamo=dynamo, input_names=["x", "syn1", "mem1", "spk2", "mem2"],
                          output_names=["spk", "syn1_out", "mem1_out", "mem2_out"])
    network = load_model(tmp_path / "model.onnx")
    assert [layer.alpha is not None for layer in network.layers] == [True, False, False]
    assert network.layers[2].recurrent.shape == (3, 3)
    spikes = (np.random.default_rng(0).random((30, 36)) < 0.5).astype(np.uint8)
    states, expected = net.zero_states(), []
    with torch.no_grad():
        for row in spikes:
            spk, syn1, mem1, mem2 = net(torch.tensor(row, dtype=torch.float32).reshape(1, 1, 6, 6), *states)
            states = [syn1, mem1, spk, mem2]
            expected.append(spk[0].numpy())
    expected = np.array(expected, np.uint8)
    assert expected.any() and not expected.all()
    assert np.array_equal(golden.run_float(network, spikes).output[0], expected)
