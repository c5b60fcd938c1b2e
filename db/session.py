"""Engines and the one way to open a session: :func:`session_scope`.

The database is named by one URL: the ``url`` argument, else ``CACTUS_DB_URL``, else a SQLite file
in the user's data folder (``$XDG_DATA_HOME/cactus/cactus.db``, by default
``~/.local/share/cactus/cactus.db``). ``postgresql+psycopg://user:pass@host:port/db`` works unchanged.

The first engine made for a URL in a process creates the database or upgrades it to the newest
schema (Alembic, :mod:`db.migrate`), so neither the app nor the CLI needs a manual step.

SQLite is set up for an app and a worker writing at once: WAL journal (readers never wait for the
writer), a 30 s busy timeout, ``synchronous=NORMAL`` and foreign keys on. Every write transaction
starts with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail with
"database is locked" at once, without waiting, when another process committed in between
(SQLITE_BUSY_SNAPSHOT); taking the write lock up front makes it wait its turn instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from db.errors import StoreError

ENV_URL = "CACTUS_DB_URL"
BUSY_TIMEOUT_S = 30.0
_READONLY = "cactus_readonly"

#: What a store that cannot be opened or queried raises (an unreachable server, a file in the way, a bad URL).
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (StoreError, SQLAlchemyError)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def default_database_path() -> Path:
    """The SQLite file used when no URL is given: ``$XDG_DATA_HOME/cactus/cactus.db``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cactus" / "cactus.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$CACTUS_DB_URL``, else the default SQLite file."""
    chosen = url or os.environ.get(ENV_URL)
    if chosen:
        return chosen
    return f"sqlite:///{default_database_path()}"


def printable_url(url: str) -> str:
    """``url`` with its password hidden, fit for messages."""
    return make_url(url).render_as_string(hide_password=True)


def create_store_engine(url: str) -> Engine:
    """A new engine for ``url`` with the store's SQLite settings; does not touch the schema.

    Raises:
        StoreError: the URL cannot be parsed, or names a SQLite file in a folder that cannot be made.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse the database URL {url!r} ({exc}); set {ENV_URL} to "
                         "sqlite:///PATH/cactus.db or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB") from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {folder} for the SQLite database ({exc.strerror}); "
                             f"set {ENV_URL} to a writable location") from None
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN (see _sqlite_on_begin) instead of the sqlite3 module's own rules.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    readonly = connection.get_execution_options().get(_READONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """The process-wide engine for ``url`` (see :func:`database_url`), made on first use.

    Args:
        url: the database URL; ``None`` for :func:`database_url`'s choice.
        migrate: on first use, create the tables or upgrade them to the newest schema.
    """
    resolved = database_url(url)
    with _engines_lock:
        engine = _engines.get(resolved)
        if engine is None:
            engine = create_store_engine(resolved)
            if migrate:
                from db.migrate import upgrade

                try:
                    upgrade(engine)
                except BaseException:
                    engine.dispose()
                    raise
            _engines[resolved] = engine
    return engine


def dispose_engines() -> None:
    """Close every cached engine's connections (tests, and before a process forks)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None, *, engine: Engine | None = None, readonly: bool = False
                  ) -> Iterator[Session]:
    """Open a session: commit when the block succeeds, roll back when it raises.

    Args:
        url: the database URL (default: :func:`database_url`); ignored when ``engine`` is given.
        engine: an engine to use instead of the cached one for ``url``.
        readonly: a session that only reads. On SQLite it does not take the write lock, so a long
            read never holds up a writer; on PostgreSQL it reads one snapshot (REPEATABLE READ, read only), so
            what it reads in several statements belongs together. It is rolled back at the end, never committed.

    Example:
        >>> with session_scope() as session:  # doctest: +SKIP
        ...     sets = list_sets(session, dataset_id)
    """
    bind = engine if engine is not None else get_engine(url)
    if readonly:
        options: dict[str, Any] = {_READONLY: True}
        if bind.dialect.name == "postgresql":  # one snapshot for every read of the block (SQLite's WAL gives one)
            options |= {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        bind = bind.execution_options(**options)
    session = Session(bind, expire_on_commit=False)
    try:
        yield session
        if readonly:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
