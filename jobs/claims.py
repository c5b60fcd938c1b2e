"""The worker's side of the job table: claim, heartbeat, finish, release and recover stale jobs.

Every write names the worker and expects the job to be ``running``, so a worker that lost its job (it
stalled, another worker marked it stale and requeued it) finds out from the row count instead of
overwriting someone else's state.

Claiming is atomic with several workers:

- PostgreSQL: ``SELECT id ... WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED``, then
  the update, in one transaction: two workers never pick the same row and never wait on each other.
- SQLite: one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) AND status = 'queued' RETURNING id`` inside a
  ``BEGIN IMMEDIATE`` transaction (see :mod:`db.session`): writers are serialised, so the second worker
  sees the row already running and takes the next one.

Times come from the worker's clock (timezone-aware UTC); workers that judge each other's heartbeats
should run on machines with synchronised clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import JobRow
from db.types import utcnow
from jobs.queue import JobInfo


def claim_next(session: Session, worker_id: str) -> JobInfo | None:
    """Take the oldest queued job for ``worker_id`` and mark it running; None when none is queued."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": "running", "worker_id": worker_id, "started_at": now, "heartbeat_at": now, "updated_at": now,
        "attempts": JobRow.attempts + 1, "cancel_requested": False, "error": None, "traceback": None,
    }
    if session.get_bind().dialect.name == "postgresql":
        job_id = session.scalar(select(JobRow.id).where(JobRow.status == "queued").order_by(JobRow.id).limit(1)
                                .with_for_update(skip_locked=True))
        if job_id is None:
            return None
        session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))
    else:
        oldest = select(JobRow.id).where(JobRow.status == "queued").order_by(JobRow.id).limit(1).scalar_subquery()
        job_id = session.scalar(update(JobRow).where(JobRow.id == oldest, JobRow.status == "queued")
                                .values(**values).returning(JobRow.id))
        if job_id is None:
            return None
    row = session.get(JobRow, job_id, populate_existing=True)
    assert row is not None
    row.message = f"started by worker {worker_id} (attempt {row.attempts} of {row.max_attempts})"
    session.flush()
    return JobInfo.of(row)


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learned: whether the job is still ours and whether cancel was asked."""

    owned: bool
    cancel_requested: bool


def heartbeat(session: Session, job_id: int, worker_id: str, **fields: Any) -> Beat:
    """Refresh the heartbeat and write ``fields`` (progress, message, log_tail, metrics) of a running job."""
    now = utcnow()
    cancel_requested = session.scalar(
        update(JobRow).where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.status == "running")
        .values(heartbeat_at=now, updated_at=now, **fields).returning(JobRow.cancel_requested))
    if cancel_requested is None:
        return Beat(False, False)
    return Beat(True, bool(cancel_requested))


def finish(session: Session, job_id: int, worker_id: str, status: str, **fields: Any) -> bool:
    """Mark a running job of this worker succeeded, failed or cancelled; False if it is no longer ours."""
    assert status in ("succeeded", "failed", "cancelled"), status
    now = utcnow()
    result = session.execute(
        update(JobRow).where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.status == "running")
        .values(status=status, finished_at=now, heartbeat_at=now, updated_at=now, **fields))
    return result.rowcount == 1


def release(session: Session, job_id: int, worker_id: str, reason: str) -> bool:
    """Put a job this worker is giving up (it is shutting down) back in the queue, attempt not counted."""
    now = utcnow()
    result = session.execute(
        update(JobRow).where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.status == "running")
        .values(status="queued", worker_id=None, heartbeat_at=None, updated_at=now, message=reason,
                attempts=JobRow.attempts - 1))
    return result.rowcount == 1


def recover_stale(session: Session, stale_after: float) -> list[JobInfo]:
    """Requeue (or fail, when out of attempts) running jobs whose heartbeat is older than ``stale_after`` s.

    Returns the jobs changed, as they are now.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after)
    query = select(JobRow).where(JobRow.status == "running", JobRow.heartbeat_at < cutoff).order_by(JobRow.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    changed: list[JobInfo] = []
    for row in session.scalars(query).all():
        seen = f"worker {row.worker_id} stopped sending heartbeats (last at {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        if row.cancel_requested:
            values: dict[str, Any] = {"status": "cancelled", "finished_at": now,
                                      "message": f"cancelled; {seen}"}
        elif row.attempts < row.max_attempts:
            values = {"status": "queued", "worker_id": None, "heartbeat_at": None,
                      "message": f"requeued: {seen}; it died or was killed. Attempt {row.attempts + 1} of "
                                 f"{row.max_attempts} resumes where the job left its work"}
        else:
            values = {"status": "failed", "finished_at": now, "message": "failed: its worker died",
                      "error": f"{seen}: it died or was killed (out of memory?), and the job has used its "
                               f"{row.max_attempts} attempt(s). See the log tail, then retry the job"}
        done = session.execute(update(JobRow).where(
            JobRow.id == row.id, JobRow.status == "running", JobRow.heartbeat_at == row.heartbeat_at,
        ).values(updated_at=now, **values))
        if done.rowcount == 1:
            session.refresh(row)
            changed.append(JobInfo.of(row))
    return changed
