"""A model's re-chosen setting on a dataset may be a per-set cut (silhouette) rather than one threshold for all sets.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_dataset_thresholds") as batch:  # every stored override so far was a threshold
        batch.add_column(sa.Column("cut", sa.String(16), nullable=False, server_default="threshold"))


def downgrade() -> None:
    with op.batch_alter_table("model_dataset_thresholds") as batch:
        batch.drop_column("cut")
