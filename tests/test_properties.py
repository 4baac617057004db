"""Property-based tests: random networks (layer count, sizes, weight and state widths, betas, thresholds,
reset modes, saturation-heavy settings, empty and all-firing inputs) through the golden model, an
independent reference, the Amaranth simulator and (a few) Verilator runs. Every comparison is exact.

A failure prints hypothesis' shrunk example and a ``@reproduce_failure`` blob; under CI=true the runs
are derandomized, so the same failure reproduces with the same command.
"""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from snn2hw import golden
from snn2hw.backends.cycle_model import batch_cycles
from snn2hw.backends.design import VERILOG_FILE
from snn2hw.backends.verilog import emit_verilog
from snn2hw.conv_geometry import ConvGeometry
from snn2hw.hw.accelerator import membrane_format
from snn2hw.ir import Layer, Network, Reset
from snn2hw.passes.mapping import map_layer
from snn2hw.verify.amaranth_sim import simulate_amaranth
from snn2hw.verify.verilator import RtlSimulator

from random_networks import NEURON_KINDS, random_network, random_spikes
from reference_lif import reference_run


@st.composite
def networks(draw, max_layers=3, max_width=10):
    sizes = draw(st.lists(st.integers(1, max_width), min_size=2, max_size=max_layers + 1))
    weight_bits = draw(st.integers(1, 8))
    limit = (1 << (weight_bits - 1)) - 1 if weight_bits > 1 else 0
    frac_bits = draw(st.integers(0, 12))
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        weight = rng.integers(-limit - 1, limit + 1, (n_out, n_in)) if limit else rng.integers(-1, 1, (n_out, n_in))
        bias = rng.integers(-4, 5, n_out) if draw(st.booleans()) else np.zeros(n_out, np.int64)
        layers.append(Layer(f"l{index}", weight, bias, beta_q=draw(st.integers(0, 1 << frac_bits)),
                            frac_bits=frac_bits, threshold=draw(st.integers(1, 40)),
                            reset=draw(st.sampled_from(list(Reset)))))
    return Network(tuple(layers), state_bits=draw(st.integers(2, 16)))


@st.composite
def stimuli(draw, n_in, samples=2):
    steps = draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["silent", "all", "random"]))
    if kind == "silent":
        return np.zeros((samples, steps, n_in), np.uint8)
    if kind == "all":
        return np.ones((samples, steps, n_in), np.uint8)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.random((samples, steps, n_in)) < draw(st.floats(0.05, 0.95))).astype(np.uint8)


@settings(max_examples=200)
@given(data=st.data())
def test_golden_model_equals_the_independent_reference(data):
    network = data.draw(networks(max_layers=4, max_width=12))
    spikes = data.draw(stimuli(network.n_in, samples=3))
    layers = [layer.to_json() for layer in network.layers]
    expected = np.array([reference_run(layers, network.state_bits, sample) for sample in spikes], np.uint8)
    assert np.array_equal(golden.run(network, spikes).output, expected)


def mapped(network, lanes: int, integration_lanes: int):
    """Every layer at ``lanes``, integrating ``integration_lanes`` per cycle into accumulators where that is
    wider (0: into the membrane memory)."""
    return tuple(map_layer(layer, lanes, integration_lanes=integration_lanes) for layer in network.layers)


@settings(max_examples=40)
@given(data=st.data(), lanes=st.integers(1, 5), integration_lanes=st.sampled_from([0, 0, 3, 8]))
def test_hardware_in_amaranth_simulation_is_bit_exact_and_cycle_exact(data, lanes, integration_lanes):
    network = data.draw(networks())
    spikes = data.draw(stimuli(network.n_in))
    mappings = mapped(network, lanes, integration_lanes)
    trace = golden.run(network, spikes)
    results = simulate_amaranth(network, mappings, spikes, max_cycles=50_000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert np.array_equal(np.stack([r.membranes for r in results]), trace.membranes[-1])
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)


