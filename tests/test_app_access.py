"""Login and roles in the app, page by page (Streamlit's AppTest with a simulated signed-in user): the gate, the
"ask an admin" page, and the server-side refusals of each role's write paths. The real login, through a real
OpenID Connect provider in a browser, is tests/test_app_login_browser.py."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from db import add_user, edit_history, session_scope
from jobs.queue import list_jobs
from tests.app_helpers import APP_MAIN, RUN_TIMEOUT_S, assert_ok, seed_store, texts_of

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "c0ffee" * 8, "client_id": "cactus",
        "client_secret": "cactus-secret", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
TEACHER = "Ask the teacher for this set"


@pytest.fixture
def store(app_env, tmp_path, monkeypatch):
    """A store with the tiny dataset and three users; login required; an API key, so the teacher button is live."""
    monkeypatch.setenv("CACTUS_LOGIN", "required")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    seeded = seed_store(app_env, tmp_path / "ds")
    with session_scope(app_env) as session:
        add_user(session, "vic@example.org", "viewer")
        add_user(session, "ana@example.org", "annotator")
        add_user(session, "boss@example.org", "admin")
    return {"url": app_env, "set_id": seeded.set_ids[0]}


def open_as(user: dict[str, Any], page: str | None, set_id: int) -> AppTest:
    at = AppTest.from_file(str(APP_MAIN), default_timeout=RUN_TIMEOUT_S)
    at.secrets["auth"] = AUTH
    at.user.clear()
    at.user.update(user)
    at.query_params["set"] = str(set_id)
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert_ok(at)
    return at


def signed_in(email: str) -> dict[str, Any]:
    return {"is_logged_in": True, "email": email, "sub": f"sub-of-{email}"}


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert_ok(at)
    return at


def jobs(url: str) -> list:
    with session_scope(url, readonly=True) as session:
        return list_jobs(session)


def test_signed_out_visitors_see_only_the_login(store):
    for page in (None, "correct", "data", "train", "models"):
        at = open_as({"is_logged_in": False}, page, store["set_id"])
        assert [b.label for b in at.button] == ["Log in"]
        assert "Sign in to use the workbench." in texts_of(at)
        assert not at.title or [t.value for t in at.title] == ["cactus"]


def test_someone_the_store_does_not_know_is_sent_to_an_admin(store):
    at = open_as(signed_in("Stranger@Example.org"), "correct", store["set_id"])
    assert [t.value for t in at.title] == ["Ask an admin to add you"]
    assert "cactus users add stranger@example.org --role annotator" in texts_of(at)
    assert [b.label for b in at.button] == ["Log out"]


def test_a_viewer_reads_but_every_write_is_refused(store):
    url, set_id = store["url"], store["set_id"]
    at = open_as(signed_in("vic@example.org"), None, set_id)
    assert "Signed in as **vic@example.org** · viewer" in texts_of(at)
    click(at, TEACHER)
    assert "Asking the teacher needs the admin role, and vic@example.org has the viewer role" in texts_of(at)
    at = open_as(signed_in("vic@example.org"), "correct", set_id)
    assert "You can look, but correcting needs the annotator role and you are a viewer" in texts_of(at)
    click(at, "Every entity alone")
    assert "Correcting clusterings needs the annotator role" in texts_of(at)
    with session_scope(url, readonly=True) as session:
        assert edit_history(session, set_id) == []
    assert jobs(url) == []


def test_an_annotator_corrects_as_themselves_but_cannot_call_the_teacher(store):
    url, set_id = store["url"], store["set_id"]
    at = click(open_as(signed_in("ana@example.org"), "correct", set_id), "Every entity alone")
    assert "Started with every entity in a cluster of its own." in texts_of(at)
    assert not any(t.label.startswith("Your name") for t in at.text_input)  # no free-text author with login
    with session_scope(url, readonly=True) as session:
        assert [e.author for e in edit_history(session, set_id)] == ["ana@example.org"]
    at = click(open_as(signed_in("ana@example.org"), None, set_id), TEACHER)
    assert "Asking the teacher needs the admin role, and ana@example.org has the annotator role" in texts_of(at)
    assert jobs(url) == []


def test_an_admin_calls_the_teacher_and_is_the_jobs_author(store):
    at = click(open_as({"is_logged_in": True, "sub": "Boss@example.org"}, None, store["set_id"]), TEACHER)
    (job,) = jobs(store["url"])
    assert job.type == "label" and job.created_by == "boss@example.org"  # no email claim: the subject
    assert f"label job {job.id}" in texts_of(at)
