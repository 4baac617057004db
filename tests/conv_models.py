"""Small convolutional snnTorch networks for the importer and end-to-end tests, and an independent reference.

:func:`make_spatial_step_module` builds a :class:`SpatialStepNet` from a list of layer specs with seeded small
integer weights (exact in every float format). :func:`reference_outputs` runs such a module over spike trains with
PyTorch's own conv2d / max_pool2d / flatten / linear (float64, exact on integers) and the integer LIF contract
(README "Numeric contract": the floored leak, saturation, reset at t by the spike of t-1), sharing no code with
snn2hw's dense lowering or golden model.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

__all__ = ["SpatialStepNet", "Unflatten", "make_spatial_step_module", "export_spatial_onnx", "reference_outputs"]


class SpatialStepNet(nn.Module):
    """One timestep of a chain of modules, ``forward(x, mem1, ..., memN) -> (spk, mem1, ..., memN)``: each
    snn.Leaky's membrane is an explicit input and output. ``input_shape`` is (C, H, W); ``mem_shapes`` the
    membranes' shapes, with the batch dimension of 1 (snnTorch 1.0's Leaky replaces a membrane of another shape
    than its input by zeros, so a [C, H, W] membrane would be exported as a constant)."""

    def __init__(self, input_shape, named_modules, mem_shapes):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.mem_shapes = [tuple(shape) for shape in mem_shapes]
        for name, module in named_modules:
            self.add_module(name, module)

    def forward(self, x, *mems):
        new_mems = []
        for module in self.children():
            if isinstance(module, snn.Leaky):
                x, mem = module(x, mems[len(new_mems)])
                new_mems.append(mem)
            else:
                x = module(x)
        return (x, *new_mems)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))


class Unflatten(nn.Module):
    """``x.reshape(-1, C, H, W)``: a Reshape to a constant shape in both exporters (the TorchScript exporter
    computes ``nn.Unflatten``'s shape at run time with Shape/Slice/Concat nodes, which snn2hw does not evaluate)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(-1, *self.shape)


def make_spatial_step_module(input_shape, spec, seed: int = 0) -> SpatialStepNet:
    """A :class:`SpatialStepNet` from ``spec``, a list of tuples: ``("conv", out_channels, kernel, stride,
    padding)``, ``("fc", out_features)``, ``("lif", beta, threshold, reset)`` (beta/threshold floats or tensors),
    ``("pool", kernel)``, ``("flatten",)``, ``("unflatten", (C, H, W))``. Modules are named ``conv1``, ``lif1``,
    ``pool2``... after the layer they belong to."""
    generator = torch.Generator().manual_seed(seed)
    probe, modules, mem_shapes, index = torch.zeros(1, *input_shape), [], [], 0
    for kind, *args in spec:
        if kind == "lif":
            beta, threshold, reset = args
            module = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset)
            mem_shapes.append(tuple(probe.shape))
            modules.append((f"lif{index}", module))
            continue
        index += 1
        if kind == "conv":
            module = nn.Conv2d(probe.shape[1], args[0], args[1], stride=args[2], padding=args[3])
        elif kind == "fc":
            module = nn.Linear(probe.shape[1], args[0])
        elif kind == "pool":
            module = nn.MaxPool2d(args[0])
        elif kind == "flatten":
            module = nn.Flatten()
        elif kind == "unflatten":
            module = Unflatten(args[0])
        else:
            raise ValueError(f"unknown layer spec {kind!r}")
        with torch.no_grad():
            for param in module.parameters():
                param.copy_(torch.randint(-3, 4, tuple(param.shape), generator=generator).float())
            probe = module(probe)
        modules.append((f"{kind}{index}", module))
    return SpatialStepNet(input_shape, modules, mem_shapes)


def export_spatial_onnx(module: SpatialStepNet, path, dynamo: bool) -> Path:
    """One timestep of ``module`` exported to ONNX (inputs ``x, mem1..``, outputs ``spk, mem1_out..``)."""
    args = (torch.zeros(1, *module.input_shape), *(torch.zeros(shape) for shape in module.mem_shapes))
    n = len(module.mem_shapes)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=dynamo,
                          input_names=["x"] + [f"mem{i}" for i in range(1, n + 1)],
                          output_names=["spk"] + [f"mem{i}_out" for i in range(1, n + 1)])
    return Path(path)


def _reset(reset_val: int) -> str:
    return {0: "subtract", 1: "zero", 2: "none"}[reset_val]


def reference_outputs(module: nn.Module, spikes: np.ndarray, input_shape, state_bits: int = 16) -> np.ndarray:
    """The integer contract on ``module``'s children (synapses by PyTorch in float64, exact on integers) over
    0/1 spikes [B, T, C*H*W]: output spikes [B, T, n_out] (uint8). Every beta must be exact in 8 fraction bits
    (then floor(beta_q v / 2^8) = floor(beta v))."""
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    children = [child if isinstance(child, snn.Leaky) else copy.deepcopy(child).double()
                for child in module.children()]
    x_all = torch.from_numpy(spikes).double()
    batch, steps = spikes.shape[:2]
    state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    outputs = []
    with torch.no_grad():
        for t in range(steps):
            x = x_all[:, t].reshape(batch, *input_shape)
            for position, child in enumerate(children):
                if not isinstance(child, snn.Leaky):
                    x = child(x)
                    continue
                beta = child.beta.double().clamp(0, 1)
                assert torch.equal(beta * 256, torch.round(beta * 256)), "beta must be exact in 8 fraction bits"
                threshold = child.threshold.double()
                v, s = state.get(position, (torch.zeros_like(x), torch.zeros_like(x)))
                reset = _reset(int(child.reset_mechanism_val))
                if reset == "zero":
                    u = torch.floor(beta * (1 - s) * v) + x
                else:
                    u = torch.floor(beta * v) + x - (s * threshold if reset == "subtract" else 0)
                v = u.clamp(lo, hi)
                s = (v > threshold).double()
                state[position] = (v, s)
                x = s
            outputs.append(x.reshape(batch, -1))
    return torch.stack(outputs, dim=1).numpy().astype(np.uint8)
