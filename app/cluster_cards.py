"""Clusterings as a page shows them: the newest of each source, coloured consistently, as cards of clusters."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from app.compare import assign_colors, cluster_label
from app.palette import color, tint
from db import ClusteringView, ModelInfo, SetDetail

SOURCE_TITLES = {"teacher": "Teacher (LLM)", "model": "CACTUS model", "reference": "Reference labels",
                 "human": "Corrected"}
#: Which clustering gives its colours to the others (the first one present), and the order of the cards.
COLOR_ANCHORS = ("teacher", "reference", "human", "model")
CARD_ORDER = ("teacher", "model", "reference", "human")


@dataclass(frozen=True)
class Shown:
    """A clustering as shown on a page: where it comes from, its title and the colour of each cluster."""

    source: str
    title: str
    clustering: ClusteringView
    colors: list[int]

    @property
    def clusters(self) -> tuple[tuple[int, ...], ...]:
        return self.clustering.clusters

    @property
    def names(self) -> tuple[str, ...]:
        return self.clustering.names


def shown_clusterings(detail: SetDetail, model: ModelInfo | None) -> dict[str, Shown]:
    """The set's newest teacher, active-model, reference and human clusterings, coloured consistently."""
    found: dict[str, ClusteringView] = {}
    for source in CARD_ORDER:
        if source == "model":
            clustering = detail.latest("model", model.id) if model is not None else None
        else:
            clustering = detail.latest(source)
        if clustering is not None:
            found[source] = clustering
    anchors = [s for s in COLOR_ANCHORS if s in found]
    palette = dict(zip(anchors, assign_colors([found[s].clusters for s in anchors]), strict=True))
    out: dict[str, Shown] = {}
    for source in CARD_ORDER:
        if source in found:
            out[source] = Shown(source, _title(source, found[source]), found[source], palette[source])
    return out


def _title(source: str, clustering: ClusteringView) -> str:
    who = clustering.producer
    if source == "reference":
        return SOURCE_TITLES[source]
    return f"{SOURCE_TITLES[source]}: {who}" if who else SOURCE_TITLES[source]


GENERATED_MARK = "<span style='color:#6b7280;font-weight:400;font-style:italic'>(generated)</span>"


def generated_names(shown: dict[str, Shown]) -> frozenset[str]:
    """Names the model generated for its clusters (not a teacher's or reference's name), as a page shows them."""
    model = shown.get("model")
    if model is None or not model.clustering.details.get("names_generated"):
        return frozenset()
    given = {n for s in ("teacher", "reference") if s in shown for n in shown[s].names}
    return frozenset(n for n in model.names if n and n not in given)


def cluster_cards(shown: Shown, texts: Sequence[str], *, flagged: frozenset[int] = frozenset(),
                  numbered: bool = False, generated: frozenset[str] = frozenset()) -> None:
    """Coloured cards, one per cluster, with the entities ``flagged`` as placed differently marked ⚑.

    Names the model generated (its own clusters' names when its details say so, or any of ``generated``: a
    corrected clustering started from the model's) are marked "(generated)".
    """
    unplaced = set(shown.clustering.details.get("unplaced") or [])
    all_generated = bool(shown.clustering.details.get("names_generated"))
    cards = []
    for c, members in enumerate(shown.clusters):
        hue = color(shown.colors[c])
        label = html.escape(cluster_label(shown.names, c))
        name = shown.names[c] if c < len(shown.names) else ""
        if name and (all_generated or name in generated):
            label += f" {GENERATED_MARK}"
        number = f"#{c + 1} " if numbered else ""
        items = []
        for i in members:
            text = html.escape(texts[i])
            style = "margin:1px 0;"
            if i in flagged:
                style += "background:#fff1b8;border-radius:4px;padding:0 4px;font-weight:600;"
                text = f"⚑ {text}"
            if i in unplaced:
                text += " <span style='color:#8a8a8a;font-style:italic'>(left out by the teacher)</span>"
            items.append(f"<li style='{style}'>{text}</li>")
        cards.append(
            f"<div class='cactus-card' style='border-left:6px solid {hue};background:{tint(hue)};border-radius:8px;"
            f"padding:8px 12px;margin:0 0 8px 0'><div style='font-weight:650;color:#1f2933'>"
            f"<span style='color:{hue}'>●</span> {number}{label} <span style='color:#6b7280;font-weight:400'>"
            f"· {len(members)}</span></div><ul style='margin:4px 0 0 0;padding-left:18px'>{''.join(items)}</ul></div>"
        )
    st.markdown("".join(cards), unsafe_allow_html=True)


def clustering_caption(clustering: ClusteringView) -> str:
    """When a clustering was made, and by what."""
    when = clustering.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    extra = ""
    if clustering.source == "model" and "threshold" in clustering.details:
        extra = f" · threshold {clustering.details['threshold']:+.2f}"
    return f"{len(clustering.clusters)} clusters · {when}{extra}"
