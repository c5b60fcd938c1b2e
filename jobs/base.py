"""What a job type is and what it gets to run: :class:`JobType` and :class:`JobContext`.

A job type is a name, a parameter parser and a ``run`` function. ``run`` executes in a child process
of the worker (``python -m jobs.child``), so it may use the GPU, crash or be killed without harming the
worker. It reports through the context: ``ctx.progress(0.4, "epoch 2/5")``, ``ctx.metrics(ARI=0.61)``,
``ctx.point(step=120, loss=0.31)`` (a loss curve), and anything it prints (or logs) lands in the job's
log tail. It returns a JSON-able dict, stored as the job's ``result`` (e.g. ``{"model_id": 3}``).

A job whose worker died is run again (once, by default) with ``ctx.attempt`` = 2 and the same
``ctx.work_dir``: a job type that keeps its state there (checkpoints) or in the store resumes instead
of starting over.

Fencing. A job runs under a lease (``ctx.lease``, a token from the claim). Should its worker freeze past
``--stale-after`` and another worker take the job over, the lease moves on, and everything this process
would still write is refused with :class:`LeaseLost`: every ``ctx.session()`` checks the lease in the same
transaction, and ``ctx.progress``/``metrics``/``point`` stop once the process knows its lease is gone (a
watchdog thread of ``jobs.child`` looks every heartbeat interval and stops the process). Writes of a job's
own (files in ``work_dir``) that must not happen twice go inside a ``with ctx.session():`` block.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, TypeVar

from cactus.errors import CactusError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

P = TypeVar("P")

#: Seconds without a heartbeat after which a running job's worker is taken for dead (``cactus worker --stale-after``).
STALE_AFTER = 60.0


class JobError(CactusError):
    """A job cannot be queued or run as asked; the message says what to change."""


class JobParamsError(JobError, ValueError):
    """A job's parameters are missing or wrong."""


class JobCancelled(BaseException):  # a BaseException: `except Exception` in a job must not swallow it
    """Raised inside a job's process when the worker stops it (cancel or shutdown)."""


class LeaseLost(BaseException):  # a BaseException, as JobCancelled: the job must stop, not carry on
    """Raised inside a job's process whose lease moved on: another worker has the job, or it was cancelled."""


@dataclass(frozen=True)
class JobType(Generic[P]):
    """A kind of background job.

    Attributes:
        name: what ``enqueue(session, name, params)`` asks for, e.g. "label".
        summary: one line for listings.
        parse_params: checks the raw JSON parameters and returns what ``run`` takes; raises
            :class:`JobParamsError` naming the parameter at fault. It runs when the job is queued (so
            the app hears about a typo at once) and again in the job's process. Keep it cheap: no
            torch, no network.
        run: does the work in the job's process; returns the job's result (a JSON-able dict) or None.
    """

    name: str
    summary: str
    run: Callable[[JobContext, P], dict[str, Any] | None]
    parse_params: Callable[[Mapping[str, Any]], P] = dict  # type: ignore[assignment]


@dataclass
class JobContext:
    """What a running job can see and report through (built by ``jobs.child``).

    Attributes:
        job_id: the job's id in the store.
        type: its job type's name.
        params: its raw parameters.
        attempt: 1 for the first run, 2 when a worker died and the job is run again.
        db_url: the store's URL (also in ``CACTUS_DB_URL`` of the job's process).
        work_dir: a folder of this job's own that survives a retry (checkpoints, exports, the full log).
        lease: the fencing token of this run (see :mod:`jobs.claims`); None runs unfenced (a job run
            outside a worker, e.g. by a test).
    """

    job_id: int
    type: str
    params: dict[str, Any]
    attempt: int
    db_url: str
    work_dir: Path
    lease: int | None = None
    _channel: BinaryIO | None = field(default=None, repr=False)
    _lost: str | None = field(default=None, repr=False)

    @property
    def resumed(self) -> bool:
        """True when an earlier attempt ran (and may have left work in ``work_dir`` or the store)."""
        return self.attempt > 1

    def lease_lost(self, reason: str) -> None:
        """Note that the lease is gone (the child's watchdog calls this): later reports and sessions raise."""
        self._lost = reason

    def check_lease(self) -> None:
        """Raise :class:`LeaseLost` if this process is known to have lost its lease."""
        if self._lost is not None:
            raise LeaseLost(self._lost)

    def _send(self, message: dict[str, Any]) -> None:
        self.check_lease()
        if self._channel is None:
            return
        self._channel.write((json.dumps(message, default=str) + "\n").encode())
        self._channel.flush()

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is, 0..1, with a short message ("epoch 2/5, loss 0.31")."""
        value = float(fraction)
        if not math.isfinite(value):
            return
        self._send({"kind": "progress", "fraction": min(1.0, max(0.0, value)), "message": str(message)[:500]})

    def metrics(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Record metrics (merged into the job's ``metrics``: last value of each name wins)."""
        merged = {**(values or {}), **more}
        if merged:
            self._send({"kind": "metrics", "metrics": merged})

    def point(self, **values: Any) -> None:
        """Append a point to the job's ``metrics["history"]`` (e.g. ``step=120, loss=0.31``), for live charts.

        The worker keeps the last :data:`jobs.worker.HISTORY_POINTS` points.
        """
        if values:
            self._send({"kind": "point", "point": values})

    def log(self, message: str) -> None:
        """Write a line to the job's log."""
        print(message, flush=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A store session (commits on success), as :func:`db.session.session_scope`, fenced by the lease.

        It starts by checking that this run still holds the job's lease and keeps the check true until it
        commits (PostgreSQL: the job's row is locked ``FOR SHARE``; SQLite: the write lock), so what it writes
        is refused (:class:`LeaseLost`, nothing committed) once another worker has the job or it was cancelled.
        Keep the block short: on PostgreSQL the worker's heartbeat waits for it.
        """
        from db.session import session_scope

        self.check_lease()
        with session_scope(self.db_url) as session:
            if self.lease is not None:
                from jobs.claims import check_lease

                try:
                    check_lease(session, self.job_id, self.lease)
                except LeaseLost as exc:
                    self._lost = str(exc)
                    raise
            yield session


def channel_from_fd(fd: int) -> BinaryIO:
    """The write end of the worker's message pipe, as a file."""
    return os.fdopen(fd, "wb", buffering=0)

