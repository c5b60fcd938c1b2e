"""The unsupervised baselines: Spectral from one eigendecomposition per set, progress while they run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score

from cactus.data.sets import Dataset, Entity, EntitySet
from cactus.evaluation.baselines import kmeans_labels_for, run_baselines, spectral_labels_for


def blobs(sizes: list[int], seed: int, dim: int = 16) -> np.ndarray:
    """L2-normalised points around len(sizes) random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    points = np.concatenate([c + 0.05 * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)])
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_spectral_for_every_k_matches_sklearns_spectral_clustering():
    emb = blobs([4, 5, 3, 6], seed=1)
    affinity = np.clip((emb @ emb.T + 1.0) / 2.0, 0.0, 1.0)
    ours = spectral_labels_for(emb, range(2, 9), seed=0)
    for k in range(2, 9):
        theirs = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=0).fit_predict(affinity)
        assert len(set(ours[k].tolist())) == k
        if k == 4:  # the true number of groups: both find them
            assert adjusted_rand_score(theirs, ours[k]) == 1.0


def test_degenerate_ks_give_one_cluster_or_singletons():
    emb = blobs([2, 1], seed=2)
    for clusterer in (spectral_labels_for, kmeans_labels_for):
        labels = clusterer(emb, [1, 3, 7], seed=0)
        assert labels[1].tolist() == [0, 0, 0]
        assert sorted(labels[3].tolist()) == [0, 1, 2] and sorted(labels[7].tolist()) == [0, 1, 2]


def labelled_set(name: str, sizes: list[int]) -> EntitySet:
    clusters, start = [], 0
    for n in sizes:
        clusters.append(list(range(start, start + n)))
        start += n
    return EntitySet(id=name, entities=[Entity(f"{name}-{i}", f"text {i}") for i in range(start)], clusters=clusters)


def test_run_baselines_reports_progress_per_method_and_finds_separated_groups():
    sizes = {"a": [3, 4], "b": [4, 3, 3], "c": [5, 2], "d": [3, 3, 4]}
    points = {name: blobs(s, seed=i) for i, (name, s) in enumerate(sizes.items())}
    sets = [labelled_set(name, s) for name, s in sizes.items()]
    dataset = Dataset(root=Path("."), splits={"train": sets[:2], "val": sets[:2], "test": sets[2:]})
    heard: list[str] = []
    report = run_baselines(dataset, lambda batch: [points[s.id] for s in batch], progress=heard.append)
    assert [r["method"] for r in report["rows"]] == ["K-Means", "Spectral", "Agglomerative"]
    assert [r["ARI"] for r in report["rows"][:2]] == [1.0, 1.0]  # well-separated groups, k chosen by silhouette
    assert "Spectral: test: 2/2 sets" in heard and "K-Means: test: 2/2 sets" in heard
    assert any(m.startswith("Spectral: k by silhouette on validation: ") for m in heard)
