import numpy as np

from snn2hw.passes.mapping import map_network

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
