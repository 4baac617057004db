"""Choose each layer's lanes and weight placement for a board (``--lanes auto|N``).

Weights: a layer's weight words go to block RAM; while the block RAMs estimated by :mod:`.cost` exceed
the board's, the layer with the largest weight memory moves as many lanes as the free SPRAM columns hold
into SPRAM (depth permitting), then the next.

``auto`` lanes: start from one lane per layer; repeatedly take the layer with the most busy cycles
(``work * groups``, work = its input spikes plus timesteps per inference on reference stimuli) and halve its
groups (``lanes = ceil(neurons / ceil(groups / 2))``; a convolution's lanes are its channels halved a whole
number of times, see :func:`.mapping.conv_lanes`: a request that changes nothing ends its growth); keep the step
if the estimate still fits the board (logic at most :data:`LOGIC_MARGIN` of it; while nothing fits, a step
that needs fewer block RAMs is kept), else stop growing that layer. Without a logic budget, lanes stop at
:data:`UNBOUNDED_MAX_LANES`. Then, when the board has a logic budget and the design fits it, the layers are
re-picked, busiest first (:func:`busy_cycles`): a dense layer without a dense recurrence tries its ``auto`` lanes
and every pair of fewer fire lanes (that halve its groups) with wider integration lanes into flip-flop
accumulators (:mod:`.mapping`), a convolution its ``auto`` lanes by kernel offset and those lanes or fewer
(halved) by window; a choice is kept if the design still fits and the pace (the layers run as a pipeline, at
their busiest one's) drops, or stays and the logic cells drop. Up to :data:`MAX_PASSES` passes over the layers,
until nothing changes.
"""

from __future__ import annotations

from typing import Sequence

from ..ir import Network
from .cost import Budget, network_cost
from .mapping import SPRAM_DEPTH, LayerMapping, ceil_div, map_layer

__all__ = ["place_network", "busy_cycles", "LOGIC_MARGIN", "UNBOUNDED_MAX_LANES", "MAX_PASSES"]

LOGIC_MARGIN = 0.9
UNBOUNDED_MAX_LANES = 16
MAX_PASSES = 3          # re-picking fire and integration lanes, over all layers


def _with_spram(network: Network, lanes: Sequence[int], budget: Budget, integration: Sequence[int] = (),
                windows: Sequence[bool] = ()) -> tuple[LayerMapping, ...]:
    integration = list(integration) or [0] * len(lanes)
    windows = list(windows) or [False] * len(lanes)
    mappings = [map_layer(layer, n, 0, i, window=w)
                for layer, n, i, w in zip(network.layers, lanes, integration, windows)]
    free_columns = budget.spram_blocks
    by_size = sorted(range(len(mappings)), key=lambda i: -mappings[i].weight_memory_bits)
    for index in by_size:
        cost = network_cost(network, tuple(mappings), budget.block_shapes)
        if budget.block_rams is None or cost.blocks("EBR") <= budget.block_rams or free_columns == 0:
            break
        mapping = mappings[index]
        if mapping.weight_words > SPRAM_DEPTH or mapping.weight_bits > 16:
            continue
        spram_lanes = min(mapping.weight_lanes, free_columns * mapping.lanes_per_column)
        mappings[index] = map_layer(network.layers[index], mapping.lanes, spram_lanes, mapping.integration_lanes)
        free_columns -= mappings[index].spram_columns
    return tuple(mappings)


def _better(network: Network, trial: tuple[LayerMapping, ...], current: tuple[LayerMapping, ...],
            budget: Budget) -> bool:
    """Take ``trial`` if it fits, or whenever ``current`` does not fit either (a layer too deep for SPRAM
    at few lanes may fit it at more)."""
    if network_cost(network, trial, budget.block_shapes).fits(budget, LOGIC_MARGIN):
        return True
    return not network_cost(network, current, budget.block_shapes).fits(budget, LOGIC_MARGIN)


def busy_cycles(mapping: LayerMapping, spikes: float, timesteps: int) -> float:
    """A layer core's cycles per inference for ``spikes`` input spikes over ``timesteps`` (integration and
    fire passes, not counting waits; a conv layer's spikes spread evenly over its inputs). An accumulator
    core integrates beside its fire pass, one pass per integration group: with several groups the busier of
    the two sets the pace; with one, the fire pass waits for the pass and the pass for the fire pass. A
    convolution integrating by window takes a cycle per event beside its fire passes."""
    if mapping.window:
        return max(spikes + timesteps, timesteps * mapping.fire_cycles)
    if not mapping.accumulators:
        return spikes * float(mapping.input_integration_cycles().mean()) + timesteps * mapping.fire_cycles
    passes = mapping.weight_groups
    integration = spikes * passes + timesteps * (passes + 1)
    fire = timesteps * (mapping.fire_cycles + 1)
    return max(integration, fire) if passes > 1 else integration + fire


