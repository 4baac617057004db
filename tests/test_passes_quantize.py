import numpy as np
import pytest

from snn2hw import golden
from snn2hw.errors import QuantizationError
from snn2hw.fidelity import measure
from snn2hw.ir import Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize, signed_bits


def _source(weight_scale=1.0, beta=0.9375, integer=True, seed=0):
    rng = np.random.default_rng(seed)
    def values(shape):
        v = rng.integers(-7, 8, shape).astype(float)
        return v if integer else v * 0.037 * weight_scale
    return SourceNetwork((SourceLayer("fc1", values((6, 4)), values(6), beta, 3.0 if integer else 0.11, Reset.SUBTRACT),
                          SourceLayer("fc2", values((3, 6)), np.zeros(3), 0.5, 2.0 if integer else 0.074, Reset.ZERO)))


def _dyadic_source(beta: float, reset: Reset, seed: int = 0) -> SourceNetwork:
    """A float model on a grid of 1/4: with 4-bit weights every layer's scale is exactly 4 (its weights
    reach +-7/4), so W, b and theta all quantize without rounding, at every G."""
    rng = np.random.default_rng(seed)
    layers = []
    for index, (n_in, n_out, threshold) in enumerate(((5, 9, 2.75), (9, 4, 1.25))):
        weight = rng.integers(-7, 8, (n_out, n_in)).astype(float)
        weight[0, 0] = 7
        layers.append(SourceLayer(f"fc{index + 1}", weight / 4, rng.integers(-3, 4, n_out) / 4, beta, threshold, reset))
    return SourceNetwork(tuple(layers))


def test_integer_model_compiles_exactly_and_behaves_the_same():
    source = _source()
    network, report = quantize(source)
    assert report.exact and report.beta_frac_bits == 8 and report.membrane_frac_bits == 0
    for src, layer in zip(source.layers, network.layers):
        assert np.array_equal(layer.weight, src.weight) and np.array_equal(layer.bias, src.bias)
        assert layer.threshold == src.threshold
    assert network.layers[0].beta_q == 240 and network.layers[1].beta_q == 128


def test_frac_bits_grow_to_represent_beta_exactly():
    network, report = quantize(_source(beta=1 / 1024))
    assert report.beta_frac_bits == 10 and network.layers[0].beta_q == 1 and report.exact


def test_beta_frac_bits_option_sets_the_beta_grid():
    network, report = quantize(_source(beta=0.75), beta_frac_bits=2)
    assert report.beta_frac_bits == 2 and report.exact
    assert [(layer.beta_q, layer.frac_bits) for layer in network.layers] == [(3, 2), (2, 2)]


def test_non_dyadic_beta_is_rounded_and_reported():
    network, report = quantize(_source(beta=0.9))
    assert report.beta_frac_bits == 16 and not report.exact
    assert network.layers[0].beta_q == round(0.9 * 65536)
    assert any("beta 0.9" in note for note in report.notes)


def test_float_model_scale_folds_into_threshold():
    network, report = quantize(_source(integer=False), weight_bits=4)
    assert not report.exact and report.weight_bits == 4 and report.membrane_frac_bits == 0
    for layer in network.layers:
        assert np.abs(layer.weight).max() == 7
        assert layer.threshold >= 1
    scale = report.scales["fc1"]
    assert network.layers[0].threshold == round(0.11 * scale)


@pytest.mark.parametrize("g", [1, 3, 6])
def test_membrane_frac_bits_scale_bias_and_threshold_finely_and_weights_on_the_n_bit_grid(g):
    source = _source(integer=False, seed=3)
    coarse, _ = quantize(source, weight_bits=5)
    fine, report = quantize(source, weight_bits=5, membrane_frac_bits=g)
    assert report.membrane_frac_bits == g and report.weight_bits == 5
    for src, low, high in zip(source.layers, coarse.layers, fine.layers):
        scale = 15 / np.abs(src.weight).max()
        assert report.scales[src.name] == pytest.approx(scale * 2**g)
        assert np.array_equal(high.weight, low.weight * 2**g)          # N significant bits, G zero bits below
        assert np.array_equal(high.bias, np.round(src.bias * scale * 2**g))
        assert high.threshold == round(src.threshold * scale * 2**g)
        assert high.beta_q == low.beta_q and high.frac_bits == low.frac_bits


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("reset", list(Reset))
@pytest.mark.parametrize("g", [1, 4])
def test_g_scaled_network_is_the_unscaled_one_times_2_to_the_g(beta, reset, g):
    # With beta 0 or 1 the leak has no floor to round, so the G network's membranes are exactly 2^G times
    # the G = 0 network's (the membrane width grows by G too, and neither saturates) and its spikes equal.
    source = _dyadic_source(beta, reset)
    unscaled, _ = quantize(source, weight_bits=4, state_bits=20)
    scaled, _ = quantize(source, weight_bits=4, state_bits=20 + g, membrane_frac_bits=g)
    spikes = (np.random.default_rng(1).random((32, 24, 5)) < 0.4).astype(np.uint8)
    low, high = golden.run(unscaled, spikes), golden.run(scaled, spikes)
    assert low.output.any() and not low.output.all()
    for membranes in low.membranes:
        assert np.abs(membranes).max() < 1 << 18      # far from saturation
    for low_spikes, high_spikes, low_v, high_v in zip(low.spikes, high.spikes, low.membranes, high.membranes):
        assert np.array_equal(high_spikes, low_spikes)
        assert np.array_equal(high_v, low_v << g)


