"""The job system's commands, registered with ``cactus`` through the ``cactus.commands`` entry point ``jobs``.

``cactus worker`` runs background jobs (fine-tuning, teacher labelling, ...) from the store's queue; ``cactus jobs``
queues, lists, follows, cancels and re-runs them from the shell (what the app's Train page does, for scripts and
headless machines). The worker's options live here too: ``python -m jobs.worker`` reads them from
:func:`add_worker_options`.

Registration stays light (``cactus --help`` imports this module): the queue, the worker and the store load only
when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cactus.errors import CactusError
from db.commands import add_db_option
from jobs.base import STALE_AFTER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``worker``, ``jobs`` and ``gc``."""
    register_worker(subparsers)
    register_jobs(subparsers)
    register_gc(subparsers)


def register_gc(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gc", help="report (and with --yes remove) the folders of failed, cancelled or deleted jobs",
        description="List the job folders the store no longer needs: those of failed or cancelled jobs and those "
        "no job of this store owns (deleted jobs, another store's, or a reset store's). A folder holding a "
        "registered model is kept. Nothing is removed without --yes.")
    add_db_option(parser)
    parser.add_argument("--jobs-dir", type=Path, metavar="DIR",
                        help="the jobs folder to clean (default: the one the worker uses for this store)")
    parser.add_argument("--yes", action="store_true", help="remove the folders listed")
    parser.set_defaults(func=run_gc)


def run_gc(args: argparse.Namespace) -> int:
    from db.session import database_url, session_scope
    from jobs.gc import leftovers, remove
    from jobs.worker import default_jobs_dir

    url = database_url(args.db)
    jobs_dir = args.jobs_dir or default_jobs_dir(url)
    with session_scope(url, readonly=True) as session:
        found = leftovers(session, jobs_dir)
    if not found:
        print(f"nothing to remove in {jobs_dir}")
        return 0
    for item in found:
        print(f"{item.path}  {item.size / 2**20:.1f} MiB  ({item.reason})")
    total = sum(item.size for item in found) / 2**20
    if not args.yes:
        print(f"{len(found)} folder(s), {total:.1f} MiB: rerun with --yes to remove them")
        return 0
    remove(found)
    print(f"removed {len(found)} folder(s), {total:.1f} MiB")
    return 0


WORKER_DESCRIPTION = (
    "Claim queued jobs from the store one at a time and run each in a child process, "
    "relaying its progress and log, until stopped with Ctrl-C (the running job goes back to the queue). "
    "The store is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db. Several workers may "
    "share one store. Job types beyond the built-in ones load from the modules named in CACTUS_JOB_TYPES."
)


