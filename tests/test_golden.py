import numpy as np
import pytest
import torch
import snntorch as snn

from snn2hw import golden
from snn2hw.errors import QuantizationError
from snn2hw.ir import Layer, Network, Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize

from random_networks import NEURON_KINDS, random_network, random_spikes
from reference_lif import reference_run


@pytest.mark.parametrize("seed", range(25))
def test_golden_matches_independent_reference(seed):
    network = random_network(seed)
    spikes = random_spikes(seed, 3, 9, network.n_in)
    expected = [reference_run([layer.to_json() for layer in network.layers], network.state_bits, sample)
                for sample in spikes]
    assert np.array_equal(golden.run(network, spikes).output, np.array(expected, np.uint8))


@pytest.mark.parametrize("seed", range(15))
def test_golden_matches_independent_reference_per_neuron(seed):
    network = random_network(seed, per_neuron=True)
    assert any(layer.per_neuron for layer in network.layers)
    spikes = random_spikes(seed, 3, 9, network.n_in)
    expected = [reference_run([layer.to_json() for layer in network.layers], network.state_bits, sample)
                for sample in spikes]
    assert np.array_equal(golden.run(network, spikes).output, np.array(expected, np.uint8))


@pytest.mark.parametrize("seed", range(30))
def test_golden_matches_independent_reference_synaptic_and_recurrent(seed):
    network = random_network(seed, per_neuron=seed % 2 == 1, kinds=NEURON_KINDS)
    spikes = random_spikes(seed, 3, 9, network.n_in)
    expected = [reference_run([layer.to_json() for layer in network.layers], network.state_bits, sample)
                for sample in spikes]
    assert np.array_equal(golden.run(network, spikes).output, np.array(expected, np.uint8))


