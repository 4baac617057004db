"""snnTorch networks mixing Leaky, Synaptic, RLeaky and RSynaptic neurons, the snnTorch run they are checked
against, and the contract reference evaluated on their own parameters.

:class:`MixedStepNet` is one timestep of ``fc1 -> lif1 -> fc2 -> lif2 ...`` whose states are explicit inputs and
outputs in snnTorch's argument order: ``forward(x, *states) -> (spk, *new_states)`` with per layer ``(mem,)``
(Leaky), ``(syn, mem)`` (Synaptic), ``(spk, mem)`` (RLeaky) or ``(spk, syn, mem)`` (RSynaptic). The last layer's
new spikes are the first output only (a recurrent neuron's spike state is not output twice).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

from reference_lif import reference_run

__all__ = ["Neuron", "MixedStepNet", "run_snntorch", "export_mixed", "sequential_of", "contract_outputs"]


@dataclass(frozen=True)
class Neuron:
    """One layer's neuron: kind "leaky", "synaptic", "dense" (RLeaky all_to_all), "one_to_one" (RLeaky V),
    "synaptic_dense" or "synaptic_one_to_one" (RSynaptic all_to_all or V)."""

    kind: str
    beta: object = 0.75
    threshold: object = 1.5
    reset: str = "subtract"
    alpha: object = 0.5
    V: object = 0.5

    def module(self, n_out: int, init_hidden: bool = False) -> nn.Module:
        common = dict(beta=self.beta, threshold=self.threshold, reset_mechanism=self.reset, init_hidden=init_hidden)
        if self.kind == "leaky":
            return snn.Leaky(**common)
        if self.kind == "synaptic":
            return snn.Synaptic(alpha=self.alpha, **common)
        if self.kind == "dense":
            return snn.RLeaky(linear_features=n_out, **common)
        if self.kind == "one_to_one":
            return snn.RLeaky(all_to_all=False, V=self.V, **common)
        if self.kind == "synaptic_dense":
            return snn.RSynaptic(alpha=self.alpha, linear_features=n_out, **common)
        if self.kind == "synaptic_one_to_one":
            return snn.RSynaptic(alpha=self.alpha, all_to_all=False, V=self.V, **common)
        raise ValueError(self.kind)

    @property
    def synaptic(self) -> bool:
        return self.kind.startswith("synaptic")

    @property
    def recurrence(self) -> str | None:
        """None, "dense" or "one_to_one"."""
        return next((form for form in ("dense", "one_to_one") if self.kind.endswith(form)), None)

    @property
    def roles(self) -> list[str]:
        """The neuron's state arguments, in snnTorch's order."""
        return ["spk"] * bool(self.recurrence) + ["syn"] * self.synaptic + ["mem"]

    @property
    def n_states(self) -> int:
        return len(self.roles)


class MixedStepNet(nn.Module):
    def __init__(self, sizes, neurons, seed: int = 0, integer_weights: bool = False):
        super().__init__()
        self.sizes, self.neurons = tuple(sizes), tuple(neurons)
        generator = torch.Generator().manual_seed(seed)
        for i, (n_in, n_out, neuron) in enumerate(zip(sizes, sizes[1:], neurons), start=1):
            fc, lif = nn.Linear(n_in, n_out), neuron.module(n_out)
            linears = [fc, lif.recurrent] if neuron.recurrence == "dense" else [fc]
            with torch.no_grad():
                for param in (param for linear in linears for param in linear.parameters()):
                    param.copy_(_random(param.shape, generator, integer_weights))
            setattr(self, f"fc{i}", fc)
            setattr(self, f"lif{i}", lif)

    def forward(self, x, *states):
        states, new = list(states), []
        for i, neuron in enumerate(self.neurons, start=1):
            lif, current = getattr(self, f"lif{i}"), getattr(self, f"fc{i}")(x)
            taken, states = states[:neuron.n_states], states[neuron.n_states:]
            x, *updated = lif(current, *taken)
            if neuron.recurrence:
                updated = [x, *updated] if i < len(self.neurons) else updated
            new += updated
        return (x, *new)

    def zero_states(self) -> list[torch.Tensor]:
        return [torch.zeros(1, n) for n, neuron in zip(self.sizes[1:], self.neurons) for _ in range(neuron.n_states)]

    def state_names(self) -> tuple[list[str], list[str]]:
        inputs = [f"{role}{i}" for i, n in enumerate(self.neurons, 1) for role in n.roles]
        outputs = [name + "_out" for name in inputs]
        if self.neurons[-1].recurrence:
            outputs.remove(f"spk{len(self.neurons)}_out")
        return ["x", *inputs], ["spk", *outputs]


def _random(shape, generator, integer_weights: bool) -> torch.Tensor:
    if integer_weights:
        return torch.randint(-3, 4, tuple(shape), generator=generator).float()
    return torch.randn(tuple(shape), generator=generator) * 0.6


def run_snntorch(net: MixedStepNet, spikes: np.ndarray) -> np.ndarray:
    """snnTorch's own output spikes [T, n_out] for 0/1 ``spikes`` [T, n_in], one timestep at a time."""
    states, out = net.zero_states(), []
    last = net.neurons[-1]
    with torch.no_grad():
        for row in spikes:
            spk, *states = net(torch.tensor(row[None], dtype=torch.float32), *states)
            if last.recurrence:     # its spike state, before its other states
                states.insert(len(states) - last.n_states + 1, spk)
            out.append(spk[0].numpy())
    return np.array(out).astype(np.uint8)


