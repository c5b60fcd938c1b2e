"""Inference: from pairwise cosine similarities to a clustering, and the validation threshold sweep.

Average-link agglomerative clustering merges the two closest clusters while their average similarity
is above the threshold t; this equals scikit-learn's
``AgglomerativeClustering(metric="precomputed", linkage="average", distance_threshold=1 - t)`` on the
distance 1 - similarity (checked in the tests). We build the merge tree once per set with SciPy and cut
it at every threshold, which makes the sweep over 21 thresholds cost one tree per set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from cactus.evaluation.metrics import average_scores, clustering_scores, selection_score
from cactus.inference.threshold import check_threshold

THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(-1.0, 1.0001, 0.1), 1))
LINKAGES = ("average", "complete", "single")


def check_similarity(similarity: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Validate a similarity matrix of shape (N, N) with N >= 1 and finite values; return it as float64."""
    matrix = np.asarray(similarity, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"similarity must be a square (N, N) matrix, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError("similarity matrix is empty: a set needs at least one entity")
    if not np.isfinite(matrix).all():
        raise ValueError("similarity matrix holds NaN or infinite values")
    return matrix


def similarity_distance(matrix: np.ndarray) -> np.ndarray:
    """The distance 1 - similarity of a checked (N, N) similarity matrix: symmetric, zero diagonal, never negative."""
    distance = 1.0 - (matrix + matrix.T) / 2.0  # symmetrise: float noise can make sim[i,j] != sim[j,i]
    np.fill_diagonal(distance, 0.0)
    return np.clip(distance, 0.0, None)  # cosines a hair above 1 would give negative distances


class MergeTree:
    """The average-link merge tree of one set, cut at any similarity threshold."""

    def __init__(self, similarity: Sequence[Sequence[float]] | np.ndarray, *, linkage_method: str = "average"):
        if linkage_method not in LINKAGES:
            raise ValueError(f"unknown linkage '{linkage_method}'; choose one of {', '.join(LINKAGES)}")
        matrix = check_similarity(similarity)
        self.n = matrix.shape[0]
        distance = similarity_distance(matrix)
        self._tree = linkage(squareform(distance, checks=False), method=linkage_method) if self.n > 1 else None

    def merge_similarities(self) -> np.ndarray:
        """The (average) similarity at which each of the N - 1 merges happens, in merge order; shape (N - 1,)."""
        if self._tree is None:
            return np.zeros(0)
        return 1.0 - self._tree[:, 2]

    def cut(self, threshold: float) -> np.ndarray:
        """Cluster ids (0-based, ordered by first member) merging only above ``threshold``; shape (N,)."""
        threshold = check_threshold(threshold)
        if self._tree is None or threshold >= 1.0:
            return np.arange(self.n)  # nothing can be more similar than 1: every entity stays alone
        # merge while distance < 1 - t (strict, as scikit-learn's distance_threshold); fcluster keeps <=
        raw = fcluster(self._tree, t=np.nextafter(1.0 - threshold, -np.inf), criterion="distance")
        _, first = np.unique(raw, return_index=True)
        order = {raw[i]: rank for rank, i in enumerate(sorted(first))}
        return np.array([order[x] for x in raw], dtype=np.int64)


def cluster_similarity(similarity: Sequence[Sequence[float]] | np.ndarray, threshold: float) -> np.ndarray:
    """Cluster ids of shape (N,) for one set (average link at ``threshold``).

    Example:
        >>> cluster_similarity([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]], threshold=0.5).tolist()
        [0, 0, 1]
    """
    return MergeTree(similarity).cut(threshold)


@dataclass(frozen=True)
class ThresholdSweep:
    """Averaged validation scores at each threshold, and the best one by NMI + AMI + RI + ARI."""

    thresholds: tuple[float, ...]
    scores: tuple[dict[str, float], ...]
    best_threshold: float
    best_scores: dict[str, float]

    def as_rows(self) -> list[dict[str, float]]:
        return [{"threshold": t, **s} for t, s in zip(self.thresholds, self.scores, strict=True)]


def sweep_thresholds(
    similarities: Sequence[np.ndarray],
    gold_labels: Sequence[np.ndarray],
    thresholds: Sequence[float] = THRESHOLDS,
) -> ThresholdSweep:
    """Score every threshold on labelled sets and pick the best (ties go to the lowest threshold)."""
    if len(similarities) != len(gold_labels):
        raise ValueError(f"{len(similarities)} similarity matrices for {len(gold_labels)} labelled sets")
    if not similarities:
        raise ValueError("the threshold sweep needs at least one labelled validation set")
    trees = [MergeTree(s) for s in similarities]
    for tree, gold in zip(trees, gold_labels, strict=True):
        if tree.n != len(gold):
            raise ValueError(f"a similarity matrix of {tree.n} entities was paired with {len(gold)} labels")
    scores = tuple(
        average_scores(clustering_scores(gold, tree.cut(t)) for tree, gold in zip(trees, gold_labels, strict=True))
        for t in thresholds
    )
    best = max(range(len(thresholds)), key=lambda i: (selection_score(scores[i]), -i))
    return ThresholdSweep(tuple(float(t) for t in thresholds), scores, float(thresholds[best]), scores[best])
