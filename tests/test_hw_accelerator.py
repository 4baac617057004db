"""The Amaranth components in Amaranth's simulator, against the golden model (exact equality)."""

import dataclasses

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.backends.cycle_model import batch_cycles
from snn2hw.passes.mapping import map_layer, map_network
from snn2hw.verify.amaranth_sim import simulate_amaranth

from random_networks import NEURON_KINDS, random_network, random_spikes


def check_bit_exact_and_cycles(network, lanes, seed):
    """Amaranth simulation of ``network`` at ``lanes`` on random spikes: the golden model's spikes, last-layer
    membranes and the cycle model's counts, exactly."""
    check_mappings(network, map_network(network, lanes), seed)


def check_mappings(network, mappings, seed):
    """As :func:`check_bit_exact_and_cycles`, with the given mappings."""
    spikes = random_spikes(seed, 3, 6, network.n_in)
    trace = golden.run(network, spikes)
    results = simulate_amaranth(network, mappings, spikes, max_cycles=20000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert np.array_equal(np.stack([r.membranes for r in results]), trace.membranes[-1])
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_random_networks_bit_exact_and_cycles_as_modelled(seed, lanes):
    check_bit_exact_and_cycles(random_network(seed), lanes, seed)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lanes", [1, 4])
def test_per_neuron_beta_and_threshold_bit_exact_and_cycles_as_modelled(seed, lanes):
    check_bit_exact_and_cycles(random_network(seed, per_neuron=True), lanes, seed)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("lanes", [1, 3])
def test_synaptic_and_recurrent_layers_bit_exact_and_cycles_as_modelled(seed, lanes):
    network = random_network(seed, per_neuron=seed % 2 == 1, kinds=NEURON_KINDS)
    assert any(layer.synaptic or layer.recurrence for layer in network.layers)
    check_bit_exact_and_cycles(network, lanes, seed)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lanes", [1, 3])
def test_rsynaptic_layers_bit_exact_and_cycles_as_modelled(seed, lanes):
    """Only RSynaptic layers (one-to-one and dense V; the seeds cover every reset of both)."""
    network = random_network(seed, per_neuron=seed % 2 == 0, kinds=("synaptic_one_to_one", "synaptic_dense"))
    assert all(layer.neuron.startswith("RSynaptic") for layer in network.layers)
    check_bit_exact_and_cycles(network, lanes, seed)


def test_saturating_synaptic_and_recurrent_layers_with_thresholds_above_the_state_maximum():
    network = random_network(12, sizes=[5, 9, 7, 6], state_bits=4, weight_range=15, per_neuron=True,
                             kinds=NEURON_KINDS)
    assert any(np.max(layer.threshold) > network.state_max for layer in network.layers)
    spikes = np.ones((2, 8, 5), np.uint8)
    trace = golden.run(network, spikes)
    assert trace.output.any()
    results = simulate_amaranth(network, map_network(network, 4), spikes, max_cycles=20000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)


def test_per_neuron_saturating_network_with_thresholds_above_the_state_maximum():
    network = random_network(7, sizes=[5, 9, 6], state_bits=4, weight_range=15, per_neuron=True)
    assert any(np.max(layer.threshold) > network.state_max for layer in network.layers)
    spikes = np.ones((2, 8, 5), np.uint8)
    trace = golden.run(network, spikes)
    assert trace.output.any()
    results = simulate_amaranth(network, map_network(network, 4), spikes, max_cycles=20000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)


def test_saturating_network_with_output_spikes():
    network = random_network(3, sizes=[5, 7, 4], state_bits=5, weight_range=15)
    spikes = np.ones((2, 8, 5), np.uint8)
    trace = golden.run(network, spikes)
    assert (trace.membranes[0] == network.state_max).any() or (trace.membranes[0] == network.state_min).any()
    results = simulate_amaranth(network, map_network(network, 2), spikes, max_cycles=20000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)


def test_state_is_cleared_between_inferences():
    network = random_network(11, sizes=[4, 6, 3], state_bits=12)
    busy = np.ones((6, 4), np.uint8)
    spikes = np.stack([busy, np.zeros_like(busy), busy])
    results = simulate_amaranth(network, map_network(network), spikes, max_cycles=20000)
    assert np.array_equal(results[0].raster, results[2].raster) and results[0].raster.any()
    assert np.array_equal(np.stack([r.raster for r in results]), golden.run(network, spikes).output)


def test_silent_input_costs_only_the_fire_passes():
    network = random_network(5, sizes=[30, 10, 4], bias=False)
    mappings = map_network(network)
    quiet = simulate_amaranth(network, mappings, np.zeros((1, 5, 30), np.uint8), max_cycles=20000)[0]
    busy = simulate_amaranth(network, mappings, np.ones((1, 5, 30), np.uint8), max_cycles=20000)[0]
    assert busy.cycles > quiet.cycles + 5 * 30 * mappings[0].groups    # every input spike costs groups cycles


@pytest.mark.parametrize("seed", range(4))
def test_weights_partly_in_spram_bit_exact(seed):
    network = random_network(seed, sizes=[9, 11, 5])
    mappings = (map_layer(network.layers[0], 6, 4), map_layer(network.layers[1], 5, 5))
    spikes = random_spikes(seed, 2, 5, network.n_in)
    trace = golden.run(network, spikes)
    results = simulate_amaranth(network, mappings, spikes, max_cycles=20000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)


@pytest.mark.parametrize("seed", range(8))
def test_accumulators_bit_exact_and_cycles_as_modelled(seed):
    """Integration wider than the fire pass (flip-flop accumulators, integrating alongside the fire pass),
    over every neuron kind without a dense recurrence."""
    kinds = tuple(kind for kind in NEURON_KINDS if "dense" not in kind) if seed % 3 == 0 else ("leaky",)
    network = random_network(seed, per_neuron=seed % 2 == 1, kinds=kinds)
    mappings = tuple(map_layer(layer, 1 + seed % 3, integration_lanes=2 + seed % 5) for layer in network.layers)
    assert any(mapping.accumulators for mapping in mappings)
    check_mappings(network, mappings, seed)


def test_accumulator_integration_overlaps_the_fire_pass():
    """Two integration groups: each timestep's fire pass overlaps the next timestep's integration (bit-exact,
    as modelled, and well under the integration and the fire pass back to back)."""
    network = random_network(7, sizes=[16, 8])
    mappings = (map_layer(network.layers[0], 1, integration_lanes=4),)
    spikes = np.ones((1, 6, 16), np.uint8)
    trace = golden.run(network, spikes)
    result = simulate_amaranth(network, mappings, spikes, max_cycles=20000)[0]
    assert np.array_equal(result.raster, trace.output[0])
    assert [result.cycles] == batch_cycles(network, mappings, spikes, trace)
    back_to_back = 6 * (16 * mappings[0].weight_groups + mappings[0].fire_cycles)
    assert result.cycles < 0.9 * back_to_back


@pytest.mark.parametrize("seed", range(4))
def test_binary_weights_in_block_ram_and_spram_bit_exact(seed):
    network = random_network(seed + 20, sizes=[9, 20, 5])
    network = dataclasses.replace(network, layers=tuple(
        dataclasses.replace(layer, weight=np.where(layer.weight >= 0, 1, -1)) for layer in network.layers))
    mappings = (map_layer(network.layers[0], 4, spram_lanes=16, integration_lanes=20),
                map_layer(network.layers[1], 5, spram_lanes=seed))
    assert all(mapping.binary_weights for mapping in mappings)
    check_mappings(network, mappings, seed)
