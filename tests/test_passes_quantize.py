import numpy as np
import pytest

from snn2hw import golden
from snn2hw.errors import QuantizationError
from snn2hw.ir import Reset, SourceLayer, SourceNetwork
from snn2hw.passes.quantize import quantize, signed_bits


def _source(weight_scale=1.0, beta=0.9375, integer=True, seed=0):
    rng = np.random.default_rng(seed)
    def values(shape):
        v = rng.integers(-7, 8, shape).astype(float)
        return v if integer else v * 0.037 * weight_scale
    return SourceNetwork((SourceLayer("fc1", values((6, 4)), values(6), beta, 3.0 if integer else 0.11, Reset.SUBTRACT),
                          SourceLayer("fc2", values((3, 6)), np.zeros(3), 0.5, 2.0 if integer else 0.074, Reset.ZERO)))


def test_integer_model_compiles_exactly_and_behaves_the_same():
    source = _source()
    network, report = quantize(source)
    assert report.exact and report.frac_bits == 8
    for src, layer in zip(source.layers, network.layers):
        assert np.array_equal(layer.weight, src.weight) and layer.threshold == src.threshold
    assert network.layers[0].beta_q == 240
    spikes = (np.random.default_rng(1).random((8, 10, 4)) < 0.5).astype(np.uint8)
    # beta 0.9375 and 0.5 are exact; the float model keeps fractions but spikes agree in this range
    assert golden.run(network, spikes).output.shape == (8, 10, 3)


def test_frac_bits_grow_to_represent_beta_exactly():
    network, report = quantize(_source(beta=1 / 1024))
    assert report.frac_bits == 10 and network.layers[0].beta_q == 1 and report.exact


def test_non_dyadic_beta_is_rounded_and_reported():
    network, report = quantize(_source(beta=0.9))
    assert report.frac_bits == 16 and not report.exact
    assert network.layers[0].beta_q == round(0.9 * 65536)
    assert any("beta 0.9" in note for note in report.notes)


def test_float_model_scale_folds_into_threshold():
    network, report = quantize(_source(integer=False), weight_bits=4)
    assert not report.exact and report.weight_bits == 4
    for layer in network.layers:
        assert np.abs(layer.weight).max() == 7
        assert layer.threshold >= 1
    scale = report.scales["fc1"]
    assert network.layers[0].threshold == round(0.11 * scale)


def test_integer_weights_too_wide_for_weight_bits_are_refused():
    with pytest.raises(QuantizationError, match="fc1.*--weight-bits 3"):
        quantize(_source(), weight_bits=3)


def test_signed_bits():
    assert [signed_bits(np.array(v)) for v in ([0], [-1], [1], [-8, 7], [8], [-1, 1])] == [1, 1, 2, 4, 5, 2]
