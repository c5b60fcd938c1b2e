"""Choosing the clustering threshold on a new dataset's own sets, without labels.

A model's threshold is chosen on the validation split of its training data. Off that domain the similarity scale
moves (a fine-tuned model can put every pair of another domain's texts above its threshold, or below), and a
fixed threshold then clusters badly even where the similarities still rank pairs well. With labelled sets of the
new data the threshold can be swept again; without them, :func:`unlabelled_threshold` picks the threshold whose
clusterings have the highest mean silhouette (Rousseeuw, 1987) over the sets, on the distance 1 - similarity.

Sets whose cut at a threshold gives one cluster, or only singletons, score 0 there (silhouette is undefined;
scikit-learn's convention for a singleton), so a threshold that leaves everything merged or everything apart
never wins over one that finds structure. Sets of fewer than 3 entities carry no information and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import silhouette_score

from cactus.inference.cluster import THRESHOLDS, MergeTree, check_similarity, similarity_distance

#: Sets sampled from a file or dataset to choose the threshold on (spread evenly over it).
SAMPLE_SETS = 64


@dataclass(frozen=True)
class UnlabelledChoice:
    """The chosen threshold, its mean silhouette, the mean silhouette at every threshold tried, and the sets used."""

    threshold: float
    silhouette: float
    thresholds: tuple[float, ...]
    silhouettes: tuple[float, ...]
    sets: int


def set_silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of one set's clustering on a precomputed (N, N) distance; 0 for 1 cluster or N clusters."""
    clusters = len(np.unique(labels))
    if clusters < 2 or clusters >= len(labels):
        return 0.0
    return float(silhouette_score(distance, labels, metric="precomputed"))


def unlabelled_threshold(similarities: Sequence[np.ndarray],
                         thresholds: Sequence[float] = THRESHOLDS) -> UnlabelledChoice | None:
    """The threshold with the highest mean silhouette over the sets (ties: the lower threshold).

    Returns None when no set has 3 or more entities, or when no threshold reaches a positive mean silhouette
    (no cut finds structure): keep the model's own threshold then.
    """
    matrices = [check_similarity(s) for s in similarities]
    usable = [m for m in matrices if m.shape[0] >= 3]
    if not usable:
        return None
    trees = [MergeTree(m) for m in usable]
    distances = [similarity_distance(m) for m in usable]
    means = tuple(float(np.mean([set_silhouette(d, tree.cut(t)) for d, tree in zip(distances, trees, strict=True)]))
                  for t in thresholds)
    best = max(range(len(thresholds)), key=lambda i: (means[i], -i))
    if means[best] <= 0.0:
        return None
    return UnlabelledChoice(float(thresholds[best]), means[best], tuple(float(t) for t in thresholds), means,
                            len(usable))

