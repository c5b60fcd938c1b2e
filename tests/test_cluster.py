"""Average-link inference equals scikit-learn's, and the threshold sweep picks the best validation threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from cactus.inference.cluster import THRESHOLDS, MergeTree, cluster_similarity, sweep_thresholds


def random_similarity(rng, n):
    x = rng.normal(size=(n, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_thresholds_are_minus_one_to_one_by_tenths():
    assert THRESHOLDS[0] == -1.0 and THRESHOLDS[-1] == 1.0 and len(THRESHOLDS) == 21
    assert 0.3 in THRESHOLDS


def test_same_partitions_as_sklearn_agglomerative():
    rng = np.random.default_rng(1)
    for trial in range(60):
        n = int(rng.integers(3, 25))
        sim = random_similarity(rng, n)
        tree = MergeTree(sim)
        for t in THRESHOLDS[:-1]:
            ours = tree.cut(t)
            theirs = AgglomerativeClustering(
                metric="precomputed", linkage="average", distance_threshold=1 - t, n_clusters=None
            ).fit_predict(np.clip(1 - sim, 0, None))
            assert adjusted_rand_score(theirs, ours) == pytest.approx(1.0) or len(set(ours)) == n, (trial, t)


def test_two_entities_and_identical_texts():
    assert cluster_similarity([[1, 0.9], [0.9, 1]], 0.5).tolist() == [0, 0]
    assert cluster_similarity([[1, 0.1], [0.1, 1]], 0.5).tolist() == [0, 1]
    same = np.ones((3, 3))  # three identical texts
    assert cluster_similarity(same, 0.9).tolist() == [0, 0, 0]
    assert cluster_similarity(same, 1.0).tolist() == [0, 1, 2]  # nothing exceeds 1: all apart
    assert cluster_similarity([[1.0]], 0.0).tolist() == [0]


def test_labels_are_numbered_by_first_member_and_validation():
    sim = np.array([[1, 0, 0.9], [0, 1, 0], [0.9, 0, 1]])
    assert cluster_similarity(sim, 0.5).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match=r"threshold must lie in \[-1, 1\]"):
        cluster_similarity(sim, 1.5)
    with pytest.raises(ValueError, match="square"):
        cluster_similarity(np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        cluster_similarity([[1, np.nan], [np.nan, 1]], 0.5)
    with pytest.raises(ValueError, match="unknown linkage 'ward'; choose one of average, complete, single"):
        MergeTree(sim, linkage_method="ward")


def test_sweep_finds_the_gap_between_intra_and_inter_similarities():
    # intra-cluster similarities 0.75..0.85, inter-cluster 0.15..0.25: only t in (0.25, 0.75) is perfect
    rng = np.random.default_rng(2)
    sims, golds = [], []
    for _ in range(5):
        labels = rng.integers(0, 3, 8)
        same = labels[:, None] == labels[None, :]
        noise = rng.uniform(-0.05, 0.05, (8, 8))
        sim = np.where(same, 0.8, 0.2) + (noise + noise.T) / 2
        np.fill_diagonal(sim, 1.0)
        sims.append(sim)
        golds.append(labels)
    sweep = sweep_thresholds(sims, golds)
    assert sweep.best_threshold == 0.3  # the lowest perfect threshold
    assert sweep.best_scores["ARI"] == pytest.approx(1.0)
    rows = sweep.as_rows()
    assert len(rows) == 21 and rows[0]["threshold"] == -1.0
    assert rows[0]["ARI"] < 1.0  # at -1 everything merges
    with pytest.raises(ValueError, match="at least one labelled validation set"):
        sweep_thresholds([], [])