def register_worker(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run queued background jobs (start one beside the app)",
                                   description=WORKER_DESCRIPTION)
    add_worker_options(parser)
    parser.set_defaults(func=run_worker_command)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``cactus worker`` (and ``python -m jobs.worker``), read by :func:`run_worker_command`."""
    add_db_option(parser)
    parser.add_argument("--once", action="store_true",
                        help="run at most one job, then exit (at once if none is queued)")
    parser.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--poll-interval", type=float, default=1.0, metavar="S",
                        help="seconds between looks at an empty queue (default: 1)")
    parser.add_argument("--heartbeat-interval", type=float, default=2.0, metavar="S",
                        help="seconds between heartbeats of a running job (default: 2)")
    parser.add_argument("--stale-after", type=float, default=STALE_AFTER, metavar="S",
                        help="seconds without a heartbeat after which another worker's job counts as orphaned "
                        f"and is requeued once, else failed (default: {STALE_AFTER:g})")
    parser.add_argument("--cancel-grace", type=float, default=5.0, metavar="S",
                        help="seconds a cancelled job gets to stop before it is killed (default: 5)")
    parser.add_argument("--jobs-dir", type=Path, metavar="DIR",
                        help="where jobs keep work folders and full logs (default: CACTUS_JOBS_DIR, else "
                        "jobs/ beside the default database)")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")


def run_worker_command(args: argparse.Namespace) -> int:
    """Run a worker with the options of :func:`add_worker_options` until it is done or stopped."""
    import logging

    from jobs.worker import WorkerConfig, run_worker

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = WorkerConfig(db_url=args.db, poll_interval=args.poll_interval,
                              heartbeat_interval=args.heartbeat_interval, stale_after=args.stale_after,
                              cancel_grace=args.cancel_grace, max_jobs=args.max_jobs, once=args.once,
                              exit_when_idle=args.exit_when_idle, jobs_dir=args.jobs_dir)
    except ValueError as exc:
        raise CactusError(str(exc)) from None
    run_worker(config)
    return 0


def register_jobs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="queue, list, follow, cancel and re-run background jobs (a `cactus worker` runs them)",
        description="Manage the store's job queue. Jobs run in a `cactus worker` (the app starts one); these "
        "commands only read and write the queue, so they work from any shell that reaches the store.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = _action(actions, "list", run_list, "jobs, newest first", "Jobs, newest first.")
    listing.add_argument("--status", action="append",
                         help="only this status: queued, running, succeeded, failed or cancelled (repeatable)")
    listing.add_argument("--type", help="only jobs of this type")
    listing.add_argument("--dataset", metavar="NAME", help="only jobs about this dataset")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N jobs (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    show = _action(actions, "show", run_show, "one job in full: parameters, progress, metrics, result, error, log tail",
                   "One job in full.", job_id=True)
    show.add_argument("--json", action="store_true", help="print the job as one JSON object")

    submit = _action(
        actions, "submit", run_submit, "queue a job",
        "Queue a job of TYPE (see `cactus jobs types`). Its parameters are checked now, so a typo is an error here "
        "and nothing is queued. Example: cactus jobs submit finetune --dataset \"Toy products (demo)\" "
        "--params '{\"train\": {\"epochs\": 3}}'",
    )
    submit.add_argument("type", metavar="TYPE")
    submit.add_argument("--dataset", metavar="NAME", help="the dataset the job works on (sets its dataset_id)")
    submit.add_argument("--params", default="{}", metavar="JSON",
                        help="the job's parameters as a JSON object, or @FILE to read them from a file")
    submit.add_argument("--max-attempts", type=int, default=2, metavar="N",
                        help="runs allowed when workers die under it (default 2)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job until it ends; exit status 0 only if it succeeded")

    _action(actions, "wait", run_wait, "follow a job until it ends (exit status 0 only if it succeeded)",
            "Print a job's progress until it ends. Ctrl-C stops following, not the job.", job_id=True)
    _action(actions, "cancel", run_cancel, "cancel a queued or running job",
            "A queued job is cancelled at once, a running one within seconds.", job_id=True)
    _action(actions, "retry", run_retry, "queue a finished job again with the same type and parameters",
            "Queue a new job with the type and parameters of a finished one.", job_id=True)
    _action(actions, "types", run_types, "the job types a worker can run",
            "Built-in job types, then those of the modules in CACTUS_JOB_TYPES.", store=False)


def _action(actions: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help: str,
            description: str, *, job_id: bool = False, store: bool = True) -> argparse.ArgumentParser:
    """One ``cactus jobs`` action: its parser, an ``ID`` argument when it acts on one job, and ``--db``."""
    parser = actions.add_parser(name, help=help, description=description)
    if job_id:
        parser.add_argument("job_id", type=int, metavar="ID")
    if store:
        add_db_option(parser)
    parser.set_defaults(func=func)
    return parser


def read_params(text: str) -> dict[str, Any]:
    """The ``--params`` value: a JSON object, inline or from ``@FILE``."""
    source = "--params"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CactusError(f"cannot read the parameters file {path}: {exc}") from None
        source = str(path)
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CactusError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise CactusError(f"{source} must be a JSON object like {{\"name\": ...}}, got {type(params).__name__}")
    return params


def job_summary(job: Any) -> dict[str, Any]:
    """A job (a :class:`jobs.queue.JobInfo`) as JSON-able data, with how long it ran as ``seconds``."""
    data = {key: value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
            for key, value in dataclasses.asdict(job).items()}
    return {**data, "seconds": job.seconds}


def _dataset_id(session: Any, name: str | None) -> int | None:
    from db.datasets import find_dataset

    return None if name is None else find_dataset(session, name).id


def run_list(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from jobs.queue import list_jobs

    if args.limit < 1:
        raise CactusError(f"--limit must be at least 1, got {args.limit}")
    with session_scope(args.db, readonly=True) as session:
        jobs = list_jobs(session, status=args.status, type=args.type,
                         dataset_id=_dataset_id(session, args.dataset), limit=args.limit)
    if args.json:
        for job in jobs:
            print(json.dumps(job_summary(job), ensure_ascii=False))
        return 0
    if not jobs:
        print("no jobs match")
        return 0
    rows = [("id", "type", "status", "progress", "dataset", "created", "message")]
    rows += [(str(j.id), j.type, j.status, f"{j.progress:.0%}", "" if j.dataset_id is None else str(j.dataset_id),
              j.created_at.strftime("%Y-%m-%d %H:%M"), j.error or j.message) for j in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def run_show(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from jobs.queue import get_job

    with session_scope(args.db, readonly=True) as session:
        job = get_job(session, args.job_id)
    summary = job_summary(job)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    log_tail, traceback = summary.pop("log_tail"), summary.pop("traceback")
    summary["progress"] = f"{job.progress:.0%}"
    if job.seconds is not None:
        summary["seconds"] = f"{job.seconds:.1f}"
    for key, value in summary.items():
        if value in (None, {}, ""):
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
        print(f"{key + ':':<17} {shown}")
    if traceback:
        print("traceback:\n" + traceback.rstrip())
    if log_tail:
        print("log (last lines):\n" + log_tail.rstrip())
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from jobs.queue import enqueue

    params = read_params(args.params)
    with session_scope(args.db) as session:
        dataset_id = _dataset_id(session, args.dataset)
        if dataset_id is not None and params.setdefault("dataset_id", dataset_id) != dataset_id:
            raise CactusError(f"--dataset {args.dataset} is dataset {dataset_id}, but --params names dataset_id "
                              f"{params['dataset_id']}; give one of them")
        job = enqueue(session, args.type, params, dataset_id=dataset_id, max_attempts=args.max_attempts)
    print(f"queued job {job.id} ({job.type}); a `cactus worker` runs it. Follow it with: cactus jobs wait {job.id}")
    if args.wait:
        return follow(args.db, job.id)
    return 0


def run_wait(args: argparse.Namespace) -> int:
    return follow(args.db, args.job_id)


def follow(url: str | None, job_id: int, *, interval: float = 1.0) -> int:
    """Print a job's status and progress as they change until it ends; 0 if it succeeded, else 1."""
    from db.session import session_scope
    from jobs.queue import get_job

    last = None
    try:
        while True:
            with session_scope(url, readonly=True) as session:
                job = get_job(session, job_id)
            line = f"job {job.id} {job.status}: {job.progress:.0%} {job.message}".rstrip()
            if line != last:
                print(line, flush=True)
                last = line
            if job.finished:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        print(f"stopped following job {job_id}; it goes on (cancel it with: cactus jobs cancel {job_id})",
              file=sys.stderr)
        return 130
    if job.status != "succeeded":
        print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), file=sys.stderr)
        return 1
    if job.result:
        print(json.dumps(job.result, ensure_ascii=False))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from jobs.queue import cancel

    with session_scope(args.db) as session:
        job = cancel(session, args.job_id)
    print(f"job {job.id}: {job.status}" + (" (cancel requested; it stops within seconds)"
                                           if job.status == "running" else ""))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from jobs.queue import retry

    with session_scope(args.db) as session:
        job = retry(session, args.job_id)
    print(f"queued job {job.id} ({job.type}), a re-run of job {args.job_id}")
    return 0


def run_types(args: argparse.Namespace) -> int:
    from jobs.types import job_types

    registry = job_types()
    width = max(len(name) for name in registry)
    for name, job_type in sorted(registry.items()):
        print(f"{name:<{width}}  {job_type.summary}")
    return 0
