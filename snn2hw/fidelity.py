"""Fidelity of a compiled integer network to the float model it came from, as snnTorch computes it.

**Reference.** The source network run in snnTorch when it is installed: per layer an ``nn.Linear`` holding
the imported float W and b and the layer's neuron, ``snn.Leaky(beta, threshold, reset_mechanism)`` or
``snn.Synaptic`` (+ alpha), ``snn.RLeaky`` (+ V) or ``snn.RSynaptic`` (+ alpha and V), with snnTorch's default
``reset_delay=True`` (what the importers assume), float32 on the CPU, membranes zero at the start of every
sample. Without snnTorch, :func:`snn2hw.golden.run_float` (the same equations in numpy float64).

**Figures.** On the same 0/1 input spikes [B, T, n_in]:

* ``spike_agreement``: the fraction of output spike entries [B, T, n_out] that are equal;
* ``class_agreement``: the fraction of samples with the same predicted class, the class being the output
  neuron with the most spikes over all timesteps, ties going to the lowest index (so a silent output
  predicts class 0); for a network ending in a non-spiking readout (LI), the output neuron with the largest
  membrane summed over all timesteps (:func:`readout_class`);
* ``saturated``: the fraction of the integer network's membrane values (every layer, sample, timestep)
  at a bound of the B-bit membrane, where the integer network departs from the unbounded float one.

**Stimuli.** The user's spikes, or :func:`random_stimuli`: 256 rate-coded samples, seed 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import golden
from .errors import Snn2hwError
from .ir import Network, SourceNetwork
from .spike_files import load_npy

__all__ = ["Fidelity", "measure", "random_stimuli", "load_stimuli", "predicted_class", "readout_class",
           "float_reference", "snntorch_runner", "random_stimuli_description", "RANDOM_SAMPLES", "RANDOM_SEED"]

RANDOM_SAMPLES = 256
RANDOM_SEED = 0


@dataclass(frozen=True)
class Fidelity:
    """Agreement of the integer network with the float reference on ``samples`` stimuli (module docstring)."""

    samples: int
    timesteps: int
    stimulus: str
    reference: str
    spike_agreement: float
    class_agreement: float
    saturated: float

    def to_json(self) -> dict:
        return {"samples": self.samples, "timesteps": self.timesteps, "stimulus": self.stimulus,
                "reference": self.reference, "spike_agreement": self.spike_agreement,
                "class_agreement": self.class_agreement, "saturated": self.saturated}


def random_stimuli(n_in: int, timesteps: int, samples: int = RANDOM_SAMPLES, seed: int = RANDOM_SEED) -> np.ndarray:
    """Rate-coded random stimuli, uint8 [samples, timesteps, n_in]: each sample gives each input an intensity
    drawn uniformly from [0, 1), and the input spikes with that probability at every timestep."""
    rng = np.random.default_rng(seed)
    intensity = rng.random((samples, 1, n_in))
    return (rng.random((samples, timesteps, n_in)) < intensity).astype(np.uint8)


def random_stimuli_description(seed: int = RANDOM_SEED) -> str:
    """How :func:`random_stimuli` with ``seed`` is named in reports."""
    return f"random rate-coded stimuli (seed {seed})"


def load_stimuli(path: str, n_in: int) -> np.ndarray:
    """The 0/1 spikes in the ``.npy`` file ``path`` as uint8 [B, T, n_in] ([T, n_in] is one sample)."""
    array = load_npy(path, "fidelity input")
    try:
        return golden.as_batch(array, n_in)
    except Snn2hwError as exc:
        raise Snn2hwError(f"fidelity input {path!r}: {exc}") from None


def predicted_class(output: np.ndarray) -> np.ndarray:
    """Per sample, the output neuron with the most spikes over [B, T, n_out]; ties go to the lowest index."""
    return np.argmax(np.asarray(output).sum(axis=1), axis=1)


def readout_class(membranes: np.ndarray) -> np.ndarray:
    """Per sample, the output neuron with the largest membrane summed over [B, T, n_out]; ties go to the lowest
    index. Invariant under the positive scale quantization folds into a layer."""
    return np.argmax(np.asarray(membranes).sum(axis=1), axis=1)


def _leaky_param(value):
    """A layer's beta or threshold for ``snn.Leaky``: a float, or a float32 tensor of per-neuron values."""
    import torch

    return torch.tensor(np.asarray(value), dtype=torch.float32) if np.ndim(value) else float(value)


