"""Login end to end in a real browser: `cactus app` with an [auth] secrets file signs people in through a real
OpenID Connect provider (oidc-provider-mock, started once per test session). A viewer can look but every change
and job launch is refused on the server; an annotator corrects and saves, and the edit log names them; someone the
store does not know is asked to get an admin to add them. Screenshots go to ``test-output/browser-login/``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from db import add_user, edit_history, get_set, session_scope
from jobs.queue import list_jobs
from tests.app_helpers import free_port, seed_store
from tests.browser_helpers import CHROMIUM, LAUNCH_ARGS, STEP_S, empty, read, require_chromium, running_app

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "test-output" / "browser-login"


def secrets_toml(port: int, provider: str) -> str:
    """An [auth] section for the app on ``port`` against the provider (which accepts any client id and secret)."""
    return (f'[auth]\nredirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{"c0ffee" * 8}"\nclient_id = "cactus"\nclient_secret = "cactus-secret"\n'
            f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')


@pytest.fixture
def workbench(tmp_path: Path, oidc_provider: str) -> Iterator[dict]:
    """`cactus app` with login on a store with the tiny dataset, an annotator and a viewer."""
    require_chromium()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    seeded = seed_store(url, tmp_path / "ds", predict=False)
    with session_scope(url) as session:
        add_user(session, "ana@example.org", "annotator")
        add_user(session, "vic@example.org", "viewer")
    port = free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(secrets_toml(port, oidc_provider))
    env = {**os.environ, "CACTUS_DB_URL": url, "XDG_DATA_HOME": str(tmp_path / "data"),
           "CACTUS_JOBS_DIR": str(tmp_path / "jobs"), "ANTHROPIC_API_KEY": "sk-ant-test",
           "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "CACTUS_AUTHOR": "not-the-signed-in-user", "CACTUS_ADMIN": "boss@example.org"}
    env.pop("CACTUS_JOB_TYPES", None)
    # no worker: a job that got through would stay queued, where the test sees it
    with running_app(["--no-demo", "--no-worker", "--secrets", str(secrets)], env, port, tmp_path) as log:
        yield {"url": url, "base": f"http://localhost:{port}", "seeded": seeded, "log": log}


def test_viewer_is_refused_annotator_saves_and_is_named(workbench):
    from playwright.sync_api import expect, sync_playwright

    empty(OUT)
    url, base, seeded = workbench["url"], workbench["base"], workbench["seeded"]
    set_id = seeded.set_ids[0]
    correct = f"{base}/correct?dataset={seeded.dataset_id}&set={set_id}"
    review = f"{base}/?dataset={seeded.dataset_id}&set={set_id}"
    assert "login is on; admins: boss@example.org" in workbench["log"].read_text()  # CACTUS_ADMIN

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        expect.set_options(timeout=STEP_S)
        step = iter(range(1, 100))

        def settle(page) -> None:
            page.wait_for_timeout(300)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')")

        def shot(page, name: str) -> None:
            time.sleep(0.5)
            page.screenshot(path=str(OUT / f"{next(step):02d}-{name}.png"))

        def open_review(page) -> None:
            page.goto(review)
            expect(page.get_by_role("heading", name="Review")).to_be_visible()
            settle(page)
            shot(page, "review")

        def sign_in(email: str):
            """A fresh browser (no cookies) signed in as ``email`` through the provider's form."""
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            page = context.new_page()
            page.set_default_timeout(STEP_S)
            page.goto(correct)
            expect(page.get_by_text("Sign in to use the workbench.")).to_be_visible()
            expect(page.get_by_role("button", name="Correct")).to_have_count(0)  # no page behind the gate
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/"))  # the provider's authorization form
            page.locator("input[name=sub]").fill(email)
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_url(re.compile(rf"^{re.escape(base)}/"))
            expect(page.get_by_text(re.compile(rf"Signed in as {re.escape(email)}"))).to_be_visible()
            return context, page

        # someone the store does not know gets in nowhere, and is told whom to ask
        stranger = browser.new_context()
        page = stranger.new_page()
        page.set_default_timeout(STEP_S)
        page.goto(base)
        page.get_by_role("button", name="Log in").click()
        page.locator("input[name=sub]").fill("stranger@example.org")
        page.get_by_role("button", name="Authorize").click()
        expect(page.get_by_role("heading", name="Ask an admin to add you")).to_be_visible()
        expect(page.get_by_text("cactus users add stranger@example.org --role annotator")).to_be_visible()
        shot(page, "unknown-user")
        stranger.close()

        # the viewer sees the set, but starting a clustering and asking the teacher are refused
        context, page = sign_in("vic@example.org")
        page.goto(correct)
        expect(page.get_by_role("heading", name=re.compile(r"^Set "))).to_be_visible()
        page.get_by_role("button", name="Every entity alone").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Correcting clusterings needs the annotator role, and vic@example\.org "
                                           r"has the viewer role"))).to_be_visible()
        shot(page, "viewer-refused-edit")
        open_review(page)
        page.get_by_role("button", name="Ask the teacher for this set").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Asking the teacher needs the admin role"))).to_be_visible()
        shot(page, "viewer-refused-teacher")
        context.close()
        assert read(url, lambda s: edit_history(s, set_id)) == []
        assert read(url, list_jobs) == []

        # the annotator corrects and saves; the edit log and the review mark name them
        context, page = sign_in("ana@example.org")
        page.goto(correct)
        page.get_by_role("button", name="Every entity alone").click()
        settle(page)
        expect(page.get_by_text("Your clustering")).to_be_visible()
        page.get_by_role("button", name=re.compile(r"^Save( Shortcut .*)?$")).click()
        settle(page)
        expect(page.get_by_text("Saved: the set is marked reviewed.")).to_be_visible()
        shot(page, "annotator-saved")
        open_review(page)
        page.get_by_role("button", name="Ask the teacher for this set").click()  # teacher calls are the admin's
        settle(page)
        expect(page.get_by_text(re.compile(r"Asking the teacher needs the admin role, and ana@example\.org has the "
                                           r"annotator role"))).to_be_visible()
        context.close()
        browser.close()

    history = read(url, lambda s: edit_history(s, set_id))
    assert [(e.action, e.author) for e in history] == [("accept", "ana@example.org")]
    detail = read(url, lambda s: get_set(s, set_id))
    assert detail.reviewed and detail.reviewed_by == "ana@example.org"
    assert read(url, list_jobs) == []
