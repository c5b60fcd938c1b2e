"""The review queue: a dataset's sets ordered by how much a review is likely to help.

Each set the model has clustered gets a priority (:mod:`cactus.inference.review_priority`): the model's
uncertainty (the share of its merges near the threshold, recorded by the predict job in the clustering's details)
plus its mean disagreement with every other clustering of the set (the newest teacher, reference and human ones,
and the newest of each other model). It needs no API key: with no other clustering, uncertainty alone orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cactus.data import clusters_to_labels
from cactus.inference.review_priority import ReviewPriority, disagreement, review_order
from db.clusterings import latest_clusterings, latest_labels
from db.models import ClusteringRow, SetRow
from db.sets import _resolve_model


@dataclass(frozen=True)
class QueueItem:
    """A set of the review queue, with why it is there."""

    set_id: int
    name: str
    priority: ReviewPriority


def _other_models(session: Session, set_ids, model_id: int) -> dict[int, list[np.ndarray]]:
    """Per set, the labels of the newest clustering of every other model."""
    newest = (select(func.max(ClusteringRow.id))
              .where(ClusteringRow.source == "model", ClusteringRow.model_id != model_id,
                     ClusteringRow.set_id.in_(set_ids))
              .group_by(ClusteringRow.set_id, ClusteringRow.model_id))
    rows = session.execute(select(ClusteringRow.set_id, ClusteringRow.clusters).where(ClusteringRow.id.in_(newest)))
    found: dict[int, list[np.ndarray]] = {}
    for set_id, clusters in rows:
        found.setdefault(set_id, []).append(clusters_to_labels(clusters, sum(len(c) for c in clusters)))
    return found


def review_queue(session: Session, dataset_id: int, model_id: int | None = None, *,
                 include_reviewed: bool = False) -> list[QueueItem]:
    """The dataset's sets that ``model_id`` (default: the active model) has clustered, most useful review first.

    Sets already marked reviewed are left out unless ``include_reviewed``; ties keep import order. Empty when no
    model is given or active.
    """
    model = _resolve_model(session, model_id)
    if model is None:
        return []
    query = select(SetRow.id).where(SetRow.dataset_id == dataset_id)
    if not include_reviewed:
        query = query.where(SetRow.reviewed.is_(False))
    names = dict(session.execute(select(SetRow.id, SetRow.name).where(SetRow.id.in_(query))
                                 .order_by(SetRow.position)).all())
    predicted = latest_clusterings(session, query, "model", model_id=model)
    others = [latest_labels(session, query, source) for source in ("teacher", "reference", "human")]
    earlier = _other_models(session, query, model)
    priorities: dict[int, ReviewPriority] = {}
    for set_id in names:  # import order, so that ties keep it
        clustering = predicted.get(set_id)
        if clustering is None:
            continue
        labels = np.asarray(clustering.labels())
        compared = [source[set_id] for source in others if set_id in source] + earlier.get(set_id, [])
        priorities[set_id] = ReviewPriority(float(clustering.details.get("uncertainty", 0.0)),
                                            disagreement(labels, compared))
    return [QueueItem(set_id, names[set_id], priorities[set_id]) for set_id in review_order(priorities)]


def next_in_queue(session: Session, dataset_id: int, model_id: int | None = None, *,
                  after: int | None = None) -> int | None:
    """The most useful set to review next, other than ``after`` (the set on screen); None when the queue is empty."""
    for item in review_queue(session, dataset_id, model_id):
        if item.set_id != after:
            return item.set_id
    return None
