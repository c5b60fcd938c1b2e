"""A model's threshold re-chosen on a dataset it was not trained on, stored per (model, dataset).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_dataset_thresholds",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("chosen_on_sets", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_model_dataset_thresholds_model_id_models"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name=op.f("fk_model_dataset_thresholds_dataset_id_datasets"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "dataset_id", name=op.f("pk_model_dataset_thresholds")),
    )


def downgrade() -> None:
    op.drop_table("model_dataset_thresholds")
