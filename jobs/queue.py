"""The job queue as the app and the CLI use it: enqueue, look at, list, cancel and retry jobs.

Life of a job: ``queued`` -> ``running`` (a worker claimed it) -> ``succeeded`` | ``failed`` |
``cancelled``. A running job whose worker stops heartbeating goes back to ``queued`` while it has
attempts left (``max_attempts``, 2 by default: one retry), else to ``failed`` with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.errors import ConflictError, NotFoundError
from db.models import JOB_STATUSES, DatasetRow, JobRow
from db.types import utcnow
from jobs.base import STALE_AFTER, JobParamsError
from jobs.types import get_job_type

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class JobInfo:
    """A job as the app shows it (see :class:`db.models.JobRow` for the fields)."""

    id: int
    type: str
    params: dict[str, Any]
    status: str
    dataset_id: int | None
    progress: float
    message: str
    log_tail: str
    metrics: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    traceback: str | None
    cancel_requested: bool
    worker_id: str | None
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    updated_at: datetime
    uid: str  # unique across stores and resets: it names the job's work folder
    created_by: str | None = None  # who queued it, when known

    @classmethod
    def of(cls, row: JobRow) -> JobInfo:
        return cls(row.id, row.type, dict(row.params or {}), row.status, row.dataset_id, row.progress, row.message,
                   row.log_tail, dict(row.metrics or {}), row.result, row.error, row.traceback, row.cancel_requested,
                   row.worker_id, row.attempts, row.max_attempts, row.created_at, row.started_at, row.finished_at,
                   row.heartbeat_at, row.updated_at, row.uid, row.created_by)

    @property
    def folder(self) -> str:
        """The name of the job's work folder: its number for people, its uid for uniqueness."""
        return f"{self.id}-{self.uid}"

    @property
    def finished(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in FINISHED

    @property
    def seconds(self) -> float | None:
        """How long it ran (so far, while running)."""
        if self.started_at is None:
            return None
        return ((self.finished_at or utcnow()) - self.started_at).total_seconds()


def enqueue(
    session: Session,
    type: str,
    params: Mapping[str, Any] | None = None,
    *,
    dataset_id: int | None = None,
    max_attempts: int = 2,
    created_by: str | None = None,
) -> JobInfo:
    """Queue a job for a worker.

    Args:
        type: a job type name (see :func:`jobs.types.job_types`).
        params: its parameters, checked now by the type's ``parse_params``.
        dataset_id: the dataset the job is about (for listing jobs per dataset); taken from
            ``params["dataset_id"]`` when not given.
        max_attempts: how many times to run it when workers die under it (1: never retry).
        created_by: who queued it (the signed-in user); a model the job registers gets the same author.

    Raises:
        JobParamsError: unknown type or bad parameters (nothing is queued).
    """
    job_type = get_job_type(type)
    raw = dict(params or {})
    job_type.parse_params(raw)
    if max_attempts < 1:
        raise JobParamsError(f"max_attempts must be at least 1, got {max_attempts}")
    if dataset_id is None and isinstance(raw.get("dataset_id"), int):
        dataset_id = raw["dataset_id"]
    if dataset_id is not None and session.get(DatasetRow, dataset_id) is None:
        raise JobParamsError(f"no dataset with id {dataset_id}; pick one of the datasets in the store")
    row = JobRow(type=type, params=raw, status="queued", dataset_id=dataset_id, max_attempts=max_attempts,
                 created_by=created_by,
                 message="queued: the next free worker takes it (`cactus worker` starts one)")
    session.add(row)
    session.flush()
    return JobInfo.of(row)


def set_author(session: Session, job_id: int, author: str) -> JobInfo:
    """Record who queued a job (the app's signed-in user; a model it registers gets the same author).

    Raises:
        NotFoundError: no such job.
    """
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFoundError(f"no job with id {job_id}")
    row.created_by = author
    session.flush()
    return JobInfo.of(row)


def get_job(session: Session, job_id: int) -> JobInfo:
    """One job by id."""
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no job with id {job_id}")
    return JobInfo.of(row)


def list_jobs(
    session: Session,
    *,
    status: str | Sequence[str] | None = None,
    type: str | None = None,
    dataset_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[JobInfo]:
    """Jobs, newest first, optionally only of some statuses, a type or a dataset."""
    query = select(JobRow)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = [s for s in statuses if s not in JOB_STATUSES]
        if unknown:
            raise JobParamsError(f"unknown job status {unknown[0]!r}; use {', '.join(JOB_STATUSES)}")
        query = query.where(JobRow.status.in_(statuses))
    if type is not None:
        query = query.where(JobRow.type == type)
    if dataset_id is not None:
        query = query.where(JobRow.dataset_id == dataset_id)
    rows = session.scalars(query.order_by(JobRow.id.desc()).limit(limit).offset(offset))
    return [JobInfo.of(row) for row in rows]


def cancel(session: Session, job_id: int, *, orphaned_after: float = STALE_AFTER) -> JobInfo:
    """Cancel a job: a queued one at once, a running one as soon as its worker sees the request (seconds).

    A running job whose worker has sent no heartbeat for ``orphaned_after`` seconds (it died, or is frozen) is
    cancelled at once: no worker may ever come to see the request. Should its worker wake up, its next heartbeat
    finds the job no longer its own and it stops the job's process.

    Raises:
        ConflictError: the job has finished already.
    """
    now = utcnow()
    session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "queued").values(
        status="cancelled", finished_at=now, updated_at=now, message="cancelled before it started"))
    session.execute(update(JobRow).where(
        JobRow.id == job_id, JobRow.status == "running",
        JobRow.heartbeat_at < now - timedelta(seconds=orphaned_after),
    ).values(status="cancelled", cancel_requested=True, finished_at=now, updated_at=now,
             message="cancelled at once: its worker had stopped sending heartbeats"))
    session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(
        cancel_requested=True, updated_at=now, message="cancelling..."))
    job = get_job(session, job_id)
    if job.status in ("succeeded", "failed"):
        raise ConflictError(f"job {job_id} has {job.status} already; there is nothing to cancel")
    return job


def retry(session: Session, job_id: int) -> JobInfo:
    """Queue a new job with the type and parameters of a finished one (e.g. after fixing the cause)."""
    old = get_job(session, job_id)
    if not old.finished:
        raise ConflictError(f"job {job_id} is {old.status}; only a finished job can be run again")
    return enqueue(session, old.type, old.params, dataset_id=old.dataset_id, max_attempts=old.max_attempts)