def test_synaptic_zero_reset_clears_the_whole_new_membrane_but_not_the_current():
    # alpha 0.5, beta 1, theta 5, input weight 4 every step: syn 4, 6, 7, 7; v 4, 10 (spike), then cleared
    layer = Layer("l", np.array([[4]]), np.array([0]), 256, 8, 5, Reset.ZERO, alpha_q=128)
    trace = golden.run(Network((layer,), state_bits=16), np.ones((4, 1), np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [4, 10, 0, 7]
    assert trace.output[0, :, 0].tolist() == [0, 1, 0, 1]


def test_rsynaptic_recurrence_enters_the_synaptic_current_and_decays_with_it():
    # alpha 1, beta 0, theta 5, V = -2, reset none, one input spike of weight 6 at t = 0: the spike at t = 0
    # adds V to syn at t = 1, where it stays (alpha 1): v 6, 4, 4, 4. (Added to the membrane, it would not
    # stay: v 6, 4, 6, 4.)
    layer = Layer("l", np.array([[6]]), np.array([0]), 0, 8, 5, Reset.NONE, alpha_q=256, recurrent=np.array([-2]))
    trace = golden.run(Network((layer,), state_bits=16), np.array([[1], [0], [0], [0]], np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [6, 4, 4, 4]
    assert trace.output[0, :, 0].tolist() == [1, 0, 0, 0]


def test_one_to_one_recurrence_feeds_a_spike_back_next_step():
    # V = 3 on the neuron itself, reset none, beta 0: after the first spike the neuron sees 3 + its input
    layer = Layer("l", np.array([[5]]), np.array([0]), 0, 8, 6, Reset.NONE, recurrent=np.array([3]))
    trace = golden.run(Network((layer,), state_bits=16), np.array([[1], [1], [0], [0]], np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [5, 5, 0, 0]
    layer = Layer("l", np.array([[7]]), np.array([0]), 0, 8, 6, Reset.NONE, recurrent=np.array([3]))
    trace = golden.run(Network((layer,), state_bits=16), np.array([[1], [1], [0], [0]], np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [7, 10, 3, 0]


def test_hand_computed_subtract_and_saturation():
    # one neuron, weight 100, beta 0.5 (128/256), theta 50, 8-bit state: saturates at 127
    layer = Layer("l", np.array([[100]]), np.array([0]), 128, 8, 50, Reset.SUBTRACT)
    trace = golden.run(Network((layer,), state_bits=8), np.ones((4, 1), np.uint8))
    # t0: u=100 -> v=100, s=1; t1: 50+100-50=100, s=1; t2: 100; t3: 100
    assert trace.membranes[0][0, :, 0].tolist() == [100, 100, 100, 100]
    layer2 = Layer("l", np.array([[100]]), np.array([60]), 256, 8, 200, Reset.NONE)
    trace = golden.run(Network((layer2,), state_bits=8), np.ones((3, 1), np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [127, 127, 127]   # 160 -> clamp 127, never > 200


def test_floor_rounds_toward_minus_infinity():
    layer = Layer("l", np.array([[-3]]), np.array([0]), 128, 8, 5, Reset.NONE)
    trace = golden.run(Network((layer,), state_bits=16), np.array([[1], [0], [0]], np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [-3, -2, -1]      # floor(-1.5) = -2, floor(-1) = -1


def test_zero_reset_drops_the_leak_term_only():
    layer = Layer("l", np.array([[10]]), np.array([0]), 256, 8, 5, Reset.ZERO)
    trace = golden.run(Network((layer,), state_bits=16), np.ones((3, 1), np.uint8))
    assert trace.membranes[0][0, :, 0].tolist() == [10, 10, 10]


def test_inputs_are_checked():
    network = random_network(0, sizes=[3, 2])
    with pytest.raises(QuantizationError, match="shape"):
        golden.run(network, np.zeros((2, 4, 5)))
    with pytest.raises(QuantizationError, match="0 or 1"):
        golden.run(network, np.full((2, 3), 2))


def _leaky_param(value):
    """A Leaky parameter: a float, or a float32 tensor for per-neuron values."""
    return torch.tensor(value, dtype=torch.float32) if np.ndim(value) else float(value)


def _snntorch_run(weights, biases, beta, thresholds, reset, spikes):
    """Run a float32 snnTorch Linear+Leaky stack over spikes [B, T, n_in]; ``beta`` is one value for all
    layers or a list of per-layer values, each value (and threshold) a number or per-neuron array."""
    betas = beta if isinstance(beta, list) else [beta] * len(weights)
    linears, leaks = [], []
    for w, b, layer_beta, thr in zip(weights, biases, betas, thresholds):
        fc = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            fc.weight.copy_(torch.tensor(w, dtype=torch.float32))
            fc.bias.copy_(torch.tensor(b, dtype=torch.float32))
        linears.append(fc)
        leaks.append(snn.Leaky(beta=_leaky_param(layer_beta), threshold=_leaky_param(thr), reset_mechanism=reset))
    x = torch.tensor(spikes, dtype=torch.float32)
    mems = [torch.zeros(x.shape[0], w.shape[0]) for w in weights]
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            s = x[:, t]
            for i, (fc, lif) in enumerate(zip(linears, leaks)):
                s, mems[i] = lif(fc(s), mems[i])
            out.append(s)
    return torch.stack(out, dim=1).numpy().astype(np.uint8)


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_golden_equals_snntorch_exactly_for_beta_0_and_1(beta, reset):
    rng = np.random.default_rng(7)
    weights = [rng.integers(-4, 5, (8, 6)), rng.integers(-4, 5, (3, 8))]
    biases = [rng.integers(-2, 3, 8), rng.integers(-2, 3, 3)]
    thresholds = [3, 2]
    spikes = (rng.random((16, 20, 6)) < 0.5).astype(np.uint8)
    source = SourceNetwork(tuple(SourceLayer(f"fc{i}", w, b, beta, thr, Reset(reset))
                                 for i, (w, b, thr) in enumerate(zip(weights, biases, thresholds))))
    layers = tuple(Layer(f"fc{i}", w, b, int(beta * 256), 8, thr, Reset(reset))
                   for i, (w, b, thr) in enumerate(zip(weights, biases, thresholds)))
    expected = _snntorch_run(weights, biases, beta, thresholds, reset, spikes)
    assert expected.any() and not expected.all()
    assert np.array_equal(golden.run(Network(layers, state_bits=32), spikes).output, expected)
    assert np.array_equal(golden.run_float(source, spikes).output, expected)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_golden_equals_snntorch_exactly_per_neuron(reset):
    # Per-neuron beta in {0, 1/2, 1} and thresholds; beta 1/2 is exact while membranes stay even, so the
    # weights, biases and thresholds are even.
    rng = np.random.default_rng(11)
    weights = [2 * rng.integers(-3, 4, (8, 6)), 2 * rng.integers(-3, 4, (3, 8))]
    biases = [2 * rng.integers(-1, 2, 8), 2 * rng.integers(-1, 2, 3)]
    betas = [rng.choice([0.0, 1.0], 8), np.array([1.0, 0.0, 1.0])]
    thresholds = [2 * rng.integers(1, 4, 8), np.array([2, 4, 6])]
    spikes = (rng.random((16, 20, 6)) < 0.5).astype(np.uint8)
    source = SourceNetwork(tuple(SourceLayer(f"fc{i}", *params, Reset(reset))
                                 for i, params in enumerate(zip(weights, biases, betas, thresholds))))
    network, report = quantize(source, state_bits=32)
    assert report.exact and all(layer.per_neuron for layer in network.layers)
    expected = _snntorch_run(weights, biases, betas, thresholds, reset, spikes)
    assert expected.any() and not expected.all()
    assert np.array_equal(golden.run(network, spikes).output, expected)
    assert np.array_equal(golden.run_float(source, spikes).output, expected)


def test_documented_rounding_against_snntorch_for_fractional_beta():
    # With beta = 0.5, snnTorch keeps fractions; the contract floors them. They agree while every
    # membrane stays even, e.g. with even weights and an even start.
    weights, biases = [np.full((2, 3), 4)], [np.zeros(2)]
    spikes = np.ones((1, 6, 3), np.uint8)
    expected = _snntorch_run(weights, biases, 0.5, [20], "subtract", spikes)
    layer = Layer("fc0", weights[0], biases[0], 128, 8, 20, Reset.SUBTRACT)
    assert np.array_equal(golden.run(Network((layer,), state_bits=16), spikes).output, expected)


@pytest.mark.parametrize("row_abs_sum, dtype", [(1 << 24, np.float32), ((1 << 24) + 1, np.float64),
                                                (1 << 52, np.float64), ((1 << 52) + 2, np.int64)])
def test_synaptic_currents_are_exact_in_the_cheapest_exact_precision(row_abs_sum, dtype):
    # One row whose |W| sums to row_abs_sum (two big weights of opposite sign and small ones), one small row.
    big = row_abs_sum // 2 - 3
    weight = np.array([[big, -big, 1, -1, 2, -2, row_abs_sum - 2 * big - 6], [1, 0, 0, 0, 0, 0, 0]], np.int64)
    layer = Layer("l", weight, np.array([5, -5]), 0, 8, 1, Reset.NONE)
    assert golden._exact_matmul_dtype(layer.weight) is dtype
    x = (np.random.default_rng(3).random((4, 6, 7)) < 0.5).astype(np.uint8)
    expected = [[[sum(w for w, on in zip(row, step) if on) + b for row, b in zip(weight.tolist(), (5, -5))]
                 for step in sample] for sample in x.tolist()]
    assert golden._synaptic_currents(layer, x).tolist() == expected


def test_per_neuron_network_json_round_trip_keeps_arrays_and_scalars():
    import json
    network = random_network(3, sizes=[4, 6, 1], per_neuron=True)
    text = json.dumps(network.to_json())
    again = Network.from_json(json.loads(text))
    first, last = again.layers
    assert first.per_neuron and isinstance(first.threshold, np.ndarray)
    assert np.array_equal(first.threshold, network.layers[0].threshold)
    assert np.array_equal(first.beta_q, network.layers[0].beta_q)
    assert isinstance(last.threshold, int) and isinstance(last.beta_q, int)  # one neuron: scalars
    assert json.loads(text)["layers"][1]["threshold"] == last.threshold
    spikes = random_spikes(3, 2, 5, 4)
    assert np.array_equal(golden.run(again, spikes).output, golden.run(network, spikes).output)


@pytest.mark.parametrize("beta_q, threshold, message", [
    ([1, 2], 3, r"beta_q must be a scalar or 3 per-neuron values, got shape \(2,\)"),
    ([1, 2, 300], 3, r"beta_q 300 is outside \[0, 2\^8\]"),
    (1, [1, 0, 2], "threshold 0 must be > 0"),
    (1, [1.5, 1, 2], "integer threshold has non-integer values"),
])
def test_per_neuron_parameters_are_validated(beta_q, threshold, message):
    with pytest.raises(QuantizationError, match=message):
        Layer("fc", np.ones((3, 2)), np.zeros(3), beta_q, 8, threshold, Reset.SUBTRACT)


@pytest.mark.parametrize("seed", range(12))
def test_float_model_and_golden_match_snntorch_synaptic_and_recurrent(seed):
    """With betas and alphas on a 2^-8 grid, integer weights and no saturation, the integer golden model,
    the float model and snnTorch itself agree exactly (floor only drops fractions the float model keeps,
    so compare spikes of integer-valued decays: beta, alpha in {0, 1})."""
    from snn2hw.fidelity import snntorch_runner
    network = random_network(seed, state_bits=32, kinds=NEURON_KINDS)
    network = Network(tuple(Layer(layer.name, layer.weight, layer.bias, 256 * (seed % 2), 8, layer.threshold,
                                  layer.reset, alpha_q=None if layer.alpha_q is None else 256,
                                  recurrent=layer.recurrent) for layer in network.layers), state_bits=32)
    spikes = random_spikes(seed, 4, 10, network.n_in)
    source = SourceNetwork(tuple(SourceLayer(layer.name, layer.weight, layer.bias, layer.beta, layer.threshold,
                                             layer.reset, alpha=layer.alpha, recurrent=layer.recurrent)
                                 for layer in network.layers))
    expected = golden.run(network, spikes).output
    assert np.array_equal(golden.run_float(source, spikes).output, expected)
    assert np.array_equal(snntorch_runner(source)(spikes), expected)


def _snntorch_rsynaptic_run(weight, bias, alpha, beta, threshold, recurrent, reset, spikes):
    """One float32 ``nn.Linear`` + ``snn.RSynaptic`` layer stepped by snnTorch itself over spikes [B, T, n_in];
    ``recurrent`` [n] is a one-to-one V, [n, n] the dense ``linear_features`` recurrence (bias-free)."""
    fc = torch.nn.Linear(weight.shape[1], weight.shape[0])
    params = dict(alpha=_leaky_param(alpha), beta=_leaky_param(beta), threshold=float(threshold),
                  reset_mechanism=reset)
    if recurrent.ndim == 1:
        lif = snn.RSynaptic(all_to_all=False, V=torch.tensor(recurrent, dtype=torch.float32), **params)
    else:
        lif = snn.RSynaptic(linear_features=weight.shape[0], **params)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        fc.bias.copy_(torch.tensor(bias, dtype=torch.float32))
        if recurrent.ndim == 2:
            lif.recurrent.weight.copy_(torch.tensor(recurrent, dtype=torch.float32))
            lif.recurrent.bias.zero_()
        x = torch.tensor(spikes, dtype=torch.float32)
        spk = syn = mem = torch.zeros(x.shape[0], weight.shape[0])
        out = []
        for t in range(x.shape[1]):
            spk, syn, mem = lif(fc(x[:, t]), spk, syn, mem)
            out.append(spk)
    return torch.stack(out, dim=1).numpy().astype(np.uint8)


@pytest.mark.parametrize("recurrence", ["one_to_one", "dense"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_golden_equals_snntorch_rsynaptic_exactly_for_alpha_and_beta_0_and_1(recurrence, reset):
    """snnTorch's RSynaptic: syn[t] = alpha syn[t-1] + W x[t] + b + V s[t-1], the membrane as Synaptic's (the
    zero reset clears the whole new membrane, not syn). With per-neuron alpha and beta in {0, 1} and integer
    weights nothing rounds, so the golden model, the float model and snnTorch agree exactly."""
    rng = np.random.default_rng(5 if recurrence == "dense" else 6)
    weight, bias = rng.integers(-3, 4, (8, 6)), rng.integers(-2, 3, 8)
    alpha, beta = rng.choice([0.0, 1.0], 8), rng.choice([0.0, 1.0], 8)
    recurrent = rng.integers(-3, 4, (8, 8) if recurrence == "dense" else 8)
    spikes = (rng.random((16, 20, 6)) < 0.5).astype(np.uint8)
    source = SourceNetwork((SourceLayer("fc", weight, bias, beta, 3, Reset(reset), alpha=alpha, recurrent=recurrent),))
    network, report = quantize(source, state_bits=32)
    assert report.exact and network.layers[0].neuron == f"RSynaptic {recurrence.replace('_', '-')}"
    expected = _snntorch_rsynaptic_run(weight, bias, alpha, beta, 3, recurrent, reset, spikes)
    assert expected.any() and not expected.all()
    assert np.array_equal(golden.run(network, spikes).output, expected)
    assert np.array_equal(golden.run_float(source, spikes).output, expected)
    reference = [reference_run([layer.to_json() for layer in network.layers], 32, sample) for sample in spikes]
    assert np.array_equal(np.array(reference, np.uint8), expected)
