"""The worker's side of the job table: claim, heartbeat, finish, release and recover stale jobs.

Leases. Every claim and every requeue adds one to the job's ``lease``, a fencing token. :func:`claim_next`
returns the new value; the worker's writes (heartbeat, finish, release) name it and the job's process
gets it in its spec, so its store sessions (:meth:`jobs.base.JobContext.session`) check it in the same
transaction (:func:`check_lease`). A worker or job process that lost its job (it was frozen past
``--stale-after`` and another worker took the job over, or the job was cancelled while orphaned) finds
out from the row count or the check instead of overwriting someone else's state.

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
from jobs.base import LeaseLost
from jobs.queue import JobInfo


def claim_next(session: Session, worker_id: str) -> JobInfo | None:
    """Take the oldest queued job for ``worker_id`` and mark it running; None when none is queued."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": "running", "worker_id": worker_id, "started_at": now, "heartbeat_at": now, "updated_at": now,
        "attempts": JobRow.attempts + 1, "cancel_requested": False, "error": None, "traceback": None,
        "lease": JobRow.lease + 1,
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


def _held(job_id: int, worker_id: str, lease: int) -> tuple[Any, ...]:
    """The conditions of a write by the holder of ``lease``: the job is still running under it."""
    return (JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.lease == lease, JobRow.status == "running")


def heartbeat(session: Session, job_id: int, worker_id: str, lease: int, **fields: Any) -> Beat:
    """Refresh the heartbeat and write ``fields`` (progress, message, log_tail, metrics) of a running job."""
    now = utcnow()
    cancel_requested = session.scalar(
        update(JobRow).where(*_held(job_id, worker_id, lease))
        .values(heartbeat_at=now, updated_at=now, **fields).returning(JobRow.cancel_requested))
    if cancel_requested is None:
        return Beat(False, False)
    return Beat(True, bool(cancel_requested))


def finish(session: Session, job_id: int, worker_id: str, lease: int, status: str, **fields: Any) -> bool:
    """Mark a running job of this worker succeeded, failed or cancelled; False if it is no longer ours."""
    assert status in ("succeeded", "failed", "cancelled"), status
    now = utcnow()
    result = session.execute(
        update(JobRow).where(*_held(job_id, worker_id, lease))
        .values(status=status, finished_at=now, heartbeat_at=now, updated_at=now, **fields))
    return result.rowcount == 1


def release(session: Session, job_id: int, worker_id: str, lease: int, reason: str) -> bool:
    """Put a job this worker is giving up (it is shutting down) back in the queue, attempt not counted."""
    now = utcnow()
    result = session.execute(
        update(JobRow).where(*_held(job_id, worker_id, lease))
        .values(status="queued", worker_id=None, heartbeat_at=None, updated_at=now, message=reason,
                attempts=JobRow.attempts - 1, lease=JobRow.lease + 1))
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
            values = {"status": "queued", "worker_id": None, "heartbeat_at": None, "lease": row.lease + 1,
                      "message": f"requeued: {seen}; it died or was killed. Attempt {row.attempts + 1} of "
                                 f"{row.max_attempts} resumes where the job left its work"}
        else:
            values = {"status": "failed", "finished_at": now, "message": "failed: its worker died",
                      "error": f"{seen}: it died or was killed (out of memory?), and the job has used its "
                               f"{row.max_attempts} attempt(s). See the log tail, then retry the job"}
        done = session.execute(update(JobRow).where(
            JobRow.id == row.id, JobRow.status == "running", JobRow.heartbeat_at == row.heartbeat_at,
            JobRow.lease == row.lease,
        ).values(updated_at=now, **values))
        if done.rowcount == 1:
            session.refresh(row)
            changed.append(JobInfo.of(row))
    return changed


def lease_state(session: Session, job_id: int, lease: int, *, lock: bool = False) -> str | None:
    """Why ``lease`` no longer holds job ``job_id`` (a sentence), or None while it does.

    ``lock``: on PostgreSQL, lock the job's row (``FOR SHARE``) until the transaction ends, so that no claim,
    requeue or cancel can move the lease on before this transaction commits (SQLite's write transaction holds
    the database's write lock already).
    """
    query = select(JobRow.lease, JobRow.status).where(JobRow.id == job_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = session.execute(query).one_or_none()
    if row is None:
        return f"job {job_id} was deleted"
    if row.lease != lease:
        return (f"job {job_id} was taken over (its lease is {row.lease}, this process held {lease}): its worker "
                "stopped sending heartbeats for too long and the job was requeued")
    if row.status != "running":
        return f"job {job_id} is {row.status} now"
    return None


def check_lease(session: Session, job_id: int, lease: int) -> None:
    """Raise :class:`jobs.base.LeaseLost` unless ``lease`` still holds the job; the check holds until commit."""
    lost = lease_state(session, job_id, lease, lock=True)
    if lost is not None:
        raise LeaseLost(lost)
