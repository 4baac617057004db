"""The weight-shared convolution core (a layer with :attr:`snn2hw.ir.Layer.conv`) in Amaranth's simulator and
in Verilator: spikes, the membrane readout and cycles exactly as the golden model and the cycle model say, for
strides, asymmetric padding, channel blocks, Synaptic neurons and per-neuron thresholds, integrating by kernel
offset or by window; its kernel memory is the kernel, not the unrolled matrix."""

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.backends.cycle_model import batch_cycles
from snn2hw.conv_geometry import ConvGeometry, window_taps
from snn2hw.ir import Layer, Network, Reset
from snn2hw.passes.cost import network_cost
from snn2hw.passes.mapping import conv_lanes, map_layer, map_network
from snn2hw.verify.amaranth_sim import simulate_amaranth


def conv_layer(rng, name, in_shape, channels, kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), **neuron):
    geometry = ConvGeometry(in_shape=in_shape, out_channels=channels, kernel=kernel, stride=stride, padding=padding)
    weights = geometry.lower(rng.integers(-3, 4, (channels, in_shape[0], *kernel))).astype(np.int64)
    bias = np.repeat(rng.integers(-1, 2, channels), geometry.positions)
    params = {"beta_q": 200, "frac_bits": 8, "threshold": 3, "reset": Reset.SUBTRACT, **neuron}
    return Layer(name, weights, bias, conv=geometry, **params)


def conv_then_dense(seed, **geometry):
    rng = np.random.default_rng(seed)
    conv = conv_layer(rng, "conv", (2, 5, 6), 4, **geometry)
    dense = Layer("fc", rng.integers(-2, 3, (5, conv.n_out)), np.zeros(5, np.int64), 230, 8, 4, Reset.ZERO)
    return Network((conv, dense), state_bits=8)


def check(network, lanes, seed, samples=3, steps=6, window=False):
    mappings = tuple(map_layer(layer, lanes, window=window) for layer in network.layers)
    spikes = (np.random.default_rng(seed).random((samples, steps, network.n_in)) < 0.4).astype(np.uint8)
    trace = golden.run(network, spikes)
    assert 0 < trace.spikes[0].mean() < 1
    results = simulate_amaranth(network, mappings, spikes, max_cycles=50_000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert np.array_equal(np.stack([r.membranes for r in results]), trace.membranes[-1])
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)
    return mappings


@pytest.mark.parametrize("lanes, geometry", [
    (4, {}), (2, {}), (1, {"stride": (2, 1), "padding": (0, 1, 2, 0)}),
    (4, {"kernel": (2, 3), "stride": (2, 2), "padding": (1, 0, 1, 0)}),
], ids=["all-channels", "two-blocks", "stride-2x1-asymmetric-padding", "kernel-2x3-stride-2"])
@pytest.mark.parametrize("window", [False, True], ids=["by-offset", "by-window"])
def test_conv_layer_bit_exact_and_cycle_exact(lanes, geometry, window):
    mappings = check(conv_then_dense(len(geometry) + lanes, **geometry), lanes, seed=lanes, window=window)
    conv = mappings[0]
    assert conv.lanes == lanes and conv.channel_blocks == 4 // lanes and conv.window == window
    assert conv.integration_cycles == (1 if window else conv.kernel_offsets * conv.channel_blocks)


@pytest.mark.parametrize("lanes", [2, 4])
@pytest.mark.parametrize("window", [False, True], ids=["by-offset", "by-window"])
def test_conv_as_last_layer_synaptic_per_neuron_thresholds_zero_reset(lanes, window):
    rng = np.random.default_rng(lanes)
    layer = conv_layer(rng, "c1", (1, 4, 4), 4, alpha_q=128, reset=Reset.ZERO,
                       threshold=rng.integers(2, 6, 64))
    check(Network((layer,), state_bits=8), lanes, seed=lanes + 10, window=window)


