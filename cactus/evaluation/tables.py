"""Markdown tables of metric rows, as printed by ``cactus baseline``, ``evaluate`` and ``report``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cactus.evaluation.metrics import METRICS


def markdown_table(rows: Sequence[dict[str, Any]], *, label: str = "method", columns: Sequence[str] = METRICS,
                   digits: int = 3) -> str:
    """A table with one row per dict: ``label`` first, then ``columns`` (numbers rounded to ``digits``)."""
    header = [label, *columns]
    body = [[str(row.get(label, "")), *(_cell(row.get(c), digits) for c in columns)] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|",
    ]
    for r in body:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
