"""The job worker (``cactus worker``): claims queued jobs one at a time and runs each in a child process.

Loop: requeue or fail jobs whose worker died (stale heartbeat), claim the oldest queued job, start its
process (:mod:`jobs.process`), then until it ends: relay its progress, metrics and log tail to the
store, heartbeat, and stop it when the store says it was cancelled. Its result decides the status:
``succeeded`` (a result arrived and it exited 0), ``cancelled``, or ``failed`` with the job's error and
traceback (or how the process died). A job that fails never stops the worker.

On SIGINT/SIGTERM the worker stops its job's process and puts the job back in the queue (the attempt is
not counted), then exits.

``python -m jobs.worker [options]`` is ``cactus worker [options]`` without the rest of the command line.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from db.artifacts import artifacts_dir
from db.session import database_url, get_engine, session_scope
from jobs import claims
from jobs.base import STALE_AFTER
from jobs.process import JobProcess
from jobs.queue import JobInfo, get_job

log = logging.getLogger("cactus.worker")
T = TypeVar("T")
JOBS_DIR_ENV = "CACTUS_JOBS_DIR"
HISTORY_POINTS = 2000  # points of metrics["history"] kept per job (the newest)


def default_jobs_dir(url: str | None = None) -> Path:
    """Where jobs keep their work folders: ``$CACTUS_JOBS_DIR``, else ``jobs/`` in the store's artifacts folder
    (:func:`db.artifacts.artifacts_dir`: beside a SQLite file, ``$CACTUS_ARTIFACTS_DIR`` for PostgreSQL)."""
    chosen = os.environ.get(JOBS_DIR_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else artifacts_dir(database_url(url)) / "jobs"


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs.

    Attributes:
        db_url: the store (None: ``CACTUS_DB_URL`` or the default SQLite file).
        poll_interval: seconds between looks at the queue when it is empty.
        heartbeat_interval: seconds between heartbeats (and looks at the cancel flag) while a job runs.
        stale_after: seconds without a heartbeat after which a running job counts as orphaned.
        cancel_grace: seconds a job gets to stop after SIGTERM before SIGKILL.
        max_jobs: exit after this many jobs (None: no limit).
        once: run at most one job, then exit (at once when none is queued).
        exit_when_idle: exit when the queue is empty instead of waiting for more.
        jobs_dir: parent of each job's work folder (None: :func:`default_jobs_dir`).
        worker_id: how this worker names itself in the store (default: host:pid:random).
    """

    db_url: str | None = None
    poll_interval: float = 1.0
    heartbeat_interval: float = 2.0
    stale_after: float = STALE_AFTER
    cancel_grace: float = 5.0
    max_jobs: int | None = None
    once: bool = False
    exit_when_idle: bool = False
    jobs_dir: Path | None = None
    worker_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("poll_interval", "heartbeat_interval", "stale_after", "cancel_grace"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.stale_after <= 2 * self.heartbeat_interval:
            raise ValueError(f"stale_after ({self.stale_after} s) must exceed twice the heartbeat interval "
                             f"({self.heartbeat_interval} s), or live jobs would be taken for dead")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self.max_jobs}")


