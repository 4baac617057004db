"""The figures of report.html and of ``snn2hw explore``, drawn with matplotlib and returned as SVG text.

Figures are made with :class:`matplotlib.figure.Figure` (no pyplot, no global backend state), rendered by
the SVG backend with text kept as text and a fixed hash salt and no date, so the same data gives the same
SVG bytes.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["svg", "resource_bars", "memory_map", "stage_cycles", "spike_raster", "membrane_traces",
           "design_space"]

_SVG_PARAMS = {"svg.fonttype": "none", "svg.hashsalt": "snn2hw", "font.size": 9}
_USED, _FREE, _FRONT, _OTHER = "#3060a0", "#d8dde6", "#c03030", "#8090a0"


def svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), for inlining in HTML or writing to a file."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_PARAMS):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_SVG_PARAMS):
        return Figure(figsize=(width, height), layout="constrained")


def resource_bars(resources: dict[str, dict]) -> Figure:
    """Per resource, the share of the board in use (resources with a known use and size only)."""
    rows = [(name, use["used"], use["available"]) for name, use in resources.items()
            if use.get("used") is not None and use.get("available")]
    figure = _figure(6.0, 0.45 * max(len(rows), 1) + 0.6)
    axes = figure.add_subplot()
    names = [name for name, _, _ in rows]
    shares = [100 * used / available for _, used, available in rows]
    axes.barh(names, [100] * len(rows), color=_FREE)
    axes.barh(names, shares, color=_USED)
    for index, (_, used, available) in enumerate(rows):
        axes.text(101, index, f"{used:,} / {available:,} ({100 * used / available:.1f} %)", va="center")
    axes.set_xlim(0, 150)
    axes.set_xticks([0, 25, 50, 75, 100])
    axes.set_xlabel("% of the board")
    axes.invert_yaxis()
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def memory_map(layers: list[dict]) -> Figure:
    """Stacked bits of each layer's memories (``layers`` as in report.json, with ``memories``)."""
    kinds = sorted({kind for layer in layers for kind in layer.get("memories", {})})
    figure = _figure(6.0, 0.45 * max(len(layers), 1) + 1.0)
    axes = figure.add_subplot()
    names = [layer["name"] for layer in layers]
    left = np.zeros(len(layers))
    for kind in kinds:
        bits = np.array([layer["memories"][kind]["width"] * layer["memories"][kind]["depth"]
                         if kind in layer["memories"] else 0 for layer in layers], dtype=float)
        axes.barh(names, bits, left=left, label=kind)
        left += bits
    axes.set_xlabel("bits")
    axes.invert_yaxis()
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def stage_cycles(stages: list[str], cycles: list[int]) -> Figure:
    """The cycles each stage adds to one inference."""
    figure = _figure(6.0, 0.45 * len(stages) + 0.6)
    axes = figure.add_subplot()
    axes.barh(stages, cycles, color=_USED)
    for index, value in enumerate(cycles):
        axes.text(value, index, f" {value:,}", va="center")
    axes.set_xlabel("cycles added to the inference")
    axes.set_xlim(0, max(max(cycles), 1) * 1.2)
    axes.invert_yaxis()
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def spike_raster(names: list[str], rasters: list[np.ndarray]) -> Figure:
    """One panel per population: a dot for every (timestep, neuron) spike of rasters [T, n]."""
    heights = [max(raster.shape[1], 2) for raster in rasters]
    figure = _figure(7.0, min(1.2 + 0.03 * sum(heights) + 0.5 * len(rasters), 10.0))
    panels = figure.subplots(len(rasters), 1, sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": heights})[:, 0]
    for axes, name, raster in zip(panels, names, rasters):
        steps, neurons = np.nonzero(raster)
        axes.scatter(steps, neurons, s=6, marker="|" if raster.shape[1] > 40 else "o", color=_USED)
        axes.set_xlim(-0.5, raster.shape[0] - 0.5)
        axes.set_ylim(-0.5, raster.shape[1] - 0.5)
        axes.set_ylabel(f"{name}\n({raster.shape[1]})", rotation=0, ha="right", va="center")
        axes.invert_yaxis()
    panels[-1].set_xlabel("timestep")
    return figure


def membrane_traces(names: list[str], membranes: list[np.ndarray], thresholds: list,
                    neurons: int = 6) -> Figure:
    """Per layer, the membranes [T, n] of its first ``neurons`` neurons, with the threshold dashed (one
    line per distinct threshold of the neurons shown when a layer has per-neuron thresholds)."""
    figure = _figure(7.0, 1.8 * len(membranes) + 0.4)
    panels = figure.subplots(len(membranes), 1, sharex=True, squeeze=False)[:, 0]
    for axes, name, membrane, threshold in zip(panels, names, membranes, thresholds):
        shown = min(neurons, membrane.shape[1])
        for neuron in range(shown):
            axes.step(np.arange(membrane.shape[0]), membrane[:, neuron], where="post", label=f"{neuron}", lw=1)
        for level in np.unique(np.broadcast_to(threshold, membrane.shape[1:])[:shown]):
            axes.axhline(level, color="black", ls="--", lw=0.8)
        axes.set_ylabel(f"{name}\nmembrane")
        axes.legend(title="neuron", fontsize=7, title_fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5),
                    frameon=False)
    panels[-1].set_xlabel("timestep")
    return figure


_AXIS_LABELS = {"LC": "logic cells (LC)", "LUT": "LUTs", "EBR": "block RAMs (EBR)",
                "cycles_per_inference": "cycles per inference", "us_per_inference": "us per inference"}


def design_space(explore: dict) -> Figure:
    """The points of an explore result (explore.json) on its two objectives, labelled lanes/weight bits
    (``L4/W8``; ``auto/W8`` for lanes chosen per layer), with the Pareto front as a red staircase."""
    x_key, y_key = explore["objectives"]
    placed = [point for point in explore["points"]
              if point.get(x_key) is not None and point.get(y_key) is not None]
    figure = _figure(6.0, 4.0)
    axes = figure.add_subplot()
    front = sorted((point for point in placed if point.get("pareto")), key=lambda point: point[x_key])
    others = [point for point in placed if not point.get("pareto")]
    if others:
        axes.scatter([p[x_key] for p in others], [p[y_key] for p in others], color=_OTHER, label="dominated")
    axes.plot([p[x_key] for p in front], [p[y_key] for p in front], "o-", color=_FRONT, label="Pareto front",
              drawstyle="steps-post")
    labels: dict[tuple, list[str]] = {}  # points at the same place share one label
    for point in placed:
        bits = point.get("weight_bits")
        lanes = "auto" if point["lanes"] == "auto" else f"L{point['lanes']}"
        labels.setdefault((point[x_key], point[y_key]), []).append(f"{lanes}/W{bits or 'model'}")
    for position, names in labels.items():
        axes.annotate(", ".join(names), position, textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_xlabel(_AXIS_LABELS.get(x_key, x_key))
    axes.set_ylabel(_AXIS_LABELS.get(y_key, y_key))
    axes.set_title(f"{explore.get('model', '')} on {explore.get('board', '')}", fontsize=9)
    if placed:
        axes.legend(frameon=False, fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return figure
