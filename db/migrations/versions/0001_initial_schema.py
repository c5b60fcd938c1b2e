"""Initial schema: datasets, entity sets and entities, clusterings, the edit log, models and jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 06:44:36.825876
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import JSONType, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("noun", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("noun IN ('products', 'queries')", name=op.f("ck_datasets_noun")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "entity_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=12), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("extra", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("split IN ('train', 'val', 'test', 'unassigned')", name=op.f("ck_entity_sets_split")),
        sa.CheckConstraint("size >= 2", name=op.f("ck_entity_sets_size")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_entity_sets_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_sets")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_entity_sets_dataset_id_name")),
    )
    op.create_index(op.f("ix_entity_sets_dataset_id_position"), "entity_sets", ["dataset_id", "position"], unique=False)
    op.create_index(op.f("ix_entity_sets_dataset_id_reviewed"), "entity_sets", ["dataset_id", "reviewed"], unique=False)
    op.create_index(op.f("ix_entity_sets_dataset_id_size"), "entity_sets", ["dataset_id", "size"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f("ck_jobs_status")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_jobs_dataset_id_datasets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_status_id"), "jobs", ["status", "id"], unique=False)

    op.create_table(
        "edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("before", JSONType, nullable=True),
        sa.Column("after", JSONType, nullable=True),
        sa.Column("target_seq", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('accept', 'move', 'merge', 'split', 'rename', 'create', 'delete', 'undo', 'redo')",
            name=op.f("ck_edits_action"),
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["entity_sets.id"], name=op.f("fk_edits_set_id_entity_sets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edits")),
        sa.UniqueConstraint("set_id", "seq", name=op.f("uq_edits_set_id_seq")),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_id"], ["entity_sets.id"], name=op.f("fk_entities_set_id_entity_sets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("set_id", "name", name=op.f("uq_entities_set_id_name")),
        sa.UniqueConstraint("set_id", "position", name=op.f("uq_entities_set_id_position")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("checkpoint", sa.String(length=1000), nullable=False),
        sa.Column("backbone", sa.String(length=300), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("loss", sa.String(length=50), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("training", JSONType, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_models_dataset_id_datasets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_models_job_id_jobs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_index(
        "uq_models_one_active",
        "models",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )

    op.create_table(
        "clusterings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("producer", sa.String(length=200), nullable=False),
        sa.Column("clusters", JSONType, nullable=False),
        sa.Column("names", JSONType, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("source IN ('teacher', 'model', 'human', 'reference')", name=op.f("ck_clusterings_source")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_clusterings_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_clusterings_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["entity_sets.id"], name=op.f("fk_clusterings_set_id_entity_sets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusterings")),
    )
    op.create_index(op.f("ix_clusterings_model_id_set_id"), "clusterings", ["model_id", "set_id"], unique=False)
    op.create_index(op.f("ix_clusterings_set_id_source_id"), "clusterings", ["set_id", "source", "id"], unique=False)
    op.create_index(
        "uq_clusterings_one_human",
        "clusterings",
        ["set_id"],
        unique=True,
        sqlite_where=sa.text("source = 'human'"),
        postgresql_where=sa.text("source = 'human'"),
    )


def downgrade() -> None:
    op.drop_index("uq_clusterings_one_human", table_name="clusterings")
    op.drop_index(op.f("ix_clusterings_set_id_source_id"), table_name="clusterings")
    op.drop_index(op.f("ix_clusterings_model_id_set_id"), table_name="clusterings")

    op.drop_table("clusterings")
    op.drop_index("uq_models_one_active", table_name="models")

    op.drop_table("models")
    op.drop_table("entities")
    op.drop_table("edits")
    op.drop_index(op.f("ix_jobs_status_id"), table_name="jobs")

    op.drop_table("jobs")
    op.drop_index(op.f("ix_entity_sets_dataset_id_size"), table_name="entity_sets")
    op.drop_index(op.f("ix_entity_sets_dataset_id_reviewed"), table_name="entity_sets")
    op.drop_index(op.f("ix_entity_sets_dataset_id_position"), table_name="entity_sets")

    op.drop_table("entity_sets")
    op.drop_table("datasets")
