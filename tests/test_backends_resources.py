import pytest

from snn2hw.backends.boards import board_names, load_board
from snn2hw.backends.resources import board_budget, check_fit, ebr_blocks, estimate_resources
from snn2hw.passes.cost import network_cost
from snn2hw.passes.placement import LOGIC_MARGIN, place_network
from snn2hw.errors import ResourceError
from snn2hw.passes.mapping import map_network

from random_networks import random_network


def test_ebr_tiling_picks_the_cheapest_shape():
    assert ebr_blocks(16, 256) == 1 and ebr_blocks(4, 1024) == 1 and ebr_blocks(4, 1025) == 2
    assert ebr_blocks(32, 100) == 2 and ebr_blocks(1, 4096) == 2


def test_boards_are_described_as_data():
    assert {"ice40", "generic"} <= set(board_names())
    ice40 = load_board("ice40")
    assert ice40.device == "iCE40UP5K-SG48" and ice40.resources["EBR"] == 30


def test_a_model_too_big_for_the_up5k_is_refused_with_what_it_needs():
    network = random_network(0, sizes=[784, 512, 10], weight_range=100, bias=False)
    mappings = map_network(network)
    with pytest.raises(ResourceError, match=r"iCE40UP5K-SG48: layer memories need \d+ block RAMs .* the board has "
                                            r"28 block RAMs for layers .* and 4 SPRAM blocks"):
        check_fit(network, mappings, load_board("ice40"))
    check_fit(network, mappings, load_board("generic"))      # Verilog only: no limit


def test_estimate_counts_every_layer_memory():
    network = random_network(1, sizes=[16, 32, 4], bias=True)
    estimate = estimate_resources(network, map_network(network), load_board("ice40"))
    assert estimate["EBR"]["available"] == 30 and estimate["EBR"]["used"] >= 2
    assert estimate["LC"]["used"] > 0 and estimate["SPRAM"]["used"] == 0


def test_auto_placement_moves_large_layers_to_spram_and_fits_the_up5k():
    network = random_network(3, sizes=[784, 128, 10], weight_range=7, bias=False)
    board = load_board("ice40")
    mappings = place_network(network, board_budget(board), None)
    assert mappings[0].spram_lanes > 0 and mappings[0].groups <= 16
    check_fit(network, mappings, board)
    cost = network_cost(network, mappings, board_budget(board).block_shapes)
    assert cost.blocks("SPRAM") <= 4 and cost.logic_cells <= 5280


def test_fixed_lanes_are_kept_and_small_networks_stay_in_block_ram():
    network = random_network(4, sizes=[16, 32, 4])
    mappings = place_network(network, board_budget(load_board("ice40")), 3)
    assert [m.lanes for m in mappings] == [3, 3] and all(m.spram_lanes == 0 for m in mappings)


def test_auto_placement_integrates_a_busy_layer_into_accumulators_when_the_board_has_room():
    network = random_network(5, sizes=[64, 128, 10], weight_range=7, bias=False)
    board = load_board("ice40")
    mappings = place_network(network, board_budget(board), None, spikes=[300.0, 200.0], timesteps=16)
    first = mappings[0]
    assert first.accumulators and first.integration_lanes > first.lanes
    assert first.integration_cycles < place_network(network, board_budget(board), 16)[0].integration_cycles
    check_fit(network, mappings, board)
    cost = network_cost(network, mappings, board_budget(board).block_shapes)
    assert cost.logic_cells <= LOGIC_MARGIN * 5280
    # without a logic budget (Verilog only) no accumulators are added
    assert not any(m.accumulators for m in place_network(network, board_budget(load_board("generic")), None,
                                                         spikes=[300.0, 200.0], timesteps=16))
