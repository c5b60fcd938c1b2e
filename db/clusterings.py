"""Storing teacher, model and reference clusterings, and finding the newest of each per set.

A set keeps every clustering ever stored for it (re-running the teacher or a model adds a row); the
newest of a source (for "model": of a given model) is the one shown and used. Human clusterings are
made only through the edit log (:mod:`db.edits`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cactus.data import clusters_to_labels
from db.errors import NotFoundError, StoreError
from db.models import SOURCES, ClusteringRow, ModelRow, SetRow
from db.partition import Partition
from db.views import ClusteringView

MACHINE_SOURCES = ("teacher", "model", "reference")


def add_clustering(
    session: Session,
    set_id: int,
    source: str,
    clusters: Sequence[Sequence[int]],
    names: Sequence[str] | None = None,
    *,
    model_id: int | None = None,
    job_id: int | None = None,
    producer: str = "",
    details: dict[str, Any] | None = None,
) -> ClusteringView:
    """Store a teacher, model or reference clustering of a set.

    Args:
        set_id: the set.
        source: "teacher", "model" or "reference".
        clusters: lists of entity positions covering the set once (the sets format's ``clusters``).
        names: one name per cluster (default: unnamed).
        model_id: the registered model that made it (required for "model").
        job_id: the job that made it, if any.
        producer: who made it, in words: the teacher's model name, the file it came from.
        details: anything else worth keeping (the teacher's token usage, a similarity matrix).

    Raises:
        StoreError: a human or unknown source, a model clustering without a model.
        EditError: the clusters do not partition the set.
    """
    if source not in MACHINE_SOURCES:
        hint = "; make human clusterings with db.edits.accept_clustering and apply_edit" if source == "human" else ""
        raise StoreError(f"source must be one of {', '.join(MACHINE_SOURCES)}, got {source!r}{hint}")
    if (source == "model") != (model_id is not None):
        raise StoreError("a model clustering needs the model_id of a registered model, and only it has one")
    entity_set = session.get(SetRow, set_id)
    if entity_set is None:
        raise NotFoundError(f"no set with id {set_id}")
    if model_id is not None and session.get(ModelRow, model_id) is None:
        raise NotFoundError(f"no model with id {model_id}; register the model first")
    partition = Partition.build(clusters, names, size=entity_set.size)
    row = ClusteringRow(set_id=set_id, source=source, model_id=model_id, job_id=job_id, producer=producer,
                        clusters=partition.to_json()["clusters"], names=list(partition.names),
                        details=dict(details or {}))
    session.add(row)
    session.flush()
    return ClusteringView.of(row)


def get_clustering(session: Session, clustering_id: int) -> ClusteringView:
    """One clustering by id."""
    row = session.get(ClusteringRow, clustering_id)
    if row is None:
        raise NotFoundError(f"no clustering with id {clustering_id}")
    return ClusteringView.of(row)


def latest_clusterings(
    session: Session,
    set_ids: Collection[int] | Select[Any],
    source: str,
    *,
    model_id: int | None = None,
) -> dict[int, ClusteringView]:
    """The newest clustering of ``source`` for each of ``set_ids`` that has one, keyed by set id.

    Args:
        set_ids: set ids, or a ``select`` of set ids (for a whole dataset without a long ``IN`` list).
        source: one of ``SOURCES``.
        model_id: for "model": only that model's clusterings (None: any model's).
    """
    if source not in SOURCES:
        raise StoreError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    newest = select(func.max(ClusteringRow.id)).where(
        ClusteringRow.source == source, ClusteringRow.set_id.in_(set_ids))
    if model_id is not None:
        newest = newest.where(ClusteringRow.model_id == model_id)
    rows = session.scalars(select(ClusteringRow).where(ClusteringRow.id.in_(newest.group_by(ClusteringRow.set_id))))
    return {row.set_id: ClusteringView.of(row) for row in rows}


def latest_labels(
    session: Session,
    set_ids: Collection[int] | Select[Any],
    source: str,
    *,
    model_id: int | None = None,
) -> dict[int, np.ndarray]:
    """Like :func:`latest_clusterings`, but only each clustering's labels (cluster index per entity), fast."""
    newest = select(func.max(ClusteringRow.id)).where(
        ClusteringRow.source == source, ClusteringRow.set_id.in_(set_ids))
    if model_id is not None:
        newest = newest.where(ClusteringRow.model_id == model_id)
    rows = session.execute(select(ClusteringRow.set_id, ClusteringRow.clusters)
                           .where(ClusteringRow.id.in_(newest.group_by(ClusteringRow.set_id))))
    return {set_id: clusters_to_labels(clusters, sum(len(c) for c in clusters)) for set_id, clusters in rows}


def pair_disagreement(labels_a: Sequence[int], labels_b: Sequence[int]) -> float:
    """Share of entity pairs that one clustering puts together and the other apart (1 - Rand index).

    0.0 for identical partitions (and for sets of fewer than two entities), 1.0 at most.
    """
    from cactus.inference.review_priority import pair_disagreement as disagreement

    try:
        return disagreement(labels_a, labels_b)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


#: whose cluster names a model's clusters may take, most trusted first
NAMING_SOURCES = ("human", "reference", "teacher")


def named_clusterings(session: Session, set_ids: Collection[int] | Select[Any]) -> dict[int, ClusteringView]:
    """Per set, the newest clustering with at least one cluster name, of the most trusted source that has one
    (human, then reference, then teacher); sets with none are left out."""
    found: dict[int, ClusteringView] = {}
    for source in NAMING_SOURCES:
        for set_id, clustering in latest_clusterings(session, set_ids, source).items():
            if set_id not in found and any(name.strip() for name in clustering.names):
                found[set_id] = clustering
    return found