def describe_exit(code: int) -> str:
    """A job process's exit status in words."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        hint = " (often the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"the job's process was killed by {name}{hint}; see the log tail"
    return f"the job's process exited with status {code} without reporting a result; see the log tail"


class Worker:
    """One worker; :meth:`run` processes jobs until told to stop (see :class:`WorkerConfig`)."""

    def __init__(self, config: WorkerConfig | None = None) -> None:
        self.config = config or WorkerConfig()
        self.url = database_url(self.config.db_url)
        self.jobs_dir = self.config.jobs_dir or default_jobs_dir(self.url)
        self.id = self.config.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Ask the worker to stop: its running job goes back to the queue and :meth:`run` returns."""
        self._stop.set()

    def _db(self, action: Callable[[Any], T], *, retries: int = 5) -> T:
        """Run ``action(session)`` in a transaction, retrying while the database is unreachable."""
        for attempt in range(retries):
            try:
                with session_scope(self.url) as session:
                    return action(session)
            except OperationalError as exc:
                if attempt == retries - 1:
                    raise
                log.warning("database error (%s); retrying", str(exc).splitlines()[0])
                time.sleep(min(2.0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")

    def run(self) -> int:
        """Process jobs; returns how many were run."""
        get_engine(self.url)  # create or upgrade the schema before anything else
        log.info("worker %s on %s", self.id, get_engine(self.url).url.render_as_string(hide_password=True))
        done = 0
        while not self._stop.is_set():
            if self.config.max_jobs is not None and done >= self.config.max_jobs:
                break
            try:
                for job in self._db(lambda s: claims.recover_stale(s, self.config.stale_after)):
                    log.warning("job %s: %s", job.id, job.message if job.status != "failed" else job.error)
                job = self._db(lambda s: claims.claim_next(s, self.id))
            except OperationalError as exc:
                log.error("cannot reach the store (%s); trying again", str(exc).splitlines()[0])
                self._stop.wait(self.config.poll_interval)
                continue
            if job is None:
                if self.config.once or self.config.exit_when_idle:
                    break
                self._stop.wait(self.config.poll_interval)
                continue
            try:
                self.run_job(job)
            except Exception:  # the store went away mid-job, or a bug: the job's heartbeat goes stale
                log.exception("job %s: the worker could not supervise it; it will be recovered as stale", job.id)
                self._stop.wait(self.config.poll_interval)
            done += 1
            if self.config.once:
                break
        log.info("worker %s stops after %d job(s)", self.id, done)
        return done

    def run_job(self, job: JobInfo) -> str:
        """Run one claimed job to its end; returns its final status ("released" when the worker stopped)."""
        log.info("job %s (%s) attempt %d: started", job.id, job.type, job.attempts)
        work_dir = self.jobs_dir / job.folder
        spec = {"job_id": job.id, "type": job.type, "params": job.params, "attempt": job.attempts,
                "db_url": self.url, "work_dir": str(work_dir), "lease": job.lease,
                "lease_check": self.config.heartbeat_interval, "lease_grace": self.config.cancel_grace}
        try:
            process = JobProcess(spec, log_path=work_dir / "log.txt")
        except OSError as exc:
            error = f"cannot start the job's process: {exc}"
            self._db(lambda s: claims.finish(s, job.id, self.id, job.lease, "failed", error=error,
                                             message="failed to start"))
            return "failed"
        state = _JobState(progress=job.progress, message=job.message, metrics=dict(job.metrics))
        try:
            return self._supervise(job, process, state)
        finally:
            process.close()

    def _supervise(self, job: JobInfo, process: JobProcess, state: _JobState) -> str:
        last_beat = time.monotonic()
        while True:
            state.absorb(process.messages())
            code = process.poll()
            if code is not None:
                break
            if self._stop.is_set():
                process.stop(self.config.cancel_grace)
                self._db(lambda s: claims.release(s, job.id, self.id, job.lease, "requeued: its worker was stopped"))
                log.info("job %s: put back in the queue (worker stopping)", job.id)
                return "released"
            now = time.monotonic()
            due = now - last_beat >= self.config.heartbeat_interval
            news = state.changed or process.log_changed
            if due or (news and now - last_beat >= min(0.5, self.config.heartbeat_interval)):
                fields = state.fields(process.log_tail())
                try:
                    beat = self._db(lambda s, fields=fields: claims.heartbeat(s, job.id, self.id, job.lease, **fields),
                                    retries=1)
                except OperationalError as exc:
                    log.warning("job %s: heartbeat failed (%s)", job.id, str(exc).splitlines()[0])
                    beat = None
                if beat is not None:
                    last_beat = now
                    if not beat.owned:
                        process.stop(self.config.cancel_grace)
                        log.warning("job %s: its lease moved on (this worker was taken for dead and the job requeued, "
                                    "or it was cancelled); stopped its process", job.id)
                        return "lost"
                    if beat.cancel_requested:
                        process.stop(self.config.cancel_grace)
                        state.absorb(process.messages())
                        self._end(job, "cancelled", state, process, message="cancelled")
                        return "cancelled"
            self._stop.wait(0.05)
        process.finish_reading()
        state.absorb(process.messages())
        if state.result is not None and code == 0:
            self._end(job, "succeeded", state, process, progress=1.0, message=state.message or "done",
                      result=state.result)
            return "succeeded"
        if state.cancelled and self._db(lambda s: get_job(s, job.id)).cancel_requested:
            self._end(job, "cancelled", state, process, message="cancelled")
            return "cancelled"
        if state.cancelled:  # the child caught a SIGTERM that neither cancel nor this worker sent
            error = ("the job's process was stopped by SIGTERM from outside the workbench (not by `cactus jobs "
                     "cancel` or the app): another program or the system sent it; see the log tail")
        else:
            error = state.error or describe_exit(code)
        self._end(job, "failed", state, process, message="failed", error=error, traceback=state.traceback)
        return "failed"

    def _end(self, job: JobInfo, status: str, state: _JobState, process: JobProcess, **fields: Any) -> None:
        values = {"progress": state.progress, "metrics": state.metrics, "log_tail": process.log_tail(), **fields}
        if not self._db(lambda s: claims.finish(s, job.id, self.id, job.lease, status, **values)):
            log.warning("job %s ended (%s) but its lease had moved on (the job was requeued for another worker or "
                        "cancelled while this one was silent); left as it is", job.id, status)
            return
        suffix = f": {fields['error']}" if status == "failed" else ""
        log.info("job %s (%s): %s%s", job.id, job.type, status, suffix)


@dataclass
class _JobState:
    """What the job reported so far."""

    progress: float
    message: str
    metrics: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    cancelled: bool = False
    changed: bool = False

    def absorb(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            kind = message.get("kind")
            if kind == "progress":
                self.progress = float(message.get("fraction", self.progress))
                self.message = str(message.get("message", ""))
            elif kind == "metrics":
                self.metrics = {**self.metrics, **dict(message.get("metrics") or {})}
            elif kind == "point":
                history = [*self.metrics.get("history", []), dict(message.get("point") or {})]
                self.metrics = {**self.metrics, "history": history[-HISTORY_POINTS:]}
            elif kind == "result":
                self.result = dict(message.get("result") or {})
            elif kind == "error":
                self.error = str(message.get("error"))
                self.traceback = message.get("traceback")
            elif kind == "cancelled":
                self.cancelled = True
            else:
                continue
            self.changed = True

    def fields(self, log_tail: str) -> dict[str, Any]:
        self.changed = False
        return {"progress": self.progress, "message": self.message, "metrics": self.metrics, "log_tail": log_tail}


def run_worker(config: WorkerConfig | None = None) -> int:
    """Run a worker in this process until it is done or gets SIGINT/SIGTERM; returns the jobs run."""
    worker = Worker(config)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: worker.request_stop())
    try:
        return worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.worker``: the options of ``cactus worker``."""
    import argparse
    import sys

    from cactus.errors import CactusError
    from jobs.commands import WORKER_DESCRIPTION, add_worker_options, run_worker_command

    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=WORKER_DESCRIPTION)
    add_worker_options(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run_worker_command(args)
    except CactusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
