"""``cactus worker``: run background jobs (fine-tuning, teacher labelling, ...) from the store's queue.

This module stays thin: the job system lives in the top-level ``jobs`` package (which uses ``db`` and
``cactus``), imported only when the command runs, so the library never imports it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.cli.store_option import add_db_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run queued background jobs (start one beside the app)",
        description="Claim queued jobs from the store one at a time and run each in a child process, "
        "relaying its progress and log, until stopped with Ctrl-C (the running job goes back to the queue). "
        "The store is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db. Several workers may "
        "share one store. Job types beyond the built-in ones load from the modules named in CACTUS_JOB_TYPES.",
    )
    add_db_option(parser)
    parser.add_argument("--once", action="store_true",
                        help="run at most one job, then exit (at once if none is queued)")
    parser.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--poll-interval", type=float, default=1.0, metavar="S",
                        help="seconds between looks at an empty queue (default: 1)")
    parser.add_argument("--heartbeat-interval", type=float, default=2.0, metavar="S",
                        help="seconds between heartbeats of a running job (default: 2)")
    parser.add_argument("--stale-after", type=float, default=60.0, metavar="S",
                        help="seconds without a heartbeat after which another worker's job counts as orphaned "
                        "and is requeued once, else failed (default: 60)")
    parser.add_argument("--cancel-grace", type=float, default=5.0, metavar="S",
                        help="seconds a cancelled job gets to stop before it is killed (default: 5)")
    parser.add_argument("--jobs-dir", type=Path, metavar="DIR",
                        help="where jobs keep work folders and full logs (default: CACTUS_JOBS_DIR, else "
                        "jobs/ beside the default database)")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from cactus.errors import CactusError
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