@st.composite
def conv_networks(draw):
    """One convolution (random geometry, weights and neuron), alone or followed by a small dense layer."""
    channels, height, width = draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    kernel = (draw(st.integers(1, min(3, height))), draw(st.integers(1, min(3, width))))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, k - 1)) for k in (kernel[0], kernel[1], kernel[0], kernel[1]))
    geometry = ConvGeometry(in_shape=(channels, height, width), out_channels=draw(st.sampled_from([1, 2, 4])),
                            kernel=kernel, stride=stride, padding=padding)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    limit = draw(st.integers(1, 7))
    weight = geometry.lower(rng.integers(-limit, limit + 1, (geometry.out_channels, channels, *kernel)))
    bias = np.repeat(rng.integers(-2, 3, geometry.out_channels), geometry.positions) if draw(st.booleans()) \
        else np.zeros(geometry.n_out, np.int64)
    frac_bits = draw(st.integers(0, 8))
    layers = [Layer("conv", weight.astype(np.int64), bias, beta_q=draw(st.integers(0, 1 << frac_bits)),
                    frac_bits=frac_bits, threshold=draw(st.integers(1, 12)), reset=draw(st.sampled_from(list(Reset))),
                    conv=geometry)]
    if draw(st.booleans()):
        layers.append(Layer("fc", rng.integers(-3, 4, (3, geometry.n_out)), np.zeros(3, np.int64), 200, 8, 4,
                            Reset.SUBTRACT))
    return Network(tuple(layers), state_bits=draw(st.integers(4, 12)))


@settings(max_examples=60)
@given(data=st.data(), lanes=st.integers(1, 4), window=st.booleans())
def test_convolutions_in_amaranth_simulation_are_bit_exact_and_cycle_exact(data, lanes, window):
    """Integrated by kernel offset or by window, any stride and padding, channel blocks, with or without a layer
    after it."""
    network = data.draw(conv_networks())
    spikes = data.draw(stimuli(network.n_in))
    mappings = tuple(map_layer(layer, lanes, window=window) for layer in network.layers)
    assert mappings[0].window == window
    trace = golden.run(network, spikes)
    results = simulate_amaranth(network, mappings, spikes, max_cycles=50_000)
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert np.array_equal(np.stack([r.membranes for r in results]), trace.membranes[-1])
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)


@settings(max_examples=3)
@given(data=st.data(), lanes=st.integers(1, 4), integration_lanes=st.sampled_from([0, 6]))
def test_emitted_verilog_under_verilator_is_bit_exact(data, lanes, integration_lanes, tmp_path_factory):
    network = data.draw(networks(max_width=16))
    spikes = data.draw(stimuli(network.n_in, samples=4))
    check_verilator(network, mapped(network, lanes, integration_lanes), spikes, tmp_path_factory.mktemp("prop"))


def test_accumulators_and_binary_weights_under_verilator_are_bit_exact(tmp_path):
    network = random_network(7, sizes=[12, 16, 6], kinds=NEURON_KINDS)
    binary = dataclasses.replace(network.layers[0], weight=np.where(network.layers[0].weight >= 0, 1, -1))
    network = dataclasses.replace(network, layers=(binary,) + network.layers[1:])
    mappings = mapped(network, 2, 8)
    assert mappings[0].binary_weights and all(mapping.accumulators for mapping in mappings)
    check_verilator(network, mappings, random_spikes(7, 4, 8, network.n_in), tmp_path)


def check_verilator(network, mappings, spikes, tmp):
    """The emitted Verilog of ``mappings`` under Verilator: the golden model's spikes and last-layer membranes,
    and the cycle model's counts, exactly."""
    (tmp / VERILOG_FILE).write_text(emit_verilog(network, mappings))
    trace = golden.run(network, spikes)
    results, error = RtlSimulator(tmp / VERILOG_FILE, network.n_in, membrane_format(network, mappings),
                                  tmp / ".sim").run(spikes, network.n_out, max_cycles=100_000)
    assert not error
    assert np.array_equal(np.stack([r.raster for r in results]), trace.output)
    assert np.array_equal(np.stack([r.membranes for r in results]), trace.membranes[-1])
    assert [r.cycles for r in results] == batch_cycles(network, mappings, spikes, trace)
