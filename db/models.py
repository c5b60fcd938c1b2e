"""The store's tables as typed SQLAlchemy 2 models.

One row class per table, named ``*Row`` so that they never shadow the library's data types
(:class:`cactus.data.EntitySet` is a set read from a file; :class:`SetRow` is a set in the store)::

    datasets ─< entity_sets ─< entities          (ordered members: entities.position)
                     │ ├────< clusterings >── models, jobs
                     │ └────< edits               (append-only edit log of the human clustering)
    jobs, models                                  (job queue; model registry, one active model)
    models ─< model_dataset_thresholds >─ datasets (a model's threshold re-chosen on another dataset)
    users                                         (who may sign in to the workbench, and their role)

Clusterings and edit-log snapshots are stored as JSON in the sets format: ``clusters`` is a list of
lists of entity positions (0-based, in set order) covering every entity once, ``names`` one name per
cluster ("" when unnamed). Every timestamp is timezone-aware UTC.

Schema changes go through an Alembic revision in ``db/migrations/versions`` (see ``db/migrate.py``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import JSONType, UTCDateTime, utcnow

NOUNS = ("products", "queries")
SPLITS = ("train", "val", "test", "unassigned")
SOURCES = ("teacher", "model", "human", "reference")
EDIT_ACTIONS = ("accept", "move", "merge", "split", "rename", "create", "delete", "undo", "redo")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ROLES = ("viewer", "annotator", "admin")  # each can do what the ones before it can

# Deterministic constraint names, so that Alembic migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """The declarative base of every table of the store."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime(),
    }


