"""Fixtures shared by several test modules, defined once so a session-scoped one is built once per run.

``store_url``: an empty store, once on SQLite and once on PostgreSQL (see :func:`tests.jobs_helpers.store_database`).
``app_env``: a fresh store and environment for the app under test (see :func:`tests.app_helpers.fresh_app_store`).
``tiny_model`` / ``tiny_bert``: a tiny trained model folder and a tiny random BERT folder, made once per session.
``oidc_provider``: a real OpenID Connect provider (``oidc-provider-mock``) on a local port, started once per session.
``job_types_for_tests``: the job queue also knows the ``test.steps`` job type (modules use it through ``pytestmark``).
``workers``: worker processes a test starts; any still running, or frozen, at its end are killed.
Imports happen inside the fixtures, so test modules that use none of them load neither Streamlit nor the store.
"""

from __future__ import annotations

import pytest

from tests.jobs_helpers import DATABASES


@pytest.fixture(params=DATABASES)
def store_url(request, tmp_path):
    from tests.jobs_helpers import store_database

    yield from store_database(request.param, tmp_path)


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    from tests.app_helpers import fresh_app_store

    yield from fresh_app_store(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tests.app_helpers import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    from tests.tiny_backbones import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "bert")


@pytest.fixture(scope="session")
def oidc_provider():
    """The base URL of a local OpenID Connect provider: its form signs in whoever's subject (email) is typed."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0) as server:  # stops (and frees its port) when the session ends
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def job_types_for_tests(monkeypatch):
    from jobs.types import PLUGINS_ENV

    monkeypatch.setenv(PLUGINS_ENV, "tests.jobs_helpers_types")


@pytest.fixture
def workers():
    started: list = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
