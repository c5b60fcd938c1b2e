"""What the store's functions return: plain frozen dataclasses, safe to keep after the session closes.

The app caches and renders these; it never holds an ORM row across requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cactus.data import Entity, EntitySet
from db.models import ClusteringRow, DatasetRow, EditRow, ModelRow
from db.partition import Partition


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset and its counts."""

    id: int
    name: str
    noun: str
    description: str
    created_at: datetime
    sets: int = 0
    reviewed: int = 0

    @classmethod
    def of(cls, row: DatasetRow, *, sets: int = 0, reviewed: int = 0) -> DatasetInfo:
        return cls(row.id, row.name, row.noun, row.description, row.created_at, sets, reviewed)


@dataclass(frozen=True)
class ClusteringView:
    """One clustering of a set (see :class:`db.models.ClusteringRow`)."""

    id: int
    set_id: int
    source: str
    clusters: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    model_id: int | None
    job_id: int | None
    producer: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ClusteringRow) -> ClusteringView:
        return cls(row.id, row.set_id, row.source, tuple(tuple(c) for c in row.clusters), tuple(row.names),
                   row.model_id, row.job_id, row.producer, dict(row.details or {}), row.created_at, row.updated_at)

    @property
    def partition(self) -> Partition:
        return Partition(self.clusters, self.names)

    def labels(self) -> list[int]:
        """Cluster index of every entity, in entity order."""
        return self.partition.labels()


@dataclass(frozen=True)
class SetSummary:
    """A row of the set list: what the filters look at."""

    id: int
    dataset_id: int
    name: str
    size: int
    split: str
    reviewed: bool
    sources: frozenset[str]  # sources with at least one clustering ("model": of the model asked about)
    disagreement: float | None  # share of entity pairs the teacher and the model disagree on; None if either lacks


@dataclass(frozen=True)
class SetPage:
    """One page of :func:`db.sets.list_sets` and how many sets match in all."""

    items: list[SetSummary]
    total: int


@dataclass(frozen=True)
class SetDetail:
    """A set with its entities, every clustering (oldest first) and its edit-log state."""

    id: int
    dataset_id: int
    dataset_name: str
    noun: str
    name: str
    split: str
    reviewed: bool
    reviewed_at: datetime | None
    reviewed_by: str | None
    entities: tuple[Entity, ...]
    clusterings: tuple[ClusteringView, ...]
    edit_head: int  # seq of the newest edit-log entry (0 when none): pass it back as expected_head
    can_undo: bool
    can_redo: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.entities]

    def latest(self, source: str, model_id: int | None = None) -> ClusteringView | None:
        """The newest clustering of ``source`` (of model ``model_id`` when given), or None."""
        for clustering in reversed(self.clusterings):
            if clustering.source == source and (model_id is None or clustering.model_id == model_id):
                return clustering
        return None

    @property
    def human(self) -> ClusteringView | None:
        return self.latest("human")

    @property
    def teacher(self) -> ClusteringView | None:
        return self.latest("teacher")

    @property
    def reference(self) -> ClusteringView | None:
        return self.latest("reference")

    def to_entity_set(self, clustering: ClusteringView | None = None) -> EntitySet:
        """The set in the library's format, clustered by ``clustering`` (unlabelled when None)."""
        entity_set = EntitySet(self.name, list(self.entities), extra=dict(self.extra))
        if clustering is not None:
            entity_set.clusters = [list(c) for c in clustering.clusters]
            entity_set.cluster_names = list(clustering.names)
        return entity_set


@dataclass(frozen=True)
class EditView:
    """One entry of a set's edit log."""

    seq: int
    action: str
    params: dict[str, Any]
    before: Partition | None
    after: Partition | None
    target_seq: int | None
    author: str
    created_at: datetime

    @classmethod
    def of(cls, row: EditRow) -> EditView:
        return cls(row.seq, row.action, dict(row.params or {}),
                   Partition.from_json(row.before) if row.before is not None else None,
                   Partition.from_json(row.after) if row.after is not None else None,
                   row.target_seq, row.author, row.created_at)


@dataclass(frozen=True)
class ModelInfo:
    """A model of the registry."""

    id: int
    name: str
    checkpoint: str
    backbone: str
    mode: str
    loss: str
    threshold: float
    metrics: dict[str, Any]
    training: dict[str, Any]
    active: bool
    dataset_id: int | None
    job_id: int | None
    created_at: datetime
    created_by: str | None = None  # who trained or registered it, when known

    @classmethod
    def of(cls, row: ModelRow) -> ModelInfo:
        return cls(row.id, row.name, row.checkpoint, row.backbone, row.mode, row.loss, row.threshold,
                   dict(row.metrics or {}), dict(row.training or {}), row.active, row.dataset_id, row.job_id,
                   row.created_at, row.created_by)
