"""Metrics against hand-computed contingency tables and scikit-learn, with the degenerate cases we define."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cactus.evaluation.metrics import average_scores, clustering_scores, contingency_matrix, f1_score, score_sets


def test_f1_on_a_hand_worked_table():
    # true: {0,1,2} {3,4}; pred: {0,1} {2,3,4}
    # n_ij = [[2, 1], [0, 2]]; precision = (2 + 2) / 5, recall = (2 + 2) / 5
    true, pred = [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]
    assert contingency_matrix(true, pred).tolist() == [[2, 1], [0, 2]]
    assert f1_score(true, pred) == pytest.approx(0.8)


def test_f1_with_a_one_entity_cluster():
    # true: {0,1,2,3} {4}; pred: {0,1} {2,3,4}
    # n_ij = [[2, 2], [0, 1]]; precision = (2 + 2) / 5 = 0.8; recall = (2 + 1) / 5 = 0.6
    true, pred = [0, 0, 0, 0, 1], [0, 0, 1, 1, 1]
    assert f1_score(true, pred) == pytest.approx(2 * 0.8 * 0.6 / 1.4)
    # RI by hand: 10 pairs; agreeing pairs: (0,1) together in both, (2,3) together in both,
    # (0,4) (1,4) apart in both; disagreeing: (0,2)(0,3)(1,2)(1,3) together in true only,
    # (2,4) (3,4) together in pred only -> RI = 4 / 10
    assert clustering_scores(true, pred)["RI"] == pytest.approx(0.4)


def test_label_ids_do_not_matter():
    scores = clustering_scores([0, 0, 1, 1, 2], [7, 7, 3, 3, 9])
    assert all(v == pytest.approx(1.0) for v in scores.values())


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        # one cluster on both sides: a perfect answer, every metric 1.0
        ([0, 0, 0, 0], [0, 0, 0, 0], {"NMI": 1, "AMI": 1, "RI": 1, "ARI": 1, "F1": 1}),
        # all singletons on both sides: also perfect
        ([0, 1, 2, 3], [0, 1, 2, 3], {"NMI": 1, "AMI": 1, "RI": 1, "ARI": 1, "F1": 1}),
        # one cluster against all singletons: no agreement beyond chance; F1 = 2 / (N + 1)
        ([0, 0, 0, 0], [0, 1, 2, 3], {"NMI": 0, "AMI": 0, "RI": 0, "ARI": 0, "F1": 2 / 5}),
        ([0, 1, 2, 3], [0, 0, 0, 0], {"NMI": 0, "AMI": 0, "RI": 0, "ARI": 0, "F1": 2 / 5}),
        # two entities
        ([0, 1], [0, 0], {"NMI": 0, "AMI": 0, "RI": 0, "ARI": 0, "F1": 2 / 3}),
    ],
)
def test_degenerate_partitions(true, pred, expected):
    scores = clustering_scores(true, pred)
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value), name
        assert math.isfinite(scores[name])


def test_agrees_with_sklearn_on_random_labelings():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        true, pred = rng.integers(0, 5, n), rng.integers(0, 5, n)
        scores = clustering_scores(true, pred)
        assert scores["NMI"] == pytest.approx(skm.normalized_mutual_info_score(true, pred))
        assert scores["AMI"] == pytest.approx(skm.adjusted_mutual_info_score(true, pred))
        assert scores["RI"] == pytest.approx(skm.rand_score(true, pred))
        assert scores["ARI"] == pytest.approx(skm.adjusted_rand_score(true, pred))
        assert 0 < scores["F1"] <= 1


def test_averages_are_plain_means_over_sets():
    pairs = [([0, 0, 1], [0, 0, 1]), ([0, 0, 0, 0], [0, 1, 2, 3])]
    averaged = score_sets(pairs)
    assert averaged["sets"] == 2
    assert averaged["ARI"] == pytest.approx(0.5)
    assert averaged["F1"] == pytest.approx((1 + 0.4) / 2)
    with pytest.raises(ValueError, match="no sets"):
        average_scores([])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="labelings differ in length: 3 true vs 2 predicted"):
        clustering_scores([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        clustering_scores([[0, 1]], [[0, 1]])