def test_by_window_a_spike_costs_one_cycle_and_the_fire_pass_overlaps_the_next_timestep():
    """Dense input: by kernel offset each spike costs up to 9 cycles; by window one, with each timestep's current
    pass and the next one's spikes beside the fire pass and the emitter, so well under the spikes, the fire passes
    and the output beats back to back."""
    rng = np.random.default_rng(5)
    network = Network((conv_layer(rng, "conv", (1, 6, 6), 4),), state_bits=8)
    spikes = np.ones((1, 5, 36), np.uint8)
    trace = golden.run(network, spikes)
    by_offset, by_window = (map_layer(network.layers[0], 4, window=window) for window in (False, True))
    result = simulate_amaranth(network, (by_window,), spikes, max_cycles=20_000)[0]
    assert np.array_equal(result.raster, trace.output[0])
    assert [result.cycles] == batch_cycles(network, (by_window,), spikes, trace)
    assert result.cycles < 0.7 * (5 * (36 + by_window.fire_cycles) + trace.output.sum())
    assert 2 * result.cycles < batch_cycles(network, (by_offset,), spikes, trace)[0]


def test_by_window_the_kernel_is_logic_and_the_currents_are_double_buffered():
    rng = np.random.default_rng(0)
    network = Network((conv_layer(rng, "conv", (1, 6, 6), 8),), state_bits=10)
    mapping = map_layer(network.layers[0], 8, window=True)
    assert mapping.weight_memory_bits == 0 and mapping.to_json()["window"] is True
    memories = {memory.name: memory for memory in network_cost(network, (mapping,)).memories}
    assert "weights" not in memories and "input_decode" not in memories
    assert memories["currents"].width == 8 * mapping.acc_bits and memories["currents"].depth >= 2 * mapping.groups
    by_offset = network_cost(network, (map_layer(network.layers[0], 8),))
    assert network_cost(network, (mapping,)).logic_cells > by_offset.logic_cells


def test_kernel_memory_holds_the_kernel_not_the_unrolled_matrix():
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, "conv", (1, 16, 16), 8)
    network = Network((layer,), state_bits=12)
    mapping = map_network(network, 8)[0]
    assert mapping.weight_words == 9 and mapping.weight_memory_bits == 9 * 8 * mapping.weight_bits
    weights = [memory for memory in network_cost(network, (mapping,)).memories if memory.name == "weights"]
    assert weights[0].width * weights[0].depth == 9 * 8 * mapping.weight_bits


def test_conv_lanes_halve_the_channels():
    assert [conv_lanes(8, lanes) for lanes in (1, 2, 3, 4, 8, 16)] == [1, 2, 2, 4, 8, 8]
    assert conv_lanes(6, 2) == 3 and conv_lanes(5, 2) == 5


@pytest.mark.parametrize("kernel, stride, padding", [((3, 3), (1, 1), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)),
                                                     ((2, 3), (2, 2), (1, 0, 1, 0)), ((3, 1), (2, 1), (0, 1, 2, 0))])
def test_a_spike_costs_a_cycle_per_block_and_kernel_offset_that_reaches_an_output(kernel, stride, padding):
    rng = np.random.default_rng(3)
    layer = conv_layer(rng, "conv", (2, 5, 6), 4, kernel=kernel, stride=stride, padding=padding)
    mapping = map_network(Network((layer,), state_bits=8), 2)[0]
    _, out_h, out_w = layer.conv.out_shape
    reaching = np.zeros(5 * 6, np.int64)       # per input position: the kernel offsets that read it
    for _, _, _, inputs in window_taps((5, 6), (out_h, out_w), kernel, stride, padding):
        reaching[inputs] += 1
    expected = np.tile(np.maximum(reaching, 1) * mapping.channel_blocks, 2)
    assert np.array_equal(mapping.input_integration_cycles(), expected)
    assert mapping.integration_cycles == kernel[0] * kernel[1] * 2 > expected.min()
