"""Jobs get a unique id (uid) that names their work folder, so folders never collide across stores or resets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:10:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("uid", sa.String(length=32), nullable=True))
    jobs = sa.table("jobs", sa.column("id", sa.Integer()), sa.column("uid", sa.String(32)))
    connection = op.get_bind()
    for (job_id,) in connection.execute(sa.select(jobs.c.id)).all():
        connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(uid=uuid.uuid4().hex))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("uid", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint("uq_jobs_uid", ["uid"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_uid", type_="unique")
        batch.drop_column("uid")
