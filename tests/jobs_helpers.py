"""Shared fixtures of the store and job tests: a fresh database per test, on SQLite and on PostgreSQL.

:func:`store_database` makes either: ``sqlite`` (a real file under the test's tmp_path) or ``postgresql``
(a fresh schema in the server named by ``CACTUS_TEST_PG_URL``, e.g. from ``.ci/postgres.sh``). The
PostgreSQL case is skipped, with the reason shown by ``pytest -ra``, when the variable is unset or the
server cannot be reached.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cactus.data import Entity, EntitySet

PG_ENV = "CACTUS_TEST_PG_URL"


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


#: The databases every store test runs on; use as ``@pytest.fixture(params=DATABASES)``.
DATABASES = ("sqlite", "postgresql")


def store_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database (no tables yet): a SQLite file, or a fresh PostgreSQL schema.

    Use it in a test module as::

        @pytest.fixture(params=DATABASES)
        def store_url(request, tmp_path):
            yield from store_database(request.param, tmp_path)
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
