"""Score tables: methods against metrics, as the paper's Table 2."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from cactus.evaluation.metrics import METRICS


def score_table(rows: Sequence[dict]) -> None:
    """A Table-2-style table: one row per method, the best score of each metric in bold."""
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    best = {m: max(r[m] for r in rows if r.get(m) is not None) for m in metrics}

    def cell(row: dict, metric: str) -> str:
        value = row.get(metric)
        if value is None:
            return "–"
        text = f"{100 * value:.1f}"
        return f"**{text}**" if abs(value - best[metric]) < 1e-12 else text

    header = "| method | " + " | ".join(metrics) + " |\n|---|" + "---:|" * len(metrics) + "\n"
    body = "".join(f"| {str(r['method']).replace('|', '/')} | " + " | ".join(cell(r, m) for m in metrics) + " |\n"
                   for r in rows)
    st.markdown(header + body)
    st.caption("Scores × 100, averaged over sets; the best of each column in bold.")
