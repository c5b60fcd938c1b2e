"""The pairwise similarity heatmap of one set: rows and columns ordered by cluster, cluster blocks outlined.

Colours: the cells use a diverging scale centred on the model's threshold (warm above it: pairs that
average-link clustering tends to join; cool below it), and each cluster's outline and tick labels take its
palette colour (:mod:`app.palette`), the same as its card.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.compare import Clusters, cluster_label, heatmap_order
from app.palette import color

MAX_TICK_CHARS = 48
SHOW_VALUES_UP_TO = 14  # entities; larger sets show colours only


def _short(text: str, limit: int = MAX_TICK_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def similarity_figure(
    similarity: np.ndarray,
    texts: Sequence[str],
    clusters: Clusters,
    names: Sequence[str],
    colors: Sequence[int],
    *,
    threshold: float,
    title: str,
) -> go.Figure:
    """A Plotly heatmap of an (N, N) similarity matrix ordered and outlined by ``clusters``.

    Args:
        similarity: cosine similarities, shape (N, N).
        texts: the N entity texts (hover and tick labels).
        clusters, names: the clustering that orders the rows and draws the outlines.
        colors: palette index of each cluster (see :func:`app.compare.assign_colors`).
        threshold: the model's clustering threshold, the midpoint of the colour scale.
        title: shown above the figure.
    """
    size = len(texts)
    matrix = np.asarray(similarity, dtype=float)
    if matrix.shape != (size, size):
        raise ValueError(f"a {matrix.shape} similarity matrix for a set of {size} entities")
    order, starts = heatmap_order(clusters)
    z = matrix[np.ix_(order, order)]  # (N, N), rows and columns in cluster order
    cluster_of = np.empty(size, dtype=int)
    for c in range(len(clusters)):
        cluster_of[starts[c]:starts[c + 1]] = c
    row_color = [color(colors[cluster_of[k]]) for k in range(size)]
    # Rows name their entity; columns only number it (the hover names both), which leaves room for the cells.
    row_ticks = [f"<span style='color:{row_color[k]}'>{html.escape(_short(texts[i]))} <b>{k + 1}</b></span>"
                 for k, i in enumerate(order)]
    column_ticks = [f"<span style='color:{row_color[k]}'><b>{k + 1}</b></span>" for k in range(size)]

    labels = [html.escape(cluster_label(names, c)) for c in range(len(clusters))]
    custom = np.empty((size, size, 3), dtype=object)
    for r in range(size):
        for k in range(size):
            same = "same cluster" if cluster_of[r] == cluster_of[k] else (
                f"{labels[cluster_of[r]]} / {labels[cluster_of[k]]}")
            side = "above" if z[r, k] > threshold else "below"
            custom[r, k] = (html.escape(texts[order[r]]), html.escape(texts[order[k]]), f"{same}; {side} threshold")

    low = float(min(z.min(), threshold - 0.1))
    heat = go.Heatmap(
        z=z, x=list(range(size)), y=list(range(size)), customdata=custom,
        zmin=low, zmax=1.0, zmid=threshold, colorscale="RdBu_r",
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<br>similarity %{z:.3f}"
                      "<extra>%{customdata[2]}</extra>",
        colorbar={"title": {"text": "cosine"}, "tickvals": [low, threshold, 1.0],
                  "ticktext": [f"{low:.2f}", f"threshold {threshold:+.2f}", "1.00"]},
        xgap=1, ygap=1,
    )
    if size <= SHOW_VALUES_UP_TO:
        heat.update(text=np.round(z, 2), texttemplate="%{text:.2f}", textfont={"size": 10})
    figure = go.Figure(heat)

    for c in range(len(clusters)):
        lo, hi = starts[c] - 0.5, starts[c + 1] - 0.5
        figure.add_shape(type="rect", x0=lo, x1=hi, y0=lo, y1=hi, line={"color": color(colors[c]), "width": 3})
    for boundary in starts[1:-1]:
        for axis in ("x", "y"):
            line = {"x0": boundary - 0.5, "x1": boundary - 0.5, "y0": -0.5, "y1": size - 0.5} if axis == "x" else {
                "y0": boundary - 0.5, "y1": boundary - 0.5, "x0": -0.5, "x1": size - 0.5}
            figure.add_shape(type="line", line={"color": "rgba(60,60,60,0.55)", "width": 1, "dash": "dot"}, **line)

    height = int(min(1000, max(440, 34 * size + 160)))
    figure.update_layout(
        title={"text": html.escape(title, quote=False), "font": {"size": 15}},
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"tickmode": "array", "tickvals": list(range(size)), "ticktext": column_ticks,
               "showgrid": False, "constrain": "domain", "automargin": True},
        yaxis={"tickmode": "array", "tickvals": list(range(size)), "ticktext": row_ticks, "autorange": "reversed",
               "showgrid": False, "scaleanchor": "x", "automargin": True},
        plot_bgcolor="white",
    )
    return figure