def _snntorch_neuron(layer):
    """The snnTorch neuron of ``layer`` (``Leaky``, ``Synaptic``, ``RLeaky`` or, with alpha and a recurrence,
    ``RSynaptic``) and a step function (current, state) -> (spikes, state), with the number of state tensors
    (all zero at the start)."""
    import snntorch

    common = {"beta": _leaky_param(layer.beta), "threshold": _leaky_param(layer.threshold),
              "reset_mechanism": layer.reset.value}
    synaptic = getattr(layer, "alpha", None) is not None
    if synaptic:
        common["alpha"] = _leaky_param(layer.alpha)
    if layer.recurrent is not None:
        neuron = _recurrent_neuron(snntorch.RSynaptic if synaptic else snntorch.RLeaky, layer, common)

        def step(cur, state):
            spk, *new = neuron(cur, *state)
            return spk, (spk, *new)
        return step, 3 if synaptic else 2
    if synaptic:
        neuron = snntorch.Synaptic(**common)

        def step(cur, state):
            spk, syn, mem = neuron(cur, *state)
            return spk, (syn, mem)
        return step, 2
    neuron = snntorch.Leaky(**common)

    def step(cur, state):
        spk, mem = neuron(cur, *state)
        return spk, (mem,)
    return step, 1


def _recurrent_neuron(cls, layer, common: dict):
    """An ``RLeaky`` or ``RSynaptic`` holding ``layer``'s V: dense (a bias-free ``linear_features`` recurrence)
    or one-to-one."""
    import torch

    v = np.asarray(layer.recurrent, np.float32)
    if v.ndim == 1:
        return cls(all_to_all=False, V=torch.from_numpy(v), **common)
    neuron = cls(all_to_all=True, linear_features=layer.n_out, **common)
    with torch.no_grad():
        neuron.recurrent.weight.copy_(torch.from_numpy(v))
        neuron.recurrent.bias.zero_()
    return neuron


def snntorch_runner(network: SourceNetwork | Network, membranes: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``network`` in snnTorch (float32) on uint8 spikes [B, T, n_in], giving uint8
    [B, T, n_out] (with ``membranes``: those and the last layer's float32 membranes [B, T, n_out]). Works on any
    chain of layers with ``weight``, ``bias``, ``beta``, ``threshold``, ``reset``, ``alpha`` (Synaptic) and
    ``recurrent`` (RLeaky; both: RSynaptic): the float source network or an integer network."""
    import torch

    layers = []
    for layer in network.layers:
        linear = torch.nn.Linear(layer.n_in, layer.n_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.asarray(layer.weight, np.float32)))
            linear.bias.copy_(torch.from_numpy(np.asarray(layer.bias, np.float32)))
        layers.append((linear, *_snntorch_neuron(layer)))

    def run(spikes: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(spikes)).float()
        with torch.no_grad():
            states = [tuple(torch.zeros(x.shape[0], linear.out_features) for _ in range(count))
                      for linear, _, count in layers]
            outputs, last_membranes = [], []
            for t in range(x.shape[1]):
                s = x[:, t]
                for index, (linear, step, _) in enumerate(layers):
                    s, states[index] = step(linear(s), states[index])
                outputs.append(s)
                last_membranes.append(states[-1][-1])     # each neuron's state ends with mem
            spikes_out = torch.stack(outputs, dim=1).numpy().astype(np.uint8)
            return (spikes_out, torch.stack(last_membranes, dim=1).numpy()) if membranes else spikes_out

    return run


def float_reference(source: SourceNetwork, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The float model's output spikes uint8 [B, T, n_out] and last-layer membranes [B, T, n_out] on
    ``inputs``, and the name of what computed them."""
    try:
        import snntorch
    except ImportError:
        trace = golden.run_float(source, inputs)
        return trace.output, trace.membranes[-1], "numpy float64 (snnTorch not installed)"
    return (*snntorch_runner(source, membranes=True)(inputs), f"snntorch {snntorch.__version__}")


def _classes_agree(source: SourceNetwork, reference: np.ndarray, reference_membranes: np.ndarray,
                   trace: golden.Trace) -> float:
    """The class agreement of the module docstring: by spikes, or by the readout's membranes."""
    if source.layers[-1].readout:
        return float(np.mean(readout_class(reference_membranes) == readout_class(trace.membranes[-1])))
    return float(np.mean(predicted_class(reference) == predicted_class(trace.output)))


def measure(source: SourceNetwork, network: Network, inputs: np.ndarray, stimulus: str) -> Fidelity:
    """Agreement of ``network`` (golden model) with ``source`` (float reference) on 0/1 ``inputs``;
    ``stimulus`` says where the inputs came from."""
    inputs = golden.as_batch(inputs, source.n_in)
    reference, reference_membranes, name = float_reference(source, inputs)
    trace = golden.run(network, inputs)
    membranes = np.concatenate([m.reshape(-1) for m in trace.membranes])
    saturated = np.mean((membranes == network.state_min) | (membranes == network.state_max))
    return Fidelity(samples=int(inputs.shape[0]), timesteps=int(inputs.shape[1]), stimulus=stimulus,
                    reference=name, spike_agreement=float(np.mean(reference == trace.output)),
                    class_agreement=_classes_agree(source, reference, reference_membranes, trace),
                    saturated=float(saturated))
