"""Corpus: a 2-D map of every entity of a dataset (PCA over the active model's embeddings), coloured by its cluster
within its set; a click on a point opens its set on Review."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import chrome, corpus, pickers, state
from app.palette import color
from app.text import count
from cactus.errors import CactusError
from db import DatasetInfo, load_entity_sets, set_sizes
from db.exchange import best_clusterings


def figure(points: corpus.MapPoints, title: str) -> go.Figure:
    colors = [color(k) if k >= 0 else "#bbbbbb" for k in points.clusters]
    fig = go.Figure(go.Scattergl(x=points.xy[:, 0], y=points.xy[:, 1], mode="markers",
                                 marker={"size": 6, "color": colors, "opacity": 0.8},
                                 customdata=[[i] for i in points.set_ids], hovertext=points.hover,
                                 hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_layout(height=620, title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10}, dragmode="pan",
                      xaxis={"title": "PC 1", "zeroline": False}, yaxis={"title": "PC 2", "zeroline": False})
    return fig


def open_on_review(dataset: DatasetInfo, set_id: int) -> None:
    """Show the set on Review: the set list's filters are cleared so that it is in the list (the dataset picker of
    this page already holds ``dataset``)."""
    for key, default in pickers.FILTER_DEFAULTS.items():
        st.session_state[key] = default
    st.session_state.pop("sets_size", None)
    st.session_state["dataset_current"] = dataset.id
    st.session_state["sets_current"] = set_id
    st.session_state["sets_choice"] = set_id
    st.switch_page("app_pages/review.py")


chrome.page_intro("corpus", "Every entity of a dataset on one map: the active model's embeddings projected to two "
                  "dimensions (PCA), coloured by the entity's cluster within its set.")
dataset = pickers.choose_dataset()
if dataset is None:
    st.info("Upload entity sets on the Data page (or load the bundled demo) to map them.")
    st.stop()
model = state.active()
if model is None:
    st.info("The map places entities by the active model's embeddings, and no model is active: train one on the "
            "Train page or activate one on the Models page.")
    st.stop()

sizes = state.read(lambda session: set_sizes(session, dataset.id))
chosen = corpus.sample_sets(sizes, corpus.MAX_POINTS)
total = sum(sizes.values())
shown = sum(sizes[i] for i in chosen)
if not chosen:
    st.info(f"{dataset.name} has no sets small enough to draw.")
    st.stop()


def load(session):
    return load_entity_sets(session, chosen), best_clusterings(session, chosen)


loaded, clusterings = state.read(load)
texts = tuple(tuple(loaded[i].texts) for i in chosen)
try:
    with st.spinner(f"Embedding {count(shown, 'entity', 'entities')} with {model.name}…"):
        xy = state.corpus_xy(model.checkpoint, texts)
except (CactusError, OSError) as exc:
    st.error(f"The active model {model.name!r} cannot be loaded from {model.checkpoint}: {exc}.")
    st.stop()
points = corpus.map_points(xy, chosen, {i: loaded[i].id for i in chosen}, {i: loaded[i].texts for i in chosen},
                           clusterings)
if shown < total:
    st.warning(f"{dataset.name} has {count(total, 'entity', 'entities')}: the map draws a sample of "
               f"{count(len(chosen), 'whole set')} ({count(shown, 'entity', 'entities')}), at most "
               f"{corpus.MAX_POINTS:,} points.", icon=":material/scatter_plot:")
sources = sorted({c.source for c in clusterings.values()})
st.caption(f"{count(shown, 'entity', 'entities')} of {count(len(chosen), 'set')} · embeddings of {model.name} "
           f"({model.mode.upper()}, within each set) · colour: the entity's cluster within its set, from "
           + (", ".join(sources) if sources else "no clustering yet")
           + " clusterings (a person's, else the teacher's, else the model's, else the reference) · grey: its set "
           "has no clustering. Click a point to open its set on Review.")
event = st.plotly_chart(figure(points, f"{dataset.name} · {model.name}"), key="corpus_map", on_select="rerun",
                        selection_mode="points", config={"displaylogo": False})
clicked = corpus.clicked_set(event)
if clicked is not None:
    open_on_review(dataset, clicked)
