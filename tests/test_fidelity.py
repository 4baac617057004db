"""Fidelity to the float model: the snnTorch reference, the figures, the stimuli."""

import sys

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.errors import Snn2hwError
from snn2hw.fidelity import (float_reference, load_stimuli, measure, predicted_class, random_stimuli,
                             snntorch_runner)
from snn2hw.ir import Layer, Network, Reset, SourceLayer, SourceNetwork


def _float_network(reset: Reset, seed: int = 0) -> SourceNetwork:
    rng = np.random.default_rng(seed)
    return SourceNetwork((SourceLayer("fc1", rng.normal(0, 0.4, (12, 7)), rng.normal(0, 0.05, 12), 0.9, 1.0, reset),
                          SourceLayer("fc2", rng.normal(0, 0.4, (4, 12)), np.zeros(4), 0.8, 0.7, reset)))


@pytest.mark.parametrize("reset", list(Reset))
def test_snntorch_reference_is_the_float_model_of_the_documented_semantics(reset):
    source = _float_network(reset)
    spikes = random_stimuli(7, 30, samples=64, seed=3)
    expected = golden.run_float(source, spikes).output
    assert expected.any() and not expected.all()
    assert np.array_equal(snntorch_runner(source)(spikes), expected)


@pytest.mark.parametrize("reset", list(Reset))
def test_snntorch_reference_takes_per_neuron_beta_and_threshold(reset):
    rng = np.random.default_rng(5)
    source = SourceNetwork((SourceLayer("fc1", rng.normal(0, 0.4, (12, 7)), rng.normal(0, 0.05, 12),
                                        rng.uniform(0.5, 1.0, 12), rng.uniform(0.5, 1.5, 12), reset),))
    spikes = random_stimuli(7, 30, samples=64, seed=3)
    expected = golden.run_float(source, spikes).output
    assert expected.any() and not expected.all()
    assert np.array_equal(snntorch_runner(source)(spikes), expected)


def test_without_snntorch_the_numpy_float_model_is_the_reference(monkeypatch):
    source = _float_network(Reset.SUBTRACT)
    spikes = random_stimuli(7, 10, samples=8)
    monkeypatch.setitem(sys.modules, "snntorch", None)  # import snntorch now raises ImportError
    output, _, name = float_reference(source, spikes)
    assert name.startswith("numpy float64") and np.array_equal(output, golden.run_float(source, spikes).output)


def test_figures_on_a_hand_made_case():
    # Float: input -> neuron 0. Integer: input -> neuron 1, whose membrane 3 sits at the 3-bit maximum.
    source = SourceNetwork((SourceLayer("l", np.array([[1.0], [0.0]]), np.zeros(2), 0.0, 0.5, Reset.ZERO),))
    network = Network((Layer("l", np.array([[0], [3]]), np.zeros(2), 0, 8, 1, Reset.ZERO),), state_bits=3)
    spikes = np.zeros((2, 4, 1), np.uint8)
    spikes[0] = 1                                   # sample 0 always fires, sample 1 is silent
    fidelity = measure(source, network, spikes, "hand-made")
    assert (fidelity.samples, fidelity.timesteps, fidelity.stimulus) == (2, 4, "hand-made")
    assert fidelity.spike_agreement == 0.5          # sample 0 disagrees everywhere, sample 1 nowhere
    assert fidelity.class_agreement == 0.5          # class 0 vs 1; silent outputs both predict class 0
    assert fidelity.saturated == 0.25               # neuron 1 of sample 0 at every timestep
    assert fidelity.to_json()["reference"] == fidelity.reference


def test_predicted_class_ties_go_to_the_lowest_index():
    output = np.zeros((3, 4, 3), np.uint8)
    output[0, :2, 2] = output[0, 1:3, 1] = 1        # 2 spikes each for neurons 1 and 2
    output[1, :, 2] = 1
    assert predicted_class(output).tolist() == [1, 2, 0]


def test_random_stimuli_are_rate_coded_and_reproducible():
    spikes = random_stimuli(50, 400, samples=6, seed=1)
    assert spikes.dtype == np.uint8 and spikes.shape == (6, 400, 50)
    assert np.array_equal(spikes, random_stimuli(50, 400, samples=6, seed=1))
    assert not np.array_equal(spikes, random_stimuli(50, 400, samples=6, seed=2))
    rates = spikes.mean(axis=1)                     # per sample and input: its intensity
    assert rates.min() < 0.1 and rates.max() > 0.9 and 0.4 < rates.mean() < 0.6


def test_load_stimuli_accepts_one_sample_and_refuses_bad_files(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((5, 3), bool))
    assert load_stimuli(str(tmp_path / "one.npy"), 3).shape == (1, 5, 3)
    np.save(tmp_path / "wide.npy", np.ones((2, 5, 4)))
    np.save(tmp_path / "two.npy", np.full((2, 5, 3), 2))
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object))
    for name, message in (("missing.npy", "does not exist"), ("wide.npy", r"shape \[B, T, 3\]"),
                          ("two.npy", "0 or 1"), ("objects.npy", "not a .npy array")):
        with pytest.raises(Snn2hwError, match=f"fidelity input .*{name}.*{message}"):
            load_stimuli(str(tmp_path / name), 3)
