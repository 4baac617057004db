"""Human-readable renderings of report.json: a terminal table and report.md."""

from __future__ import annotations

__all__ = ["report_rows", "render_text", "render_markdown"]


def _fmt(value) -> str:
    if value is None:
        return "-"
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
        rows.append((name, _fmt(used), _fmt(available), share))
    return rows


def report_rows(report: dict) -> dict[str, list[tuple]]:
    """The report as titled tables of rows (the first row of each is its header)."""
    latency = report.get("latency", {})
    summary = [("item", "value"), ("board", f"{report.get('board')} ({report.get('device') or 'no device'})"),
               ("resources from", report.get("resources_source", "-")),
               ("Fmax", f"{_fmt(report.get('fmax_mhz'))} MHz"),
               ("timesteps", _fmt(latency.get("timesteps"))),
               ("cycles per timestep", _fmt(latency.get("cycles_per_timestep"))),
               ("cycles per inference", f"{_fmt(latency.get('cycles_per_inference'))} ({latency.get('source')})"),
               ("us per inference", _fmt(latency.get("us_per_inference")))]
    resources = [("resource", "used", "available", "use")] + _resource_rows(report)
    layers = [("layer", "neurons", "fan-in", "weight bits", "lanes", "memory", "reset", "threshold")]
    layers += [(layer["name"], _fmt(layer["neurons"]), _fmt(layer["fan_in"]), _fmt(layer["weight_bits"]),
                _fmt(layer.get("lanes")), layer.get("memory", "-"), layer.get("reset", "-"),
                _fmt(layer.get("threshold"))) for layer in report.get("layers", [])]
    return {"Summary": summary, "Resources": resources, "Layers": layers}


def render_text(report: dict) -> str:
    """Aligned plain-text tables for the terminal."""
    blocks = []
    for title, rows in report_rows(report).items():
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        lines = [title]
        for index, row in enumerate(rows):
            lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


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
