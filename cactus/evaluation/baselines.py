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
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.manifold import spectral_embedding
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from cactus.data.sets import Dataset, EntitySet
from cactus.evaluation.intervals import bootstrap_intervals
from cactus.evaluation.metrics import average_scores, clustering_scores, selection_score
from cactus.inference.cluster import MergeTree, sweep_thresholds
from cactus.inference.per_set_cut import SILHOUETTE_KMAX

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


def spectral_maps(embeddings: np.ndarray, components: int, seed: int) -> np.ndarray:
    """The spectral embedding (N, components) of the affinity (cos + 1) / 2 (positive, so the graph is connected).

    Its first k columns are the embedding that spectral clustering into k clusters uses, so one eigendecomposition
    serves every k (the silhouette search tries nine).
    """
    affinity = np.clip((embeddings @ embeddings.T + 1.0) / 2.0, 0.0, 1.0)  # (N, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected" on near-duplicates
        return spectral_embedding(affinity, n_components=components, random_state=seed, drop_first=False)


def spectral_labels_for(embeddings: np.ndarray, ks: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """Spectral clustering (K-Means on the spectral embedding) into each k of ``ks``; labels (N,) per k."""
    n = embeddings.shape[0]
    wanted = {k: max(1, min(k, n)) for k in ks}
    out = {k: np.zeros(n, dtype=np.int64) for k, kk in wanted.items() if kk == 1}
    out |= {k: np.arange(n) for k, kk in wanted.items() if kk == n and kk > 1}
    rest = {k: kk for k, kk in wanted.items() if k not in out}
    if rest:
        maps = spectral_maps(embeddings, max(rest.values()), seed)
        out |= {k: kmeans_labels(maps[:, :kk], kk, seed) for k, kk in rest.items()}
    return out


def kmeans_labels_for(embeddings: np.ndarray, ks: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """K-Means into each k of ``ks``; labels (N,) per k."""
    return {k: kmeans_labels(embeddings, k, seed) for k in ks}


#: A baseline clusterer: embeddings (N, D), the numbers of clusters wanted and a seed -> labels (N,) per k.
Clusterer = Callable[[np.ndarray, Sequence[int], int], dict[int, np.ndarray]]


def silhouette_labels(embeddings: np.ndarray, clusterer: Clusterer, fallback_k: int, seed: int) -> np.ndarray:
    """The clustering with the best cosine silhouette over k in 2..min(N - 1, 10); ``fallback_k`` when N < 3."""
    n = embeddings.shape[0]
    ks = list(range(2, min(n - 1, SILHOUETTE_KMAX) + 1))
    best: tuple[float, np.ndarray] | None = None
    for labels in clusterer(embeddings, ks, seed).values():
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(embeddings, labels, metric="cosine"))
        if best is None or score > best[0]:
            best = (score, labels)
    return best[1] if best is not None else clusterer(embeddings, [fallback_k], seed)[fallback_k]


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
        return clusterer(embeddings, [self.fixed_k], seed)[self.fixed_k]


def per_set_scores(sets: Sequence[EntitySet], predicted: Sequence[np.ndarray]) -> list[dict[str, float]]:
    return [clustering_scores(s.labels(), p) for s, p in zip(sets, predicted, strict=True)]


def score_labelings(sets: Sequence[EntitySet], predicted: Sequence[np.ndarray]) -> dict[str, float]:
    return average_scores(per_set_scores(sets, predicted))


def test_row(method: str, sets: Sequence[EntitySet], predicted: Sequence[np.ndarray]) -> dict[str, Any]:
    """A row of the table: the method, its averaged test scores and their 95% bootstrap intervals (``ci95``)."""
    scores = per_set_scores(sets, predicted)
    return {"method": method, **_metrics(average_scores(scores)), "ci95": bootstrap_intervals(scores)}


Say = Callable[[str], None]


def label_sets(embeddings: Sequence[np.ndarray], choice: KChoice, clusterer: Clusterer, seed: int, *,
               say: Say | None = None, what: str = "") -> list[np.ndarray]:
    """Cluster every set with ``choice``; ``say`` hears "what: i/n sets" about every tenth of the way."""
    out: list[np.ndarray] = []
    step = max(1, len(embeddings) // 10)
    # one set is a few dozen points: OpenMP threads only add start-up and, on a busy machine, 10-30x waiting
    with threadpool_limits(limits=1):
        for i, emb in enumerate(embeddings, 1):
            out.append(choice.labels(emb, clusterer, seed))
            if say is not None and (i % step == 0 or i == len(embeddings)):
                say(f"{what}: {i}/{len(embeddings)} sets")
    return out


def choose_k(val_sets: Sequence[EntitySet], val_embeddings: Sequence[np.ndarray], clusterer: Clusterer,
             fixed_k: int, seed: int, *, say: Say | None = None,
             name: str = "") -> tuple[KChoice, dict[str, dict[str, float]]]:
    """Pick the k strategy with the higher NMI + AMI + RI + ARI on validation; returns it and both scores."""
    scores = {}
    for strategy in ("silhouette", "fixed"):
        choice = KChoice(strategy, fixed_k)
        what = f"{name}: k by {'silhouette' if strategy == 'silhouette' else f'the training average ({fixed_k})'}" \
               " on validation"
        scores[strategy] = score_labelings(val_sets, label_sets(val_embeddings, choice, clusterer, seed, say=say,
                                                                what=what))
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
        progress: called with a short message before each long step and about every tenth of the sets.

    Returns:
        ``{"rows": [{"method", "NMI", "AMI", "RI", "ARI", "F1", "ci95"}], "choices": {...}, "validation": {...}}``
        where ``ci95`` holds each metric's 95% bootstrap interval over the test sets.
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
    for name, clusterer in (("K-Means", kmeans_labels_for), ("Spectral", spectral_labels_for)):
        choice, val_scores = choose_k(dataset.val, val_emb, clusterer, fixed_k, seed, say=say, name=name)
        choices[name] = choice.strategy
        validation[name] = val_scores
        rows.append(test_row(name, dataset.test, label_sets(test_emb, choice, clusterer, seed, say=say,
                                                            what=f"{name}: test")))
    say("Agglomerative: sweeping thresholds on validation")
    sweep = sweep_thresholds(similarity_matrices(val_emb), [s.labels() for s in dataset.val])
    choices["Agglomerative"] = {"threshold": sweep.best_threshold}
    validation["Agglomerative"] = sweep.best_scores
    predicted = [MergeTree(sim).cut(sweep.best_threshold) for sim in similarity_matrices(test_emb)]
    rows.append(test_row("Agglomerative", dataset.test, predicted))
    return {"rows": rows, "choices": choices, "validation": validation, "test_sets": len(dataset.test)}


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if k != "sets"}
