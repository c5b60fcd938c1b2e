"""Comparing clusterings of one set: agreement scores, entities placed differently, and shared colours.

Everything here is plain Python over entity positions (no Streamlit, no database), so the Review and
Correct pages stay thin and the rules are tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cactus.evaluation.metrics import clustering_scores

Clusters = Sequence[Sequence[int]]
#: Two clusters share a colour only when they overlap at least this much (Jaccard index of their members).
MIN_COLOR_OVERLAP = 0.25


def labels_of(clusters: Clusters, size: int) -> np.ndarray:
    """Cluster index of every entity, shape (N,)."""
    labels = np.full(size, -1, dtype=np.int64)
    for c, members in enumerate(clusters):
        labels[list(members)] = c
    if (labels < 0).any():
        raise ValueError(f"the clustering leaves entities {np.flatnonzero(labels < 0).tolist()[:10]} out")
    return labels


def cluster_label(names: Sequence[str], index: int) -> str:
    """What a cluster is called on screen: its name, else "Cluster k" (1-based)."""
    name = names[index].strip() if index < len(names) else ""
    return name or f"Cluster {index + 1}"


def agreement(a: Clusters, b: Clusters, size: int) -> dict[str, float]:
    """ARI and AMI between two clusterings of the same ``size`` entities (1.0 when identical)."""
    scores = clustering_scores(labels_of(a, size), labels_of(b, size))
    return {"ARI": scores["ARI"], "AMI": scores["AMI"]}


def entity_disagreement(a: Clusters, b: Clusters, size: int) -> np.ndarray:
    """For each entity, the share of the other entities that one clustering puts with it and the other not.

    0 means both clusterings place the entity with exactly the same companions; shape (N,).
    """
    if size < 2:
        return np.zeros(size)
    la, lb = labels_of(a, size), labels_of(b, size)
    together_a = la[:, None] == la[None, :]  # (N, N)
    together_b = lb[:, None] == lb[None, :]  # (N, N)
    return (together_a != together_b).sum(axis=1) / (size - 1)


@dataclass(frozen=True)
class Difference:
    """An entity that two clusterings place differently, with the cluster it is in under each."""

    entity: int
    share: float  # of the other entities whose company differs
    left: str
    right: str


def differences(a: Clusters, a_names: Sequence[str], b: Clusters, b_names: Sequence[str], size: int
                ) -> list[Difference]:
    """The entities placed differently by ``a`` and ``b``, most different first."""
    shares = entity_disagreement(a, b, size)
    la, lb = labels_of(a, size), labels_of(b, size)
    order = sorted(np.flatnonzero(shares > 0).tolist(), key=lambda i: (-shares[i], i))
    return [Difference(i, float(shares[i]), cluster_label(a_names, int(la[i])), cluster_label(b_names, int(lb[i])))
            for i in order]


def _jaccard(x: frozenset[int], y: frozenset[int]) -> float:
    return len(x & y) / len(x | y) if x or y else 0.0


def assign_colors(clusterings: Sequence[Clusters]) -> list[list[int]]:
    """Palette indices for every cluster of several clusterings of one set, shared by matching clusters.

    The first clustering (the anchor) takes colours 0, 1, 2, ... in order. Each next one is matched one to
    one against the colours given so far (Hungarian assignment on the Jaccard overlap of members); a cluster
    that overlaps no free colour by at least :data:`MIN_COLOR_OVERLAP` gets a new colour. So a group of
    entities that two clusterings agree on has one colour on every card and heatmap.

    Returns:
        one list per clustering, with one palette index per cluster.
    """
    representatives: list[frozenset[int]] = []  # members of the cluster that first took each colour
    out: list[list[int]] = []
    for clusters in clusterings:
        members = [frozenset(c) for c in clusters]
        colors = [-1] * len(members)
        if representatives and members:
            score = np.array([[_jaccard(m, r) for r in representatives] for m in members])  # (clusters, colours)
            rows, cols = linear_sum_assignment(-score)
            for row, col in zip(rows, cols, strict=True):
                if score[row, col] >= MIN_COLOR_OVERLAP:
                    colors[row] = int(col)
        for c, m in enumerate(members):
            if colors[c] < 0:
                colors[c] = len(representatives)
                representatives.append(m)
        out.append(colors)
    return out


def heatmap_order(clusters: Clusters) -> tuple[list[int], list[int]]:
    """Entity order for a heatmap (cluster by cluster, members in set order) and where each cluster starts.

    Returns:
        ``(order, starts)``: ``order[k]`` is the entity shown at row/column k; ``starts[c]`` the first row of
        cluster c, followed by one more entry, the number of entities.
    """
    order: list[int] = []
    starts: list[int] = []
    for members in clusters:
        starts.append(len(order))
        order.extend(sorted(members))
    starts.append(len(order))
    return order, starts
