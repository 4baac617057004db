"""Human-readable renderings of report.json: a terminal table and report.md."""

from __future__ import annotations

__all__ = ["report_rows", "render_text", "render_markdown", "text_table", "fmt"]


def fmt(value) -> str:
    """A table cell: thousands separators, two decimals for floats, "-" for None, "lo..hi" for a list (a
    per-neuron parameter)."""
    if value is None:
        return "-"
    if isinstance(value, list) and value:
        return f"{fmt(min(value))}..{fmt(max(value))}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _resource_rows(report: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, use in report.get("resources", {}).items():
        used, available = use.get("used"), use.get("available")
        share = f"{100 * used / available:.1f} %" if used is not None and available else "-"
        rows.append((name, fmt(used), fmt(available), share))
    return rows


def report_rows(report: dict) -> dict[str, list[tuple]]:
    """The report as titled tables of rows (the first row of each is its header)."""
    latency = report.get("latency", {})
    summary = [("item", "value"), ("board", f"{report.get('board')} ({report.get('device') or 'no device'})"),
               ("resources from", report.get("resources_source", "-")),
               ("Fmax", f"{fmt(report.get('fmax_mhz'))} MHz"),
               ("timesteps", fmt(latency.get("timesteps"))),
               ("cycles per timestep", fmt(latency.get("cycles_per_timestep"))),
               ("cycles per inference", f"{fmt(latency.get('cycles_per_inference'))} ({latency.get('source')})"),
               ("us per inference", fmt(latency.get("us_per_inference")))]
    fidelity = report.get("quantization", {}).get("fidelity")
    if fidelity:
        summary.append(("float-model agreement", f"{100 * fidelity['spike_agreement']:.2f} % of output spikes, "
                        f"{100 * fidelity['class_agreement']:.2f} % of classes ({fidelity['samples']} samples of "
                        f"{fidelity['stimulus']})"))
    resources = [("resource", "used", "available", "use")] + _resource_rows(report)
    layers = [("layer", "neuron", "neurons", "fan-in", "weight bits", "lanes", "memory", "reset", "threshold")]
    layers += [(layer["name"], layer.get("neuron", "Leaky"), fmt(layer["neurons"]), fmt(layer["fan_in"]),
                fmt(layer["weight_bits"]), fmt(layer.get("lanes")), layer.get("memory", "-"), layer.get("reset", "-"),
                fmt(layer.get("threshold"))) for layer in report.get("layers", [])]
    return {"Summary": summary, "Resources": resources, "Layers": layers}


def text_table(title: str, rows: list[tuple]) -> str:
    """An aligned plain-text table under ``title``; the first row is the header."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [title]
    for index, row in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_text(report: dict) -> str:
    """Aligned plain-text tables for the terminal."""
    return "\n\n".join(text_table(title, rows) for title, rows in report_rows(report).items()) + "\n"


def render_markdown(report: dict) -> str:
    """report.md: the same tables in Markdown."""
    parts = [f"# snn2hw report: {report.get('board')}\n"]
    for title, rows in report_rows(report).items():
        parts.append(f"## {title}\n")
        parts.append("| " + " | ".join(str(cell) for cell in rows[0]) + " |")
        parts.append("|" + "---|" * len(rows[0]))
        parts += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows[1:]]
        parts.append("")
    return "\n".join(parts)
