"""Shared fixtures of the store and job tests: a fresh database per test, on SQLite and on PostgreSQL.

:func:`store_database` makes either: ``sqlite`` (a real file under the test's tmp_path) or ``postgresql``
(a fresh schema in the server named by ``CACTUS_TEST_PG_URL``, e.g. from ``.ci/postgres.sh``). The
PostgreSQL case is skipped, with the reason shown by ``pytest -ra``, when the variable is unset or the
server cannot be reached.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cactus.data import Entity, EntitySet

PG_ENV = "CACTUS_TEST_PG_URL"
T = TypeVar("T")


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    url = os.environ.get(PG_ENV)
    if not url:
        return f"{PG_ENV} is not set (start a server with: export {PG_ENV}=$(.ci/postgres.sh))"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)} is unreachable: {exc}"
    return None


def postgres_schema_url(schema: str) -> str:
    """The test server's URL with ``search_path`` set to ``schema`` (a database of its own, in effect)."""
    url = make_url(os.environ[PG_ENV])
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


#: The databases every store test runs on (the ``store_url`` fixture of tests/conftest.py).
DATABASES = ("sqlite", "postgresql")


def store_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database (no tables yet): a SQLite file, or a fresh PostgreSQL schema.

    Tests take it through the ``store_url`` fixture of tests/conftest.py.
    """
    from db.session import dispose_engines

    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        dispose_engines()
        return
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(os.environ[PG_ENV])
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(schema)
    finally:
        dispose_engines()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_set(set_id: str, texts: list[str], clusters: list[list[int]] | None = None,
             names: list[str] | None = None, **extra) -> EntitySet:
    """A set with entity ids e0, e1, ... (as a user's file would have them)."""
    return EntitySet(set_id, [Entity(f"e{i}", t) for i, t in enumerate(texts)], clusters,
                     names if clusters is not None else None, extra=dict(extra))


def sample_sets() -> list[EntitySet]:
    """Four small product sets: two labelled, two not; sizes 4, 3, 5, 2."""
    return [
        make_set("glue", ["glue stick", "hot glue gun", "candle wick", "beeswax candle"],
                 [[0, 1], [2, 3]], ["Glue", "Candles"]),
        make_set("pens", ["gel pen", "ballpoint pen", "pencil case"], [[0, 1], [2]], ["Pens", "Cases"]),
        make_set("paint", ["acrylic paint", "oil paint", "paint brush", "canvas", "easel"]),
        make_set("tape", ["washi tape", "masking tape"]),
    ]


# --- worker processes ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
TEST_JOB_TYPES = "tests.jobs_helpers_types"
#: Fast timings for tests: heartbeats every 0.2 s, a job is orphaned after 1.5 s without one.
FAST = ("--poll-interval", "0.1", "--heartbeat-interval", "0.2", "--stale-after", "1.5", "--cancel-grace", "2")


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process: the test job types importable and registered."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "CACTUS_JOB_TYPES": TEST_JOB_TYPES, **extra}


def start_worker(url: str, tmp_path: Path, *args: str, name: str = "worker", cli: bool = False,
                 **env: str) -> subprocess.Popen:
    """Start a worker on ``url`` as a separate process; its output goes to ``tmp_path/<name>.log``.

    ``cli``: through ``cactus worker``; else ``python -m jobs.worker`` (the same options and code, without
    loading every other command of the CLI).
    """
    log = (tmp_path / f"{name}.log").open("ab")
    command = ["-m", "cactus", "worker"] if cli else ["-m", "jobs.worker"]
    return subprocess.Popen(
        [sys.executable, *command, "--db", url, "--jobs-dir", str(tmp_path / "jobs"), *FAST, *args],
        stdout=log, stderr=subprocess.STDOUT, env=worker_env(**env), cwd=tmp_path,
    )


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 30.0, what: str = "a condition") -> T:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- the app's write path, as a separate process (tests/test_db_concurrency.py) -----------------------

def app_edit_sequence(set_ids: list[int], n: int) -> list[tuple[int, Any]]:
    """``n`` edits over ``set_ids`` in turn, each of which changes the clustering (so each is logged)."""
    from db.partition import Move, Rename

    edits: list[tuple[int, Any]] = []
    for i in range(n):
        set_id = set_ids[i % len(set_ids)]
        entity = (i // len(set_ids)) % 4
        edits.append((set_id, Rename(cluster=0, name=f"r{i}") if i % 3 == 0 else Move(entity=entity, to=None,
                                                                                       name=f"m{i}")))
    return edits


def app_edits(url: str, set_ids: list[int], n: int) -> None:
    """What the review page does, ``n`` times: one edit per request (transaction), a list now and then."""
    from db import apply_edit, list_sets, session_scope

    for i, (set_id, edit) in enumerate(app_edit_sequence(set_ids, n)):
        with session_scope(url) as session:
            apply_edit(session, set_id, edit, author="app")
        if i % 20 == 0:
            with session_scope(url, readonly=True) as session:
                list_sets(session, 1, has=["teacher"], limit=10)
    print(f"app: {n} edits done", flush=True)


def job_folder(tmp_path: Path, url: str, job_id: int) -> Path:
    """The work folder of job ``job_id`` under the tests' ``--jobs-dir`` (``tmp_path/jobs``): ``<id>-<uid>``."""
    from db import session_scope
    from jobs.queue import get_job

    with session_scope(url, readonly=True) as session:
        return tmp_path / "jobs" / get_job(session, job_id).folder


# --- faults under a worker (tests/test_jobs_lease.py, tests/test_jobs_worker.py) -----------------------

def step_runs(work: Path) -> dict[int, list[int]]:
    """Which attempts ran each step of a ``test.steps`` job: one line per run in ``step-<i>``."""
    return {int(p.name.split("-")[1]): [int(line) for line in p.read_text().split()] for p in work.glob("step-*")}


def steps_run_twice(work: Path) -> list[int]:
    """The steps of a ``test.steps`` job that ran more than once (should be none)."""
    return sorted(step for step, attempts in step_runs(work).items() if len(attempts) > 1)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie that its frozen parent has not reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def child_pids(pid: int) -> list[int]:
    """The direct children of process ``pid`` (Linux /proc)."""
    return [int(c) for c in (Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def _store_is_free(url: str, job_id: int) -> bool:
    """Whether another process can write the store (and job ``job_id``'s row) within a second."""
    import sqlite3

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database, timeout=1.0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '1s'"))
            connection.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id})
        return True
    except Exception:  # lock timeout: the frozen process holds the row
        return False
    finally:
        engine.dispose()


def freeze(process: subprocess.Popen, url: str, job_id: int) -> None:
    """SIGSTOP ``process`` at a moment when it holds no lock in the store (not in the middle of a heartbeat).

    A process frozen inside a write transaction would hold up every writer (SQLite) or the job's row
    (PostgreSQL), which is another fault than the one under test.
    """
    import signal

    for _ in range(20):
        os.kill(process.pid, signal.SIGSTOP)
        if _store_is_free(url, job_id):
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the worker held the store's lock at every try; cannot freeze it cleanly")


def job(url: str, job_id: int):
    """Job ``job_id`` of the store at ``url`` as it is now (a :class:`jobs.queue.JobInfo`)."""
    from db import session_scope
    from jobs.queue import get_job

    with session_scope(url, readonly=True) as session:
        return get_job(session, job_id)