@pytest.mark.parametrize("reset", list(Reset))
@pytest.mark.parametrize("g", [0, 3])
def test_g_scaled_network_equals_snntorch_exactly_for_beta_1(reset, g):
    # On the grid of 1/4 and with beta 1 the contract is snnTorch's float model scaled by 2^G * 4: full agreement.
    source = _dyadic_source(1.0, reset, seed=5)
    network, _ = quantize(source, weight_bits=4, membrane_frac_bits=g)
    spikes = (np.random.default_rng(2).random((64, 20, 5)) < 0.5).astype(np.uint8)
    fidelity = measure(source, network, spikes, "test")
    assert fidelity.reference.startswith("snntorch")
    assert (fidelity.spike_agreement, fidelity.class_agreement, fidelity.saturated) == (1.0, 1.0, 0.0)
    assert golden.run(network, spikes).output.any()


def test_integer_model_refuses_membrane_frac_bits():
    with pytest.raises(QuantizationError, match="--frac-bits 2 applies to float models only.*exactly as given"):
        quantize(_source(), membrane_frac_bits=2)


def test_scaled_threshold_that_cannot_fit_the_membrane_is_refused_naming_the_layer():
    # fc1: scale 127 / 1 and threshold 2 -> 254 * 2^G; 254 * 2^7 = 32512 fits 16 bits, 2^8 does not.
    source = SourceNetwork((SourceLayer("fc1", np.array([[1.0, -0.5]]), np.zeros(1), 0.5, 2.0, Reset.ZERO),))
    network, _ = quantize(source, membrane_frac_bits=7)
    assert network.layers[0].threshold == 254 * 2**7
    with pytest.raises(QuantizationError, match=r"layer 'fc1': scaled threshold 65024 \(--weight-bits 8 "
                                                r"--frac-bits 8\) does not fit.*16-bit membrane.*32767"):
        quantize(source, membrane_frac_bits=8)
    quantize(source, membrane_frac_bits=8, state_bits=17)


def test_scaled_weights_that_cannot_fit_the_membrane_are_refused_naming_the_layer():
    # A tiny threshold keeps theta_q small while 127 * 2^9 = 65024 exceeds a 16-bit membrane.
    source = SourceNetwork((SourceLayer("fc1", np.array([[1.0, -0.5]]), np.zeros(1), 0.5, 0.5, Reset.ZERO),
                            SourceLayer("out", np.array([[0.3]]), np.zeros(1), 0.5, 0.01, Reset.ZERO)))
    with pytest.raises(QuantizationError, match=r"layer 'fc1': scaled weight of magnitude 65024 .*32767"):
        quantize(source, membrane_frac_bits=9)


@pytest.mark.parametrize("options, message", [({"membrane_frac_bits": -1}, "--frac-bits -1 is outside"),
                                              ({"membrane_frac_bits": 25}, "--frac-bits 25 is outside"),
                                              ({"beta_frac_bits": 25}, "--beta-frac-bits 25 is outside"),
                                              ({"weight_bits": 0}, "--weight-bits 0 is outside")])
def test_option_ranges_are_checked(options, message):
    with pytest.raises(QuantizationError, match=message):
        quantize(_source(integer=False), **options)


def test_integer_weights_too_wide_for_weight_bits_are_refused():
    with pytest.raises(QuantizationError, match="fc1.*--weight-bits 3"):
        quantize(_source(), weight_bits=3)


def test_signed_bits():
    assert [signed_bits(np.array(v)) for v in ([0], [-1], [1], [-8, 7], [8], [-1, 1])] == [1, 1, 2, 4, 5, 2]


def _per_neuron_source(integer: bool) -> SourceNetwork:
    rng = np.random.default_rng(4)
    weight = rng.integers(-7, 8, (5, 3)).astype(float)
    scale = 1.0 if integer else 0.037
    return SourceNetwork((SourceLayer("fc1", weight * scale, rng.integers(-2, 3, 5) * scale,
                                      [0.5, 0.75, 1.0, 0.0, 0.5], np.array([3.0, 1.0, 5.0, 2.0, 4.0]) * scale,
                                      Reset.SUBTRACT),))


def test_per_neuron_integer_model_compiles_exactly_element_by_element():
    source = _per_neuron_source(integer=True)
    network, report = quantize(source)
    layer = network.layers[0]
    assert report.exact and report.beta_frac_bits == 8 and layer.per_neuron
    assert layer.beta_q.tolist() == [128, 192, 256, 0, 128] and layer.threshold.tolist() == [3, 1, 5, 2, 4]


def test_per_neuron_float_model_scales_every_threshold_by_the_layer_scale():
    network, report = quantize(_per_neuron_source(integer=False), weight_bits=4)
    scale = report.scales["fc1"]
    expected = np.maximum(1, np.round(np.array([3.0, 1.0, 5.0, 2.0, 4.0]) * 0.037 * scale))
    assert network.layers[0].threshold.tolist() == expected.tolist()


def test_per_neuron_betas_choose_one_frac_bits_and_rounding_is_counted():
    source = SourceNetwork((SourceLayer("fc1", np.eye(3), np.zeros(3), [0.5, 1 / 1024, 0.9], 1.0,
                                        Reset.SUBTRACT),))
    network, report = quantize(source)
    assert report.beta_frac_bits == 16 and not report.exact
    assert network.layers[0].beta_q.tolist() == [32768, 64, round(0.9 * 65536)]
    assert report.notes == ("layer 'fc1': 1 of 3 per-neuron betas rounded to multiples of 2^-16",)


def test_equal_per_neuron_values_are_the_scalar_model():
    uniform = SourceNetwork((SourceLayer("fc1", np.eye(3), np.zeros(3), [0.5] * 3, np.full(3, 2.0),
                                         Reset.ZERO),))
    layer = quantize(uniform)[0].layers[0]
    assert layer.beta_q == 128 and layer.threshold == 2 and not layer.per_neuron
    assert isinstance(layer.beta_q, int) and isinstance(layer.threshold, int)
