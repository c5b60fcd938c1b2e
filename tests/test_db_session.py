"""Engines, sessions and migrations: default location, SQLite settings, first use creates the schema."""

from __future__ import annotations

import subprocess
import sys

import pytest
from setuptools import find_packages
from sqlalchemy import select, text

from db.errors import StoreError
from db.migrate import MIGRATIONS, current_revision, head_revision
from db.models import DatasetRow
from db.session import (
    create_store_engine,
    database_url,
    default_database_path,
    dispose_engines,
    get_engine,
    session_scope,
)


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    dispose_engines()


def test_default_database_lives_in_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("CACTUS_DB_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_database_path() == tmp_path / "data" / "cactus" / "cactus.db"
    assert database_url() == f"sqlite:///{tmp_path}/data/cactus/cactus.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_database_path() == tmp_path / "home" / ".local" / "share" / "cactus" / "cactus.db"
    monkeypatch.setenv("CACTUS_DB_URL", "postgresql+psycopg://u:p@h/db")
    assert database_url() == "postgresql+psycopg://u:p@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_first_session_creates_the_file_and_schema(monkeypatch, tmp_path):
    monkeypatch.delenv("CACTUS_DB_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with session_scope() as session:
        session.add(DatasetRow(name="d", noun="queries"))
    assert (tmp_path / "cactus" / "cactus.db").is_file()
    engine = get_engine()
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with session_scope(readonly=True) as session:
        assert session.scalars(select(DatasetRow.name)).all() == ["d"]


def test_session_scope_rolls_back_on_error(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(RuntimeError), session_scope(url) as session:
        session.add(DatasetRow(name="lost", noun="queries"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(url) as session:
        assert session.scalars(select(DatasetRow)).all() == []
    with session_scope(url, readonly=True) as session:  # a read-only session never commits
        session.add(DatasetRow(name="not kept", noun="queries"))
        session.flush()
    with session_scope(url) as session:
        assert session.scalars(select(DatasetRow)).all() == []


def test_bad_urls_and_newer_databases_get_a_readable_error(tmp_path):
    with pytest.raises(StoreError, match="cannot parse the database URL"):
        create_store_engine("not a url")
    url = f"sqlite:///{tmp_path / 'future.db'}"
    get_engine(url)
    dispose_engines()
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'fffffff'"))
    engine.dispose()
    with pytest.raises(StoreError, match="written by a newer version of cactus"):
        get_engine(url)


def test_two_processes_starting_on_a_new_database_both_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = ("import sys; from db.session import get_engine; from db.migrate import current_revision; "
            "print(current_revision(get_engine(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {head_revision()}


def test_migrations_ship_inside_the_package():
    packages = find_packages(where=str(MIGRATIONS.parents[1]), include=["cactus*", "db*", "jobs*", "app*"])
    assert {"db", "db.migrations", "db.migrations.versions"} <= set(packages)
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
