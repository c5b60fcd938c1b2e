"""A model's threshold on a dataset may be chosen without labels (mean silhouette of the dataset's own sets).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_dataset_thresholds") as batch:  # every stored threshold so far used labels
        batch.add_column(sa.Column("labelled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("model_dataset_thresholds") as batch:
        batch.drop_column("labelled")
