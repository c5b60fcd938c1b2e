"""The corpus map's data, without Streamlit: which sets to draw, their entities' 2-D positions (PCA over the
active model's embeddings) and each entity's cluster within its set."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from db import ClusteringView

#: Above this many entities a dataset's map draws a seeded sample of whole sets, and says so.
MAX_POINTS = 20_000


def sample_sets(sizes: Mapping[int, int], limit: int, *, seed: int = 0) -> list[int]:
    """The sets (ids, in the order of ``sizes``) to draw: all when their entities fit ``limit``, else a seeded
    sample of whole sets that does (a set is never cut, so its clusters stay whole)."""
    if sum(sizes.values()) <= limit:
        return list(sizes)
    order = list(sizes)
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    total = 0
    for set_id in order:
        if total + sizes[set_id] <= limit:
            chosen.add(set_id)
            total += sizes[set_id]
    return [i for i in sizes if i in chosen]


def project(embeddings: np.ndarray) -> np.ndarray:
    """2-D positions (M, 2) of M embeddings (M, D) by PCA; zeros where there is too little to project."""
    from sklearn.decomposition import PCA

    if embeddings.shape[0] < 2 or embeddings.shape[1] < 2:
        return np.zeros((embeddings.shape[0], 2))
    xy = PCA(n_components=2, svd_solver="randomized", random_state=0).fit_transform(embeddings)
    return np.asarray(xy, dtype=np.float64)


@dataclass(frozen=True)
class MapPoints:
    """One point per entity: where, which set, which cluster of it, and what to show on hover."""

    xy: np.ndarray  # (M, 2)
    set_ids: list[int]
    clusters: list[int]  # the entity's cluster within its set (-1: its set has no clustering)
    hover: list[str]


def map_points(xy: np.ndarray, set_ids: Sequence[int], set_names: Mapping[int, str],
               texts: Mapping[int, Sequence[str]], clusterings: Mapping[int, ClusteringView]) -> MapPoints:
    """The points of the sets ``set_ids`` (their entities in order, as ``xy`` holds them)."""
    point_sets: list[int] = []
    point_clusters: list[int] = []
    hover: list[str] = []
    for set_id in set_ids:
        clustering = clusterings.get(set_id)
        labels = clustering.labels() if clustering is not None else [-1] * len(texts[set_id])
        for text, label in zip(texts[set_id], labels, strict=True):
            point_sets.append(set_id)
            point_clusters.append(label)
            if clustering is None:
                where = "no clustering"
            else:
                name = clustering.names[label] if label < len(clustering.names) else ""
                where = f"{clustering.source} cluster {label + 1}" + (f" “{name}”" if name else "")
            hover.append(f"{text}<br>set {set_names[set_id]} · {where}")
    if len(point_sets) != xy.shape[0]:
        raise ValueError(f"{xy.shape[0]} positions for {len(point_sets)} entities")
    return MapPoints(xy, point_sets, point_clusters, hover)


def clicked_set(selection: Any) -> int | None:
    """The set of the first point of a Plotly selection event (``customdata`` holds set ids), or None."""
    try:
        points = selection["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata")
        value = data[0] if isinstance(data, (list, tuple)) and data else data
        if value is not None:
            return int(value)
    return None
