"""Review priority: merges near the threshold (model uncertainty), disagreement with other clusterings, and the
store's review queue ordered by both."""

from __future__ import annotations

import numpy as np
import pytest

from cactus.data import Entity, EntitySet
from cactus.inference.cluster import MergeTree
from cactus.inference.review_priority import (
    ReviewPriority,
    disagreement,
    near_threshold_merges,
    review_order,
    uncertainty,
)
from db import (
    add_clustering,
    create_dataset,
    import_sets,
    list_sets,
    mark_reviewed,
    next_in_queue,
    review_queue,
    session_scope,
)
from db.edits import accept_clustering
from db.registry import register_model

SIM = np.array([[1.0, 0.9, 0.52, 0.1],
                [0.9, 1.0, 0.48, 0.1],
                [0.52, 0.48, 1.0, 0.1],
                [0.1, 0.1, 0.1, 1.0]])


def test_merges_near_the_threshold_count_as_uncertainty():
    tree = MergeTree(SIM)
    assert np.allclose(sorted(tree.merge_similarities()), [0.1, 0.5, 0.9])
    assert near_threshold_merges(tree, 0.5, margin=0.05) == 1
    assert uncertainty(tree, 0.5, margin=0.05) == pytest.approx(1 / 3)
    assert uncertainty(tree, -0.5, margin=0.05) == 0.0
    assert uncertainty(MergeTree([[1.0]]), 0.5) == 0.0


def test_disagreement_is_the_mean_share_of_pairs_placed_differently():
    assert disagreement([0, 0, 1], []) == 0.0
    assert disagreement([0, 0, 1], [[0, 0, 1]]) == 0.0
    assert disagreement([0, 0, 1], [[0, 1, 2], [0, 0, 1]]) == pytest.approx((2 / 6) / 2)


def test_review_order_puts_the_highest_priority_first_and_keeps_ties_in_order():
    order = review_order({"a": ReviewPriority(0.1, 0.0), "b": ReviewPriority(0.2, 0.3), "c": ReviewPriority(0.0, 0.1)})
    assert order == ["b", "a", "c"]


def test_the_store_queue_orders_unreviewed_sets_by_uncertainty_and_disagreement(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    entities = [Entity(f"e{i}", f"thing {i}") for i in range(4)]
    with session_scope(url) as session:
        dataset = create_dataset(session, "d", "products")
        import_sets(session, dataset.id, [EntitySet(f"s{i}", entities) for i in range(4)])
        model = register_model(session, name="m", checkpoint=str(tmp_path), backbone="b", mode="sia", loss="l",
                               threshold=0.5, activate=True)
        old = register_model(session, name="old", checkpoint=str(tmp_path), backbone="b", mode="sia", loss="l",
                             threshold=0.5)
        ids = [s.id for s in list_sets(session, dataset.id).items]
        together = [[0, 1, 2, 3]]
        for set_id, certainty in zip(ids, (0.0, 0.5, 0.0, 0.2), strict=True):
            add_clustering(session, set_id, "model", together, ["x"], model_id=model.id,
                           details={"uncertainty": certainty})
        teacher = add_clustering(session, ids[2], "teacher", [[0], [1], [2], [3]])  # disagrees on every pair
        add_clustering(session, ids[3], "model", [[0, 1], [2, 3]], model_id=old.id)  # an earlier model
    with session_scope(url) as session:
        queue = review_queue(session, dataset.id)
        assert [q.set_id for q in queue] == [ids[2], ids[3], ids[1], ids[0]]
        assert queue[0].priority.disagreement == 1.0 and queue[1].priority.disagreement == pytest.approx(4 / 6)
        assert next_in_queue(session, dataset.id, after=ids[2]) == ids[3]
        accept_clustering(session, ids[2], teacher.id, author="ana")
        mark_reviewed(session, ids[2], author="ana")
    with session_scope(url) as session:
        assert [q.set_id for q in review_queue(session, dataset.id)] == [ids[3], ids[1], ids[0]]
