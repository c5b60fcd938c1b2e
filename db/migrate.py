"""Schema migrations with Alembic, run from code: a new database is created and upgraded on first use.

:func:`db.session.get_engine` calls :func:`upgrade` once per process and URL. The upgrade runs in one
transaction that holds a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so an app
and a worker that start at the same time on a new database do not both create the tables.

Writing a new revision (developers)::

    alembic -c db/alembic.ini revision --autogenerate -m "what changed"

then read and edit the file it writes under ``db/migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from db.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x63616374  # "cact": the advisory lock held while migrating


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the shipped migrations, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the installed code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no Alembic revisions under {MIGRATIONS}"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a new, empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest), creating it when empty.

    Raises:
        StoreError: the database was made by a newer cactus (an unknown revision), or cannot be reached.
    """
    head = head_revision()
    try:
        if revision == "head" and current_revision(engine) == head:
            return
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            command.upgrade(alembic_config(connection), revision)
    except CommandError as exc:
        raise StoreError(
            f"cannot upgrade the database at {engine.url.render_as_string(hide_password=True)}: {exc}. "
            "It was probably written by a newer version of cactus: upgrade cactus, or point CACTUS_DB_URL "
            "at another database") from None
