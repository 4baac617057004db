"""Build small snnTorch networks with known parameters and save them the ways snn2hw imports them.

* :func:`make_step_module`: a single-timestep module ``forward(x, mem1, ..., memN) -> (spk, mem1, ..., memN)``
  with children ``fc1, lif1, fc2, lif2, ...`` (the graph ``torch.onnx.export`` needs);
* :func:`make_sequential`: ``nn.Sequential(Linear, Leaky, ...)`` (state dict keys ``0.weight``, ``1.beta``...);
* :func:`per_neuron_sequential`: the same with per-neuron Leaky tensors, as snnTorch's NIR export needs;
* :func:`export_onnx`, :func:`save_state_dict`, :func:`export_nir`: write them to a file;
* :func:`expected_layers`, :func:`assert_imported`: the parameters an importer must recover from a module.

``betas``, ``thresholds`` and ``resets`` take one value for all layers or one per layer. With
``integer_weights=True`` weights and biases are small integers, exact in every float format.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from torch import nn

from snn2hw.ir import Reset, SourceNetwork

__all__ = ["StepNet", "make_step_module", "make_sequential", "per_neuron_sequential", "step_inputs", "export_onnx",
           "save_state_dict", "export_nir", "ExpectedLayer", "expected_layers", "assert_imported"]


def _per_layer(value, n_layers: int, what: str) -> list:
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value] * n_layers
    if len(values) != n_layers:
        raise ValueError(f"{what}: {len(values)} values for {n_layers} layers")
    return values


def _reset_name(reset) -> str:
    return reset.value if isinstance(reset, Reset) else str(reset)


def _linears_and_leakys(sizes, betas, thresholds, resets, bias, seed, integer_weights, init_hidden):
    n_layers = len(sizes) - 1
    if n_layers < 1:
        raise ValueError(f"sizes {sizes} must name at least an input and an output size")
    generator = torch.Generator().manual_seed(seed)
    betas = _per_layer(betas, n_layers, "betas")
    thresholds = _per_layer(thresholds, n_layers, "thresholds")
    resets = _per_layer(resets, n_layers, "resets")
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        fc = nn.Linear(n_in, n_out, bias=bias)
        with torch.no_grad():
            for param in fc.parameters():
                param.copy_(_random(param.shape, generator, integer_weights))
        lif = snn.Leaky(beta=betas[i], threshold=thresholds[i], reset_mechanism=_reset_name(resets[i]),
                        init_hidden=init_hidden)
        yield fc, lif


def _random(shape, generator, integer_weights: bool) -> torch.Tensor:
    if integer_weights:
        return torch.randint(-4, 5, tuple(shape), generator=generator).float()
    return torch.randn(tuple(shape), generator=generator) * 0.5


class StepNet(nn.Module):
    """One timestep of ``fc1 -> lif1 -> fc2 -> lif2 ...`` with the membranes as explicit inputs and outputs."""

    def __init__(self, sizes: Sequence[int], layers):
        super().__init__()
        self.sizes = tuple(sizes)
        self.n_layers = len(self.sizes) - 1
        for i, (fc, lif) in enumerate(layers, start=1):
            setattr(self, f"fc{i}", fc)
            setattr(self, f"lif{i}", lif)

    def forward(self, x, *mems):
        new_mems = []
        for i, mem in enumerate(mems, start=1):
            x, mem = getattr(self, f"lif{i}")(getattr(self, f"fc{i}")(x), mem)
            new_mems.append(mem)
        return (x, *new_mems)


def make_step_module(sizes: Sequence[int], betas=0.5, thresholds=1.0, resets="subtract", bias: bool = True,
                     seed: int = 0, integer_weights: bool = True) -> StepNet:
    """A :class:`StepNet` with layer sizes ``sizes`` (``[n_in, n_hidden..., n_out]``) and seeded random weights."""
    layers = _linears_and_leakys(sizes, betas, thresholds, resets, bias, seed, integer_weights, init_hidden=False)
    return StepNet(sizes, list(layers))


def make_sequential(sizes: Sequence[int], betas=0.5, thresholds=1.0, resets="subtract", bias: bool = True,
                    seed: int = 0, integer_weights: bool = True) -> nn.Sequential:
    """``nn.Sequential(Linear, Leaky, ...)`` with the same parameters :func:`make_step_module` would give.

    The Leaky layers use ``init_hidden=True`` so that the Sequential runs (returns spikes, keeps membranes);
    this does not change the state dict.
    """
    layers = _linears_and_leakys(sizes, betas, thresholds, resets, bias, seed, integer_weights, init_hidden=True)
    return nn.Sequential(*[module for pair in layers for module in pair])


def export_nir(module: nn.Module, path) -> Path:
    """snnTorch 1.0's ``export_to_nir`` of ``module`` written to ``path``. It needs per-neuron Leaky tensors
    (:func:`per_neuron_sequential`) and ``ignore_dims=[0]`` (drops the sample's batch dimension), else its
    type inference fails."""
    n_in = next(child for child in module.modules() if isinstance(child, nn.Linear)).in_features
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        nir.write(path, export_to_nir(module, torch.zeros(1, n_in), ignore_dims=[0]))
    return Path(path)


def per_neuron_sequential(sizes, betas, thresholds, resets, **kwargs):
    """:func:`make_sequential` with each Leaky's beta and threshold as a tensor of equal per-neuron values."""
    betas = _per_layer(betas, len(sizes) - 1, "betas")
    thresholds = _per_layer(thresholds, len(sizes) - 1, "thresholds")
    return make_sequential(sizes, betas=[torch.full((n,), b) for n, b in zip(sizes[1:], betas)],
                           thresholds=[torch.full((n,), t) for n, t in zip(sizes[1:], thresholds)],
                           resets=resets, **kwargs)


def step_inputs(module: StepNet, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Zero example inputs ``(x, mem1, ..., memN)`` for ``module``."""
    return tuple(torch.zeros(batch, size) for size in module.sizes)


def export_onnx(module: nn.Module, path, dynamo: bool, args: tuple | None = None,
                input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None) -> Path:
    """Export one timestep of ``module`` to ONNX at ``path`` quietly; ``args`` default to :func:`step_inputs`.

    Input/output names default to ``x, mem1..`` and ``spk, mem1_out..`` for a :class:`StepNet`.
    """
    if args is None:
        args = step_inputs(module)
        n_layers = module.n_layers
        input_names = input_names or ["x"] + [f"mem{i}" for i in range(1, n_layers + 1)]
        output_names = output_names or ["spk"] + [f"mem{i}_out" for i in range(1, n_layers + 1)]
    path = Path(path)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=dynamo, input_names=input_names,
                          output_names=output_names)
    return path


def save_state_dict(module: nn.Module, path) -> Path:
    """``torch.save(module.state_dict(), path)``."""
    torch.save(module.state_dict(), path)
    return Path(path)


@dataclass(frozen=True)
class ExpectedLayer:
    """The float parameters of one Linear + Leaky pair, as the module holds them."""

    weight: np.ndarray
    bias: np.ndarray
    beta: float | np.ndarray
    threshold: float | np.ndarray
    reset: Reset


def _leaky_value(tensor: torch.Tensor) -> float | np.ndarray:
    """A Leaky parameter as the IR holds it: one float when its elements are equal, else the per-neuron array."""
    flat = tensor.detach().double().reshape(-1).numpy()
    return float(flat[0]) if np.all(flat == flat[0]) else flat


def expected_layers(module: nn.Module) -> list[ExpectedLayer]:
    """The (Linear, Leaky) parameters of ``module``, in registration order."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    leakys = [m for m in module.modules() if isinstance(m, snn.Leaky)]
    assert len(linears) == len(leakys), "module must pair every Linear with a Leaky"
    layers = []
    for fc, lif in zip(linears, leakys):
        weight = fc.weight.detach().double().numpy()
        bias = fc.bias.detach().double().numpy() if fc.bias is not None else np.zeros(weight.shape[0])
        layers.append(ExpectedLayer(weight=weight, bias=bias, beta=_leaky_value(lif.beta),
                                    threshold=_leaky_value(lif.threshold),
                                    reset=Reset.from_snntorch_val(int(lif.reset_mechanism_val))))
    return layers


def assert_imported(network: SourceNetwork, module: nn.Module) -> None:
    """Assert that ``network`` holds exactly the parameters of ``module`` (no tolerance)."""
    expected = expected_layers(module)
    assert len(network.layers) == len(expected), f"{len(network.layers)} layers imported, {len(expected)} expected"
    for layer, want in zip(network.layers, expected):
        assert np.array_equal(layer.weight, want.weight), f"{layer.name}: weight differs"
        assert np.array_equal(layer.bias, want.bias), f"{layer.name}: bias differs"
        assert np.array_equal(layer.beta, want.beta), f"{layer.name}: beta {layer.beta} != {want.beta}"
        assert np.array_equal(layer.threshold, want.threshold), \
            f"{layer.name}: threshold {layer.threshold} != {want.threshold}"
        assert layer.reset is want.reset, f"{layer.name}: reset {layer.reset} != {want.reset}"
