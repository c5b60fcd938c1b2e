"""Clustering metrics for entity sets: NMI, AMI, RI, ARI (scikit-learn) and F1 (Haponchyk et al., 2018).

Every ``*_score`` function takes two label arrays of shape (N,) (one cluster id per entity; ids are
arbitrary integers) and returns a value to maximise. Scores of a dataset are the plain mean of the
per-set scores.

Degenerate partitions, as we report them (tested in ``tests/test_metrics.py``):

- identical partitions score 1.0 on every metric, including when both are one cluster or both are
  all singletons (scikit-learn's conventions for NMI, AMI and ARI, which we keep);
- one cluster against all singletons scores 0.0 on NMI, AMI, RI and ARI; its F1 is 2 / (N + 1)
  when the truth is one cluster (precision 1, recall 1/N) and the same the other way round.

F1 follows appendix D of Tipirneni et al. (2024), after Haponchyk et al. (2018): with n_ij the number
of entities in true cluster i and predicted cluster j, precision = Σ_j max_i n_ij / N,
recall = Σ_i max_j n_ij / N, and F1 is their harmonic mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn import metrics as skm

METRICS = ("NMI", "AMI", "RI", "ARI", "F1")
SELECTION_METRICS = ("NMI", "AMI", "RI", "ARI")  # summed to pick thresholds and epochs, as in the paper


def check_labels(labels_true: Sequence[int] | np.ndarray, labels_pred: Sequence[int] | np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Validate two labelings of the same entities and return them as int arrays of shape (N,)."""
    true = np.asarray(labels_true)
    pred = np.asarray(labels_pred)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(f"labels must be 1-D (one cluster id per entity), got shapes {true.shape} and {pred.shape}")
    if true.shape != pred.shape:
        raise ValueError(f"labelings differ in length: {true.shape[0]} true vs {pred.shape[0]} predicted entities")
    if true.shape[0] == 0:
        raise ValueError("cannot score an empty set")
    return true, pred


def contingency_matrix(labels_true: Sequence[int] | np.ndarray, labels_pred: Sequence[int] | np.ndarray
                       ) -> np.ndarray:
    """n_ij: entities in true cluster i and predicted cluster j, shape (true clusters, predicted clusters)."""
    true, pred = check_labels(labels_true, labels_pred)
    return skm.cluster.contingency_matrix(true, pred)


def f1_score(labels_true: Sequence[int] | np.ndarray, labels_pred: Sequence[int] | np.ndarray) -> float:
    """F1 of Haponchyk et al. (2018): harmonic mean of cluster precision and recall (see module doc)."""
    table = contingency_matrix(labels_true, labels_pred)
    n = int(table.sum())
    precision = int(table.max(axis=0).sum()) / n  # best true cluster for each predicted cluster
    recall = int(table.max(axis=1).sum()) / n  # best predicted cluster for each true cluster
    return 2 * precision * recall / (precision + recall)


def clustering_scores(labels_true: Sequence[int] | np.ndarray, labels_pred: Sequence[int] | np.ndarray
                      ) -> dict[str, float]:
    """All five metrics of one set, keyed by :data:`METRICS`."""
    true, pred = check_labels(labels_true, labels_pred)
    return {
        "NMI": float(skm.normalized_mutual_info_score(true, pred)),
        "AMI": float(skm.adjusted_mutual_info_score(true, pred)),
        "RI": float(skm.rand_score(true, pred)),
        "ARI": float(skm.adjusted_rand_score(true, pred)),
        "F1": f1_score(true, pred),
    }


def average_scores(per_set: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over sets, plus ``"sets"``: how many were averaged."""
    rows = list(per_set)
    if not rows:
        raise ValueError("no sets to average over")
    averaged: dict[str, float] = {"sets": len(rows)}
    for name in METRICS:
        averaged[name] = float(np.mean([row[name] for row in rows]))
    return averaged


def score_sets(pairs: Iterable[tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray]]) -> dict[str, float]:
    """Average scores over ``(labels_true, labels_pred)`` pairs, one pair per set."""
    return average_scores(clustering_scores(t, p) for t, p in pairs)


def selection_score(scores: dict[str, float]) -> float:
    """NMI + AMI + RI + ARI: the criterion for choosing thresholds and epochs on validation."""
    return float(sum(scores[name] for name in SELECTION_METRICS))
