"""The process a job runs in: ``python -m jobs.child FD``, started by the worker (:mod:`jobs.process`).

The worker writes the job's spec as one JSON line on stdin and keeps stdin open; the job's messages
(progress, metrics, result, error) go back as JSON lines on the pipe ``FD``, and its stdout and stderr
are the job's log. When stdin closes, the worker is gone: the job's whole process group is killed so
that nothing keeps running (or holding a GPU) unsupervised. SIGTERM raises :class:`JobCancelled`
inside the job so that its ``finally`` blocks run; the worker follows up with SIGKILL if it lingers.

A frozen worker keeps stdin open, so the child also watches its lease: every ``lease_check`` seconds
(the worker's heartbeat interval) a thread reads the job's row, and once the lease has moved on (another
worker took the job over, or it was cancelled while its worker was silent) it raises :class:`LeaseLost`
in the job (SIGTERM to itself) and, should the job still run ``lease_grace`` seconds later (blocked on a
frozen worker's full pipe, say), kills the process group.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from cactus.errors import CactusError
from jobs.base import JobCancelled, JobContext, JobError, LeaseLost, channel_from_fd
from jobs.types import get_job_type

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_LEASE_LOST = 0, 1, 3, 4
_lease: dict[str, Any] = {"lost": None, "raised": False}  # the watchdog's finding, for the SIGTERM handler


def _watch_parent() -> None:
    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        # EOF: the worker died (or closed us off). Take any grandchildren (torchrun ranks) down too.
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(EXIT_CANCELLED)

    threading.Thread(target=watch, name="cactus-job-watchdog", daemon=True).start()


def _kill_group_and_exit(code: int) -> None:
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(code)


def _watch_lease(ctx: JobContext, interval: float, grace: float) -> None:
    """Stop this process within about ``interval`` s once its lease is gone, even if its worker is frozen."""
    from db.session import session_scope
    from jobs.claims import lease_state

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                with session_scope(ctx.db_url, readonly=True) as session:
                    lost = lease_state(session, ctx.job_id, ctx.lease)  # type: ignore[arg-type]
            except Exception:  # the store is unreachable for now: not a reason to stop a job
                continue
            if lost is not None:
                break
        _lease["lost"] = lost
        ctx.lease_lost(lost)
        os.kill(os.getpid(), signal.SIGTERM)  # LeaseLost in the job: its finally blocks run
        time.sleep(grace)
        _kill_group_and_exit(EXIT_LEASE_LOST)  # it did not stop in time

    threading.Thread(target=watch, name="cactus-job-lease", daemon=True).start()


def _on_sigterm(signum: int, frame: Any) -> None:
    if _lease["lost"] is not None:
        if not _lease["raised"]:  # once: after that the job is on its way out already
            _lease["raised"] = True
            raise LeaseLost(_lease["lost"])
        return
    raise JobCancelled("stopped by the worker")


def run(spec: dict[str, Any], channel: Any) -> int:
    """Run the job described by ``spec``; returns the process's exit status."""
    ctx = JobContext(job_id=int(spec["job_id"]), type=spec["type"], params=dict(spec["params"]),
                     attempt=int(spec["attempt"]), db_url=spec["db_url"], work_dir=Path(spec["work_dir"]),
                     lease=spec.get("lease"), _channel=channel)
    if ctx.lease is not None and spec.get("lease_check"):
        _watch_lease(ctx, float(spec["lease_check"]), float(spec.get("lease_grace") or 5.0))

    def send(message: dict[str, Any]) -> None:
        channel.write((json.dumps(message, default=str) + "\n").encode())
        channel.flush()

    try:
        job_type = get_job_type(ctx.type)
        params = job_type.parse_params(ctx.params)
        result = job_type.run(ctx, params)
        if result is not None and not isinstance(result, dict):
            raise JobError(f"job type {ctx.type!r} returned {type(result).__name__}; a job returns a dict or None")
        send({"kind": "result", "result": json.loads(json.dumps(result or {}, default=str))})
        return EXIT_OK
    except JobCancelled:
        send({"kind": "cancelled"})
        return EXIT_CANCELLED
    except LeaseLost as exc:  # nobody listens for this job's messages any more: say it in the log only
        _lease["raised"] = True
        print(f"stopped: the lease was lost ({exc}); nothing more is written for this attempt", file=sys.stderr,
              flush=True)
        return EXIT_LEASE_LOST
    except BaseException as exc:  # every failure becomes a readable error in the store
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        message = str(exc) if isinstance(exc, CactusError) else f"{type(exc).__name__}: {exc}"
        send({"kind": "error", "error": message or type(exc).__name__, "traceback": trace})
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m jobs.child FD   (started by `cactus worker`, with the job spec on stdin)",
              file=sys.stderr)
        return 2
    channel = channel_from_fd(int(args[0]))
    spec = json.loads(sys.stdin.buffer.readline())
    _watch_parent()
    signal.signal(signal.SIGTERM, _on_sigterm)
    os.environ["CACTUS_DB_URL"] = spec["db_url"]
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema-check chatter, not the job's log
    Path(spec["work_dir"]).mkdir(parents=True, exist_ok=True)
    return run(spec, channel)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code == EXIT_LEASE_LOST:  # its worker may be frozen: end what the job started here and now
        _kill_group_and_exit(code)
    os._exit(code)  # skip interpreter teardown: non-daemon threads of a job (thread pools) cannot hold us