class DatasetRow(Base):
    """A named collection of entity sets of one kind ("products" or "queries")."""

    __tablename__ = "datasets"
    __table_args__ = (CheckConstraint(_one_of("noun", NOUNS), name="noun"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    noun: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sets: Mapped[list[SetRow]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True, order_by="SetRow.position"
    )

    def __repr__(self) -> str:
        return f"DatasetRow(id={self.id!r}, name={self.name!r}, noun={self.noun!r})"


class SetRow(Base):
    """An entity set of a dataset: its ordered entities, split and review state."""

    __tablename__ = "entity_sets"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name"),
        CheckConstraint(_one_of("split", SPLITS), name="split"),
        CheckConstraint("size >= 2", name="size"),
        Index(None, "dataset_id", "position"),
        Index(None, "dataset_id", "reviewed"),
        Index(None, "dataset_id", "size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))  # the set's id in the file it came from
    position: Mapped[int] = mapped_column(Integer)  # order within the dataset (import order)
    size: Mapped[int] = mapped_column(Integer)  # number of entities, kept for fast filters
    split: Mapped[str] = mapped_column(String(12), default="unassigned")
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # unknown keys of the file's line
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dataset: Mapped[DatasetRow] = relationship(back_populates="sets")
    entities: Mapped[list[EntityRow]] = relationship(
        back_populates="set", cascade="all, delete-orphan", passive_deletes=True, order_by="EntityRow.position"
    )
    clusterings: Mapped[list[ClusteringRow]] = relationship(
        back_populates="set", cascade="all, delete-orphan", passive_deletes=True, order_by="ClusteringRow.id"
    )
    edits: Mapped[list[EditRow]] = relationship(
        back_populates="set", cascade="all, delete-orphan", passive_deletes=True, order_by="EditRow.seq"
    )

    def __repr__(self) -> str:
        return f"SetRow(id={self.id!r}, name={self.name!r}, size={self.size!r}, split={self.split!r})"


class EntityRow(Base):
    """One member of a set, at its position. The same text in two sets is two rows."""

    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("set_id", "position"), UniqueConstraint("set_id", "name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("entity_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))  # the entity's id in the file
    text: Mapped[str] = mapped_column(Text)

    set: Mapped[SetRow] = relationship(back_populates="entities")

    def __repr__(self) -> str:
        return f"EntityRow(set_id={self.set_id!r}, position={self.position!r}, text={self.text[:40]!r})"


class JobRow(Base):
    """A background job: what to run, its state, progress, logs and outcome."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
        Index(None, "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: uuid.uuid4().hex)  # names its folder
    type: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # the fencing token: +1 at every claim and requeue; a worker's and its job's writes carry the one they got
    lease: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)  # 2: a job whose worker died runs once more
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))  # who queued it (the signed-in user), if known

    def __repr__(self) -> str:
        return f"JobRow(id={self.id!r}, type={self.type!r}, status={self.status!r}, progress={self.progress:.2f})"


class ModelRow(Base):
    """A trained CACTUS model in the registry. At most one row has ``active`` set."""

    __tablename__ = "models"
    __table_args__ = (
        # One active model: a unique index over the rows where active is true.
        Index("uq_models_one_active", "active", unique=True,
              sqlite_where=text("active = 1"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    checkpoint: Mapped[str] = mapped_column(String(1000))  # folder the trainer wrote
    backbone: Mapped[str] = mapped_column(String(300))
    mode: Mapped[str] = mapped_column(String(20))  # inter-entity attention (cactus.encoders.config.MODES)
    loss: Mapped[str] = mapped_column(String(50))
    threshold: Mapped[float] = mapped_column(Float)  # similarity threshold chosen on validation
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    training: Mapped[dict[str, Any]] = mapped_column(default=dict)  # data and options it was trained with
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))  # who trained or registered it, if known

    def __repr__(self) -> str:
        return f"ModelRow(id={self.id!r}, name={self.name!r}, mode={self.mode!r}, active={self.active!r})"


class ClusteringRow(Base):
    """A partition of one set, from the teacher, a model, a person or the reference labels.

    A set has any number of teacher, model and reference clusterings (the newest of each counts) and
    at most one human clustering, which the edit log rebuilds.
    """

    __tablename__ = "clusterings"
    __table_args__ = (
        CheckConstraint(_one_of("source", SOURCES), name="source"),
        Index(None, "set_id", "source", "id"),
        Index(None, "model_id", "set_id"),
        Index("uq_clusterings_one_human", "set_id", unique=True,
              sqlite_where=text("source = 'human'"), postgresql_where=text("source = 'human'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("entity_sets.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(10))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    producer: Mapped[str] = mapped_column(String(200), default="")  # teacher model, model name, file
    clusters: Mapped[list[Any]] = mapped_column()
    names: Mapped[list[Any]] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # e.g. the teacher's usage, a similarity matrix
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    set: Mapped[SetRow] = relationship(back_populates="clusterings")

    def __repr__(self) -> str:
        return (f"ClusteringRow(id={self.id!r}, set_id={self.set_id!r}, source={self.source!r}, "
                f"clusters={len(self.clusters)})")


class EditRow(Base):
    """One entry of a set's append-only edit log (see :mod:`db.edits` for undo and redo)."""

    __tablename__ = "edits"
    __table_args__ = (
        UniqueConstraint("set_id", "seq"),
        CheckConstraint(_one_of("action", EDIT_ACTIONS), name="action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("entity_sets.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the set
    action: Mapped[str] = mapped_column(String(10))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    before: Mapped[dict[str, Any] | None]  # {"clusters", "names"} or null when there was no human clustering
    after: Mapped[dict[str, Any] | None]
    target_seq: Mapped[int | None] = mapped_column(Integer)  # for undo / redo: the entry undone or redone
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    set: Mapped[SetRow] = relationship(back_populates="edits")

    def __repr__(self) -> str:
        return f"EditRow(set_id={self.set_id!r}, seq={self.seq!r}, action={self.action!r}, author={self.author!r})"


class DatasetThresholdRow(Base):
    """A model's threshold re-chosen on a dataset's sets (labelled, or without labels): an override of its card's
    on that dataset."""

    __tablename__ = "model_dataset_thresholds"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    threshold: Mapped[float] = mapped_column(Float)
    chosen_on_sets: Mapped[int] = mapped_column(Integer)  # how many sets it was chosen on
    labelled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # False: by silhouette
    # "threshold": every set at ``threshold``; "silhouette": each set cut per set (``threshold`` for sets under 3)
    cut: Mapped[str] = mapped_column(String(16), default="threshold", server_default="threshold")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return (f"DatasetThresholdRow(model_id={self.model_id!r}, dataset_id={self.dataset_id!r}, "
                f"threshold={self.threshold!r})")


class UserRow(Base):
    """Someone who may sign in to the workbench when login is on, with their role (one of :data:`ROLES`)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # the identity's email, else its subject
    role: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"UserRow(email={self.email!r}, role={self.role!r})"
