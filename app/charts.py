"""Plotly charts shared by the pages: training loss, validation scores by epoch, scores by method."""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from app.palette import color
from cactus.evaluation.metrics import METRICS


def loss_chart(history: Sequence[dict]) -> go.Figure | None:
    """The training (and pretraining) loss against optimizer steps, from a job's ``metrics["history"]``."""
    figure = go.Figure()
    for phase, name in (("pretrain", "pretraining loss"), ("train", "training loss")):
        points = [p for p in history if p.get("phase") == phase and p.get("loss") is not None]
        if points:
            figure.add_scatter(x=[p.get("step") for p in points], y=[p["loss"] for p in points], mode="lines",
                               name=name)
    if not figure.data:
        return None
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Loss",
                         xaxis_title="step", legend={"orientation": "h", "y": -0.25})
    return figure


def validation_chart(history: Sequence[dict]) -> go.Figure | None:
    """Validation scores after each epoch."""
    points = [p for p in history if p.get("phase") == "validate"]
    if not points:
        return None
    figure = go.Figure()
    for k, metric in enumerate(METRICS):
        if any(metric in p for p in points):
            figure.add_scatter(x=[p.get("epoch") for p in points], y=[p.get(metric) for p in points],
                               mode="lines+markers", name=metric, line={"color": color(k)})
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Validation",
                         xaxis={"title": "epoch", "dtick": 1}, yaxis_range=[0, 1.02],
                         legend={"orientation": "h", "y": -0.25})
    return figure


def score_bars(rows: Sequence[dict], title: str = "") -> go.Figure:
    """Grouped bars: one group per metric, one bar per method."""
    figure = go.Figure()
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    for k, row in enumerate(rows):
        figure.add_bar(x=metrics, y=[row.get(m) for m in metrics], name=row["method"], marker_color=color(k),
                       hovertemplate="%{x}: %{y:.3f}<extra>" + html.escape(row["method"]) + "</extra>")
    figure.update_layout(barmode="group", height=360, title=title, yaxis_range=[0, 1],
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.15})
    return figure


def sweep_chart(curve: Sequence[dict], chosen: float, title: str, *, marks: Sequence[tuple[float, str]] = ()
                ) -> go.Figure:
    """Scores against the similarity threshold (rows ``{"threshold", "NMI", ...}``), the chosen one marked.

    ``marks`` adds a dotted line per (threshold, label), e.g. the model card's threshold beside a re-chosen one.
    """
    figure = go.Figure()
    rows = sorted(curve, key=lambda r: r["threshold"])
    for k, metric in enumerate(METRICS):
        if any(metric in r for r in rows):
            figure.add_scatter(x=[r["threshold"] for r in rows], y=[r.get(metric) for r in rows], mode="lines",
                               name=metric, line={"color": color(k)})
    figure.add_vline(x=chosen, line_dash="dash", annotation_text=f"chosen {chosen:+.2f}")
    for threshold, label in marks:
        figure.add_vline(x=threshold, line_dash="dot", annotation_text=label, annotation_position="bottom right")
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=title,
                         xaxis={"title": "similarity threshold", "range": [-1, 1]}, yaxis_range=[0, 1.02],
                         legend={"orientation": "h", "y": -0.25})
    return figure