def export_mixed(net: MixedStepNet, path, dynamo: bool) -> Path:
    inputs, outputs = net.state_names()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, net.sizes[0]), *net.zero_states()), str(path), dynamo=dynamo,
                          input_names=inputs, output_names=outputs)
    return Path(path)


def sequential_of(net: MixedStepNet, init_hidden: bool = False) -> nn.Sequential:
    """``nn.Sequential(fc1, lif1, fc2, ...)`` with ``net``'s parameters (state dict keys ``0.weight``, ``1.alpha``):
    the same modules, or copies with ``init_hidden=True`` (what snnTorch's ``export_to_nir`` can trace)."""
    pairs = [(getattr(net, f"fc{i}"), getattr(net, f"lif{i}")) for i in range(1, len(net.neurons) + 1)]
    if not init_hidden:
        return nn.Sequential(*[module for pair in pairs for module in pair])
    hidden = nn.Sequential(*[module for (fc, _), neuron in zip(pairs, net.neurons)
                             for module in (nn.Linear(fc.in_features, fc.out_features),
                                            neuron.module(fc.out_features, init_hidden=True))])
    hidden.load_state_dict(sequential_of(net).state_dict())
    return hidden


def _per_neuron(tensor, n: int, frac_bits: int | None = None) -> list[int]:
    values = np.broadcast_to(tensor.detach().double().numpy().reshape(-1), (n,))
    if frac_bits is not None:
        values = np.round(values * (1 << frac_bits))
    assert np.all(values == np.round(values)), values
    return values.astype(int).tolist()


def contract_outputs(net: MixedStepNet, state_bits: int, spikes: np.ndarray, frac_bits: int = 8) -> np.ndarray:
    """The README contract (tests/reference_lif.py) evaluated on ``net``'s own integer-valued parameters,
    [B, T, n_out] for spikes [B, T, n_in]; a dense recurrence's bias adds to the layer's bias."""
    layers = []
    for i, (n, neuron) in enumerate(zip(net.sizes[1:], net.neurons), start=1):
        fc, lif = getattr(net, f"fc{i}"), getattr(net, f"lif{i}")
        bias = _per_neuron(fc.bias, n)
        layer = {"weight": _per_neuron_rows(fc.weight), "bias": bias, "frac_bits": frac_bits,
                 "beta_q": _per_neuron(lif.beta.clamp(0, 1), n, frac_bits), "threshold": _per_neuron(lif.threshold, n),
                 "reset": neuron.reset}
        if neuron.synaptic:
            layer["alpha_q"] = _per_neuron(lif.alpha.clamp(0, 1), n, frac_bits)
        if neuron.recurrence == "dense":
            layer["recurrent"] = _per_neuron_rows(lif.recurrent.weight)
            layer["bias"] = [b + r for b, r in zip(bias, _per_neuron(lif.recurrent.bias, n))]
        if neuron.recurrence == "one_to_one":
            layer["recurrent"] = _per_neuron(lif.V, n)
        layers.append(layer)
    return np.array([reference_run(layers, state_bits, sample) for sample in spikes], np.uint8)


def _per_neuron_rows(tensor) -> list[list[int]]:
    values = tensor.detach().double().numpy()
    assert np.all(values == np.round(values)), values
    return values.astype(int).tolist()
