"""Seeded random integer networks for tests."""

import numpy as np

from snn2hw.ir import Layer, Network, Reset


BETAS_Q = [0, 1, 128, 200, 240, 255, 256]     # beta_q at frac_bits 8


NEURON_KINDS = ("leaky", "synaptic", "one_to_one", "dense", "synaptic_one_to_one", "synaptic_dense")


def random_network(seed: int, sizes=None, state_bits=None, weight_range=8, bias=None, per_neuron=False,
                   kinds=("leaky",)) -> Network:
    """A random integer network; ``per_neuron``: every layer draws one beta_q and threshold per neuron;
    ``kinds``: each layer's neuron is drawn from these NEURON_KINDS (Leaky, Synaptic, RLeaky with one-to-one
    or dense V, RSynaptic with one-to-one or dense V)."""
    rng = np.random.default_rng(seed)
    if sizes is None:
        sizes = [int(rng.integers(1, 12)) for _ in range(int(rng.integers(2, 5)))]
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        with_bias = rng.random() < 0.5 if bias is None else bias
        layers.append(Layer(
            name=f"fc{index + 1}",
            weight=rng.integers(-weight_range, weight_range + 1, (n_out, n_in)),
            bias=rng.integers(-4, 5, n_out) if with_bias else np.zeros(n_out, np.int64),
            beta_q=rng.choice(BETAS_Q, n_out) if per_neuron else int(rng.choice(BETAS_Q)), frac_bits=8,
            threshold=rng.integers(1, 12, n_out) if per_neuron else int(rng.integers(1, 12)),
            reset=list(Reset)[int(rng.integers(0, 3))], **_neuron_kind(rng, kinds, n_out, weight_range, per_neuron)))
    bits = state_bits if state_bits is not None else int(rng.choice([4, 6, 8, 12, 16]))
    return Network(layers=tuple(layers), state_bits=bits)


def _neuron_kind(rng, kinds, n_out: int, weight_range: int, per_neuron: bool) -> dict:
    """Layer keyword arguments for a neuron drawn from ``kinds`` (nothing drawn for Leaky-only networks)."""
    if tuple(kinds) == ("leaky",):
        return {}
    kind = kinds[int(rng.integers(0, len(kinds)))]
    params = {}
    if kind.startswith("synaptic"):
        params["alpha_q"] = rng.choice(BETAS_Q, n_out) if per_neuron else int(rng.choice(BETAS_Q))
    if kind.endswith("one_to_one"):
        params["recurrent"] = rng.integers(-weight_range, weight_range + 1, n_out)
    if kind.endswith("dense"):
        params["recurrent"] = rng.integers(-weight_range, weight_range + 1, (n_out, n_out))
    return params


def random_spikes(seed: int, samples: int, steps: int, n_in: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    rates = rng.choice([0.0, 0.1, 0.4, 0.8, 1.0], size=(samples, 1, 1))
    return (rng.random((samples, steps, n_in)) < rates).astype(np.uint8)
