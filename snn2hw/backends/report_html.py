"""report.html: one self-contained page (inline CSS and SVG, no scripts, no external URLs) of a design.

Sections: summary (board, Fmax, latency), resource use against the board, per-layer memory map, cycle
breakdown, a spike raster and membrane traces of one sample, and the design-space plot of an explore run
when one is given.
"""

from __future__ import annotations

import html
from pathlib import Path

from . import plots
from .design import write_text_atomically
from .report_text import report_rows
from .sample_trace import SampleTrace

__all__ = ["render_html", "write_html", "HTML_FILE"]

HTML_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.8em; text-align: left; }
th { border-bottom: 1px solid #888; } tr:nth-child(even) td { background: #f3f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #f6f2e4; padding: 0.5em 1em; border-left: 3px solid #c9a227; }
figure { margin: 0.5em 0; } svg { max-width: 100%; height: auto; }
"""


def _table(rows: list[tuple]) -> str:
    """An HTML table; the first row is the header, numeric-looking cells are right-aligned."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in rows[0])
    body = []
    for row in rows[1:]:
        cells = []
        for cell in row:
            text = str(cell)
            numeric = text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
            cells.append(f"<td class=\"num\">{html.escape(text)}</td>" if numeric else
                         f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(figure) -> str:
    return f"<figure>{plots.svg(figure)}</figure>"


def _memory_rows(layers: list[dict]) -> list[tuple]:
    rows = [("layer", "memory", "width", "depth", "bits")]
    for layer in layers:
        for name, shape in layer.get("memories", {}).items():
            rows.append((layer["name"], name, shape["width"], f"{shape['depth']:,}",
                         f"{shape['width'] * shape['depth']:,}"))
    return rows


def _sample_section(sample: SampleTrace) -> list[str]:
    names = ["input"] + sample.layers
    rows = [("stage", "spikes", "cycles added")]
    rows += [(name, f"{int(raster.sum()):,}", f"{cycles:,}")
             for name, raster, cycles in zip(names, [sample.inputs] + sample.spikes, sample.stage_cycles)]
    rows.append(("total", "", f"{sum(sample.stage_cycles):,}"))
    source = "RTL simulation + golden model" if sample.source == "rtl" else "golden model"
    return ["<h2>Cycle breakdown</h2>",
            f"<p>One inference of {html.escape(sample.stimulus)} ({sample.inputs.shape[0]} timesteps): the "
            f"cycles each stage adds to the latency, from the cycle model (layers overlap in a pipeline, so "
            f"a layer adds only what it does not hide behind the previous one). Measured: "
            f"{sample.cycles:,} cycles ({'RTL simulation' if sample.source == 'rtl' else 'cycle model'}).</p>",
            _figure(plots.stage_cycles(sample.stages, sample.stage_cycles)), _table(rows),
            f"<h2>Spike raster and membranes of {html.escape(sample.stimulus)} ({source})</h2>",
            f"<p class=\"note\">Source: <b>{html.escape(source)}</b>. {html.escape(sample.note)}</p>",
            _figure(plots.spike_raster(names, [sample.inputs] + sample.spikes)),
            "<p>Membranes of the first neurons of each layer (dashed: threshold).</p>",
            _figure(plots.membrane_traces(sample.layers, sample.membranes, sample.thresholds))]


def _explore_section(explore: dict) -> list[str]:
    x_key, y_key = explore["objectives"]
    rows = [("lanes", "weight bits", x_key, y_key, "Pareto", "status")]
    rows += [(point["lanes"], point.get("weight_bits") or "model", point.get(x_key) if point.get(x_key) is not None
              else "-", point.get(y_key) if point.get(y_key) is not None else "-",
              "yes" if point.get("pareto") else "", point.get("error") or "ok") for point in explore["points"]]
    return ["<h2>Design space</h2>",
            f"<p>snn2hw explore of {html.escape(str(explore.get('model')))}: Pareto front over "
            f"({html.escape(x_key)}, {html.escape(y_key)}).</p>", _figure(plots.design_space(explore)), _table(rows)]


def render_html(report: dict, sample: SampleTrace | None = None, explore: dict | None = None) -> str:
    """The page for ``report`` (report.json), with ``sample``'s activity and ``explore``'s design space."""
    tables = report_rows(report)
    fmax = report.get("fmax_mhz")
    latency = report.get("latency", {})
    headline = (f"Fmax {fmax} MHz (nextpnr), {latency.get('us_per_inference')} us per inference"
                if fmax else "Not built yet: resources are the compiler's estimate, no Fmax (run snn2hw build)")
    parts = [f"<h1>snn2hw report: {html.escape(str(report.get('board')))} "
             f"({html.escape(str(report.get('device') or 'no device'))})</h1>",
             f"<p><b>{html.escape(headline)}</b>; {latency.get('cycles_per_inference')} cycles per inference "
             f"({html.escape(str(latency.get('stimulus', '')))}).</p>", _table(tables["Summary"]),
             "<h2>Resources</h2>",
             f"<p>Source: {html.escape(str(report.get('resources_source', '-')))}.</p>"]
    if any(use.get("used") is not None and use.get("available") for use in report.get("resources", {}).values()):
        parts.append(_figure(plots.resource_bars(report["resources"])))
    parts += [_table(tables["Resources"]), "<h2>Layers and memory map</h2>", _table(tables["Layers"])]
    if report.get("layers"):
        parts += [_figure(plots.memory_map(report["layers"])), _table(_memory_rows(report["layers"]))]
    if sample is not None:
        parts += _sample_section(sample)
    if explore is not None:
        parts += _explore_section(explore)
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>snn2hw report</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_html(outdir, report: dict, sample: SampleTrace | None = None, explore: dict | None = None) -> Path:
    """Write ``OUTDIR/report.html`` atomically; return its path."""
    path = Path(outdir) / HTML_FILE
    write_text_atomically(path, render_html(report, sample, explore))
    return path