def place_network(network: Network, budget: Budget, lanes: int | None, spikes: Sequence[float] = (),
                  timesteps: int = 1) -> tuple[LayerMapping, ...]:
    """Mappings for every layer: ``lanes`` each (capped at the layer's width), or chosen automatically
    (``lanes=None``) from each layer's input ``spikes`` per inference (default: its fan-in) over
    ``timesteps``."""
    if lanes is not None:
        return _with_spram(network, [lanes] * len(network.layers), budget)
    spikes = list(spikes) or [float(layer.n_in) for layer in network.layers]
    current = _grow_lanes(network, budget, [count + timesteps for count in spikes])
    return _widen_integration(network, budget, current, spikes, timesteps)


def _grow_lanes(network: Network, budget: Budget, activity: Sequence[float]) -> list[int]:
    """The ``auto`` lanes (module docstring)."""
    current = [1] * len(network.layers)
    best = _with_spram(network, current, budget)
    growing = set(range(len(current)))
    while growing:
        index = max(growing, key=lambda i: activity[i] * best[i].groups)
        layer, groups = network.layers[index], best[index].groups
        if groups == 1 or (budget.logic_cells is None and current[index] >= UNBOUNDED_MAX_LANES):
            growing.discard(index)
            continue
        trial = list(current)
        trial[index] = ceil_div(layer.n_out, ceil_div(groups, 2))
        if budget.logic_cells is None:
            trial[index] = min(trial[index], UNBOUNDED_MAX_LANES)
        mappings = _with_spram(network, trial, budget)
        if mappings[index].lanes == best[index].lanes:      # a conv layer's lanes grow by channel blocks only
            growing.discard(index)
        elif _better(network, mappings, best, budget):
            current, best = trial, mappings
        else:
            growing.discard(index)
    return current


def _widen_integration(network: Network, budget: Budget, lanes: list[int], spikes: Sequence[float],
                       timesteps: int) -> tuple[LayerMapping, ...]:
    """From the ``auto`` lanes, re-pick each dense layer's fire and integration lanes (module docstring)."""
    best = _with_spram(network, lanes, budget)
    if budget.logic_cells is None or not network_cost(network, best, budget.block_shapes).fits(budget,
                                                                                                LOGIC_MARGIN):
        return best
    limits, integration, windows = list(lanes), [0] * len(lanes), [False] * len(lanes)

    def score(mappings, cost) -> tuple[float, int]:
        """The pace (the layers run as a pipeline, at their busiest one's), then the logic cells."""
        pace = max(busy_cycles(mapping, count, timesteps) for mapping, count in zip(mappings, spikes))
        return pace, cost.logic_cells

    best_score = score(best, network_cost(network, best, budget.block_shapes))
    for _ in range(MAX_PASSES):
        changed = False
        for index in sorted(range(len(best)), key=lambda i: -busy_cycles(best[i], spikes[i], timesteps)):
            if best[index].conv is not None:      # by kernel offset at its auto lanes, or by window
                choices = [(limits[index], 0, False)] + [(limits[index] >> i, 0, True)
                                                         for i in range(limits[index].bit_length())]
            elif network.layers[index].recurrence != "dense":     # (a dense recurrence has no accumulators)
                widths = _widths(network.layers[index].n_out)
                choices = [(limits[index], 0, False)] + [(fire, wide, False) for fire in widths
                                                         if fire <= limits[index] for wide in widths if wide > fire]
            else:
                continue
            for fire, wide, window in choices:
                trial_lanes, trial_integration, trial_windows = list(lanes), list(integration), list(windows)
                trial_lanes[index], trial_integration[index], trial_windows[index] = fire, wide, window
                mappings = _with_spram(network, trial_lanes, budget, trial_integration, trial_windows)
                cost = network_cost(network, mappings, budget.block_shapes)
                trial_score = score(mappings, cost)
                if trial_score < best_score and cost.fits(budget, LOGIC_MARGIN):
                    best, best_score, changed = mappings, trial_score, True
                    lanes, integration, windows = trial_lanes, trial_integration, trial_windows
        if not changed:
            break
    return best


def _widths(neurons: int) -> list[int]:
    """Lanes that halve the groups: ceil(neurons / g) for g = 1, 2, 4, ... up to ``neurons``."""
    widths, groups = [], 1
    while groups < 2 * neurons:
        width = ceil_div(neurons, min(groups, neurons))
        if width not in widths:
            widths.append(width)
        groups *= 2
    return widths
