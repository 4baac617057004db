"""The bench records as a text table (one row per workload, errors listed below it)."""

from __future__ import annotations

from typing import Callable

__all__ = ["format_table"]


def _number(digits: int, scale: float = 1.0) -> Callable[[object], str]:
    return lambda value: f"{value * scale:,.{digits}f}"


def _flag(value) -> str:
    return "yes" if value else "NO"


# header, record field, formatter of a non-None value
COLUMNS: list[tuple[str, str, Callable[[object], str]]] = [
    ("workload", "workload", str), ("samples", "samples", str),
    ("cycles/inf", "cycles_per_inference", _number(0)), ("bound", "bound_cycles", _number(0)),
    ("x bound", "ratio_to_bound", _number(2)), ("bit-exact", "bit_exact", _flag),
    ("RTL inf/s", "rtl_inferences_per_s", _number(1)), ("verify inf/s", "verify_inferences_per_s", _number(1)),
    ("LC", "lc_used", str), ("EBR", "ebr_used", str), ("SPRAM", "spram_used", str), ("DSP", "dsp_used", str),
    ("Fmax MHz", "fmax_mhz", _number(2)), ("us/inf", "us_per_inference", _number(1)),
    ("golden ms", "golden_s", _number(2, 1e3)), ("snnTorch ms", "snntorch_s", _number(2, 1e3)),
    ("golden speedup", "golden_speedup", lambda value: f"{value:.2f}x"),
]


def format_table(records: list[dict]) -> str:
    """A fixed-width table; a field that was not measured shows as ``-``."""
    rows = [[header for header, _, _ in COLUMNS]]
    rows += [["-" if record.get(field) is None else show(record[field]) for _, field, show in COLUMNS]
             for record in records]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(width) if index else cell.ljust(width)
                       for index, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"{record['workload']}: {record['error']}" for record in records if record.get("error")]
    return "\n".join(lines) + "\n"
