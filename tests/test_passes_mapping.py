import dataclasses

import numpy as np

import pytest

from snn2hw.errors import QuantizationError
from snn2hw.passes.mapping import map_layer, map_network

from random_networks import random_network


def test_weight_words_hold_one_crossbar_row_per_presynaptic_neuron():
    network = random_network(2, sizes=[5, 7], bias=True)
    mapping = map_network(network, lanes=3)[0]
    words = mapping.weight_words_init(network.layers[0])
    assert mapping.groups == 3 and len(words) == 5 * 3
    weight = network.layers[0].weight
    for j in range(5):
        for g in range(3):
            for k in range(3):
                expected = weight[g * 3 + k, j] if g * 3 + k < 7 else 0
                assert words[j * 3 + g][k] == expected


def test_accumulator_width_holds_every_reachable_current():
    network = random_network(4, sizes=[9, 4], weight_range=100)
    mapping = map_network(network)[0]
    weight = network.layers[0].weight
    extremes = [np.clip(weight, 0, None).sum(axis=1).max(), np.clip(weight, None, 0).sum(axis=1).min()]
    lo, hi = -(1 << (mapping.acc_bits - 1)), (1 << (mapping.acc_bits - 1)) - 1
    assert all(lo <= value <= hi for value in extremes)


def test_lanes_are_capped_at_layer_width():
    network = random_network(1, sizes=[3, 2, 5])
    assert [m.lanes for m in map_network(network, lanes=4)] == [2, 4]


def test_spram_image_packs_lanes_column_by_column():
    network = random_network(6, sizes=[4, 9], weight_range=7)       # 4-bit weights: 4 lanes per column
    layer = network.layers[0]
    mapping = map_layer(layer, lanes=9, spram_lanes=6)
    assert (mapping.spram_field_bits, mapping.lanes_per_column, mapping.spram_columns) == (4, 4, 2)
    image = mapping.spram_image(layer)
    assert len(image) == 2 * mapping.weight_words
    matrix = mapping.weight_matrix(layer)
    for column in range(2):
        for address in range(mapping.weight_words):
            word = image[column * mapping.weight_words + address]
            for k in range(4):
                lane = column * 4 + k
                field = (word >> (4 * k)) & 0xF
                value = field - 16 if field & 8 else field
                assert value == (matrix[address, lane] if lane < 6 else 0)
    assert np.array_equal(np.array(mapping.weight_words_init(layer)), matrix[:, 6:])


def test_spram_placement_is_validated():
    layer = random_network(1, sizes=[3, 5]).layers[0]
    mapping = map_layer(layer, lanes=2)
    with pytest.raises(QuantizationError, match="SPRAM lanes"):
        dataclasses.replace(mapping, spram_lanes=3)
    with pytest.raises(QuantizationError, match="exceed one SPRAM"):
        dataclasses.replace(mapping, n_in=20000, spram_lanes=1)


def test_per_neuron_parameters_get_roms_and_the_membrane_holds_the_largest_threshold():
    network = random_network(2, sizes=[4, 7], state_bits=8, per_neuron=True)
    layer = network.layers[0]
    mapping = map_layer(layer, 3)
    assert mapping.threshold_bits == int(layer.threshold.max()).bit_length()
    assert mapping.beta_bits == int(layer.beta_q.max()).bit_length()
    assert mapping.membrane_bits(8, layer.threshold) == mapping.membrane_bits(8, int(layer.threshold.max()))
    words = mapping.group_words(layer.threshold)
    assert words[0] == layer.threshold[:3].tolist() and words[2] == [layer.threshold[6], 0, 0]
    scalar = map_layer(random_network(2, sizes=[4, 7], state_bits=8).layers[0], 3)
    assert (scalar.threshold_bits, scalar.beta_bits) == (0, 0) and "beta_bits" not in scalar.to_json()


def test_integration_lanes_widen_the_weight_words_and_set_the_cycles_per_spike():
    layer = random_network(3, sizes=[5, 10]).layers[0]
    mapping = map_layer(layer, 2, integration_lanes=4)
    assert (mapping.accumulators, mapping.weight_lanes, mapping.weight_groups) == (True, 4, 3)
    assert (mapping.groups, mapping.weight_words, mapping.integration_cycles) == (5, 15, 3)
    assert mapping.fire_cycles == 5 + 5 + 1              # one drain cycle before the fire pass
    words = mapping.weight_matrix(layer)
    assert words.shape == (15, 4)
    assert np.array_equal(words[1 * 3 + 2, :2], layer.weight[8:10, 1])   # row j = 1, weight group 2
    assert not words[1 * 3 + 2, 2:].any()                                # padding lanes
    assert map_layer(layer, 4, integration_lanes=3).integration_lanes == 0   # not wider than lanes: unused
    with pytest.raises(QuantizationError, match="integration lanes"):
        dataclasses.replace(mapping, integration_lanes=11)


def test_weights_of_minus_and_plus_one_are_stored_as_one_bit():
    layer = random_network(4, sizes=[6, 8]).layers[0]
    layer = dataclasses.replace(layer, weight=np.where(layer.weight >= 0, 1, -1))
    mapping = map_layer(layer, 4, spram_lanes=4)
    assert (mapping.binary_weights, mapping.weight_bits, mapping.weight_value_bits) == (True, 1, 2)
    assert mapping.lanes_per_column == 16
    assert np.array_equal(mapping.stored_weights(layer), (mapping.weight_matrix(layer) > 0).astype(np.int64))
    column = np.array(mapping.spram_image(layer))
    expected = (mapping.stored_weights(layer) << np.arange(4)).sum(axis=1)
    assert np.array_equal(column, expected)
    # a padding lane's weight 0 has no one-bit code: only when no lane pads, or padding has no accumulator
    assert not map_layer(layer, 3).binary_weights
    assert map_layer(layer, 1, integration_lanes=3).binary_weights
    # as recorded in network.json: a design compiled before the one-bit encoding keeps two-bit weights
    kept = map_layer(layer, 4, spram_lanes=4, binary=False)
    assert (kept.binary_weights, kept.weight_bits, kept.lanes_per_column) == (False, 2, 8)
    assert mapping.to_json()["binary_weights"] is True and "binary_weights" not in kept.to_json()
