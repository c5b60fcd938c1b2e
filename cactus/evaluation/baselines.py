"""Unsupervised baselines on frozen encoder embeddings: K-Means, Spectral and average-link agglomerative.

Each entity is embedded alone by the frozen encoder (mean-pooled, L2-normalised: NIA without training).
K-Means and Spectral need a number of clusters per set: either chosen per set by the silhouette score
(k in 2..min(N - 1, 10)) or fixed to the training split's average number of clusters; the validation split
picks the better of the two. Agglomerative clustering takes its similarity threshold from the validation
sweep. Rows follow the paper's Table 2.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score

from cactus.data.sets import Dataset, EntitySet
from cactus.evaluation.metrics import average_scores, clustering_scores, selection_score
from cactus.inference.cluster import MergeTree, sweep_thresholds

SILHOUETTE_KMAX = 10
Embedder = Callable[[Sequence[EntitySet]], list[np.ndarray]]


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """K-Means on L2-normalised embeddings of shape (N, D) into min(k, N) clusters; labels (N,)."""
    n = embeddings.shape[0]
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # identical texts give fewer distinct points than k
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embeddings)


def spectral_labels(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spectral clustering with affinity (cos + 1) / 2 (positive, so the graph is connected); labels (N,)."""
    n = embeddings.shape[0]
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if k == n:
        return np.arange(n)
    affinity = np.clip((embeddings @ embeddings.T + 1.0) / 2.0, 0.0, 1.0)  # (N, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected" on near-duplicates
        model = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="kmeans")
        return model.fit_predict(affinity)


Clusterer = Callable[[np.ndarray, int, int], np.ndarray]


def silhouette_labels(embeddings: np.ndarray, clusterer: Clusterer, fallback_k: int, seed: int) -> np.ndarray:
    """The clustering with the best cosine silhouette over k in 2..min(N - 1, 10); ``fallback_k`` when N < 3."""
    n = embeddings.shape[0]
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(n - 1, SILHOUETTE_KMAX) + 1):
        labels = clusterer(embeddings, k, seed)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(embeddings, labels, metric="cosine"))
        if best is None or score > best[0]:
            best = (score, labels)
    return best[1] if best is not None else clusterer(embeddings, fallback_k, seed)


def average_cluster_count(sets: Sequence[EntitySet]) -> int:
    """The rounded mean number of clusters of labelled sets (at least 1)."""
    return max(1, round(float(np.mean([len(s.clusters or []) for s in sets]))))


@dataclass
class KChoice:
    """How a k-based baseline chooses k: per set by silhouette, or the fixed training average."""

    strategy: str  # "silhouette" or "fixed"
    fixed_k: int

    def labels(self, embeddings: np.ndarray, clusterer: Clusterer, seed: int) -> np.ndarray:
        if self.strategy == "silhouette":
            return silhouette_labels(embeddings, clusterer, self.fixed_k, seed)
        return clusterer(embeddings, self.fixed_k, seed)


def score_labelings(sets: Sequence[EntitySet], predicted: Sequence[np.ndarray]) -> dict[str, float]:
    return average_scores(clustering_scores(s.labels(), p) for s, p in zip(sets, predicted, strict=True))


def choose_k(val_sets: Sequence[EntitySet], val_embeddings: Sequence[np.ndarray], clusterer: Clusterer,
             fixed_k: int, seed: int) -> tuple[KChoice, dict[str, dict[str, float]]]:
    """Pick the k strategy with the higher NMI + AMI + RI + ARI on validation; returns it and both scores."""
    scores = {}
    for strategy in ("silhouette", "fixed"):
        choice = KChoice(strategy, fixed_k)
        scores[strategy] = score_labelings(val_sets, [choice.labels(e, clusterer, seed) for e in val_embeddings])
    best = max(scores, key=lambda s: selection_score(scores[s]))
    return KChoice(best, fixed_k), scores


def similarity_matrices(embeddings: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cosine similarity of every set's L2-normalised embeddings, (N, D) -> (N, N)."""
    return [e @ e.T for e in embeddings]


def run_baselines(dataset: Dataset, embed: Embedder, *, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score K-Means, Spectral and Agglomerative on the test split with choices made on validation.

    Args:
        dataset: labelled train/val/test splits (train only gives the average number of clusters).
        embed: maps sets to one (N, D) L2-normalised embedding array per set (a frozen encoder).
        seed: random state of K-Means and Spectral.
        progress: called with a short message before each long step.

    Returns:
        ``{"rows": [{"method", "NMI", "AMI", "RI", "ARI", "F1"}], "choices": {...}, "validation": {...}}``.
    """
    say = progress or (lambda message: None)
    fixed_k = average_cluster_count(dataset.train)
    say("embedding validation sets")
    val_emb = embed(dataset.val)
    say("embedding test sets")
    test_emb = embed(dataset.test)
    rows: list[dict[str, Any]] = []
    choices: dict[str, Any] = {"fixed_k": fixed_k}
    validation: dict[str, Any] = {}
    for name, clusterer in (("K-Means", kmeans_labels), ("Spectral", spectral_labels)):
        say(f"{name}: choosing k on validation")
        choice, val_scores = choose_k(dataset.val, val_emb, clusterer, fixed_k, seed)
        choices[name] = choice.strategy
        validation[name] = val_scores
        say(f"{name}: clustering test sets")
        test_scores = score_labelings(dataset.test, [choice.labels(e, clusterer, seed) for e in test_emb])
        rows.append({"method": name, **_metrics(test_scores)})
    say("Agglomerative: sweeping thresholds on validation")
    sweep = sweep_thresholds(similarity_matrices(val_emb), [s.labels() for s in dataset.val])
    choices["Agglomerative"] = {"threshold": sweep.best_threshold}
    validation["Agglomerative"] = sweep.best_scores
    predicted = [MergeTree(sim).cut(sweep.best_threshold) for sim in similarity_matrices(test_emb)]
    rows.append({"method": "Agglomerative", **_metrics(score_labelings(dataset.test, predicted))})
    return {"rows": rows, "choices": choices, "validation": validation, "test_sets": len(dataset.test)}


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if k != "sets"}
