"""The weight-shared convolution core (a layer with :attr:`snn2hw.ir.Layer.conv`) in Amaranth's simulator and
in Verilator: spikes, the membrane readout and cycles exactly as the golden model and the cycle model say, for
strides, asymmetric padding, channel blocks, Synaptic neurons and per-neuron thresholds; its kernel memory is
the kernel, not the unrolled matrix."""

import numpy as np
import pytest

from snn2hw import golden
from snn2hw.backends.cycle_model import batch_cycles
from snn2hw.conv_geometry import ConvGeometry, window_taps
from snn2hw.ir import Layer, Network, Reset
from snn2hw.passes.cost import network_cost
from snn2hw.passes.mapping import conv_lanes, map_network
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


def check(network, lanes, seed, samples=3, steps=6):
    mappings = map_network(network, lanes)
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
def test_conv_layer_bit_exact_and_cycle_exact(lanes, geometry):
    mappings = check(conv_then_dense(len(geometry) + lanes, **geometry), lanes, seed=lanes)
    conv = mappings[0]
    assert conv.lanes == lanes and conv.channel_blocks == 4 // lanes
    assert conv.integration_cycles == conv.kernel_offsets * conv.channel_blocks


@pytest.mark.parametrize("lanes", [2, 4])
def test_conv_as_last_layer_synaptic_per_neuron_thresholds_zero_reset(lanes):
    rng = np.random.default_rng(lanes)
    layer = conv_layer(rng, "c1", (1, 4, 4), 4, alpha_q=128, reset=Reset.ZERO,
                       threshold=rng.integers(2, 6, 64))
    check(Network((layer,), state_bits=8), lanes, seed=lanes + 10)


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
