import numpy as np
import pytest

from snn2hw.backends.boards import board_names, load_board
from snn2hw.backends.resources import board_budget, check_fit, ebr_blocks, estimate_resources
from snn2hw.passes.cost import network_cost
from snn2hw.conv_geometry import ConvGeometry
from snn2hw.ir import Layer, Network, Reset
from snn2hw.passes.placement import LOGIC_MARGIN, busy_cycles, place_network
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



def test_auto_placement_integrates_a_busy_convolution_by_window_when_the_board_has_room():
    """A 3x3 convolution on an 8x8 map fed about 19 spikes per timestep: by window (a cycle per spike beside the
    fire pass) the conv layer is several times less busy than by kernel offset, and the design still fits."""
    rng = np.random.default_rng(1)
    geometry = ConvGeometry(in_shape=(1, 8, 8), out_channels=8, kernel=(3, 3))
    conv = Layer("conv", geometry.lower(rng.integers(-7, 8, (8, 1, 3, 3))), np.zeros(288, np.int64), 224, 8, 8,
                 Reset.SUBTRACT, conv=geometry)
    dense = Layer("fc", rng.integers(-7, 8, (10, 288)), np.zeros(10, np.int64), 224, 8, 8, Reset.SUBTRACT)
    network, board = Network((conv, dense), state_bits=12), load_board("ice40")
    mappings = place_network(network, board_budget(board), None, spikes=[300.0, 900.0], timesteps=16)
    assert mappings[0].window and mappings[0].weight_memory_bits == 0
    by_offset = place_network(network, board_budget(board), 8)[0]      # fixed lanes: by kernel offset
    assert not by_offset.window
    assert 3 * busy_cycles(mappings[0], 300.0, 16) < busy_cycles(by_offset, 300.0, 16)
    check_fit(network, mappings, board)
    # without a logic budget (Verilog only) a convolution integrates by kernel offset
    assert not any(m.window for m in place_network(network, board_budget(load_board("generic")), None,
                                                   spikes=[300.0, 900.0], timesteps=16))
