"""End to end in a real browser: `cactus app` (Streamlit and a worker) on a fresh store, driven by headless Debian
chromium through Playwright. Upload a sets file, let the teacher (a local fake of the Messages API) cluster it, open
Review and see the teacher's and the model's clusterings and the heatmap, move an entity and undo it (keyboard),
save, launch a tiny fine-tune and see it succeed, activate the new model. Screenshots of every step go to
``test-output/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cactus.training.checkpoint import read_card
from db import active_model, edit_history, find_dataset, get_set, list_models, list_sets, register_model, session_scope
from tests.app_helpers import free_port, tiny_sets_jsonl
from tests.browser_helpers import CHROMIUM, LAUNCH_ARGS, STEP_S, empty, read, require_chromium, running_app
from tests.fake_anthropic import FakeAnthropic

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "test-output" / "browser"
JOB_S = 240_000  # ms: a job from queue to "succeeded" (the tiny fine-tune, with the worker's torch import)


@pytest.fixture
def workbench(tmp_path: Path, tiny_model: Path, tiny_bert: Path) -> Iterator[dict]:
    """`cactus app` with its worker on a fresh store holding one active tiny model; the teacher is a local fake."""
    require_chromium()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    model_dir = tiny_model
    card = read_card(model_dir)
    with session_scope(url) as session:
        register_model(session, name="tiny-start", checkpoint=str(model_dir), backbone=card.backbone, mode=card.mode,
                       loss=card.loss, threshold=card.threshold, metrics={"test": card.test}, activate=True)
    port = free_port()
    with FakeAnthropic() as teacher:
        env = {**os.environ, "CACTUS_DB_URL": url, "XDG_DATA_HOME": str(tmp_path / "data"),
               "CACTUS_JOBS_DIR": str(tmp_path / "jobs"), "ANTHROPIC_API_KEY": "sk-ant-test",
               "ANTHROPIC_BASE_URL": teacher.url, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "CACTUS_AUTHOR": "browser"}
        env.pop("CACTUS_JOB_TYPES", None)
        try:
            with running_app(["--no-demo", "--address", "127.0.0.1"], env, port, tmp_path):
                yield {"url": url, "base": f"http://127.0.0.1:{port}", "tmp": tmp_path, "teacher": teacher,
                       "bert": tiny_bert}
        finally:
            if OUT.exists():  # the app's and the worker's output, beside the screenshots
                shutil.copy(tmp_path / "app.log", OUT / "app.log")


def test_upload_review_correct_train_and_activate(workbench):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    empty(OUT)
    url, base, tmp = workbench["url"], workbench["base"], workbench["tmp"]
    sets_file = tmp / "browser-sets.jsonl"
    sets_file.write_bytes(tiny_sets_jsonl(tmp / "ds"))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1700})
        page.set_default_timeout(STEP_S)
        expect.set_options(timeout=STEP_S)
        step = iter(range(1, 100))

        def scroll_to(at, attempts: int = 5) -> None:
            """Scroll ``at`` into view; a job monitor redraws its charts while polling, which can detach the element
            between finding and scrolling it, so a detached element is looked up again a few times."""
            for attempt in range(attempts):
                try:
                    at.scroll_into_view_if_needed()
                    return
                except PlaywrightError as exc:
                    if "not attached" not in str(exc) or attempt == attempts - 1:
                        raise
                    time.sleep(0.5)

        def shot(name: str, *, at=None) -> None:
            page.mouse.move(0, 0)  # no tooltip in the picture
            if at is not None:
                scroll_to(at)
            time.sleep(0.5)  # let charts finish drawing
            page.screenshot(path=str(OUT / f"{next(step):02d}-{name}.png"))

        def button(name: str):
            # a button with a keyboard shortcut is announced as "Save Shortcut S"
            return page.get_by_role("button", name=re.compile(rf"^{re.escape(name)}( Shortcut .*)?$"))

        def settle() -> None:
            """Wait until the app has finished the rerun that the last action started."""
            page.wait_for_timeout(300)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')")

        def type_into(label: str, text: str) -> None:
            field = page.get_by_label(label)
            field.fill(text)
            field.press("Enter")
            settle()
            expect(page.get_by_label(label)).to_have_value(text)

        def job_line(kind: str, status: str):
            """The headline of a job monitor, e.g. "finetune job 2 · (icon) succeeded · 13 s"."""
            return page.get_by_test_id("stMarkdownContainer").filter(
                has_text=re.compile(rf"^{kind} job \d+ · \w+ {status}\b"))

        def choose(label: str, option: str) -> None:
            page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True)).click()
            page.get_by_role("option", name=option).click()

        # 1. upload a small sets file on the Data page and save it as a dataset
        page.goto(f"{base}/data")
        expect(page.get_by_text("Choose a file to preview its sets")).to_be_visible()
        page.locator("input[type=file]").set_input_files(str(sets_file))
        expect(page.get_by_text("Preview of browser-sets.jsonl")).to_be_visible()
        shot("upload-preview")
        button("Save").click()
        expect(page.get_by_text(re.compile(r"Saved 24 sets"))).to_be_visible()
        dataset = read(url, lambda s: find_dataset(s, "browser-sets"))
        assert dataset.sets == 24

        # 2. the teacher clusters the new sets (a label job run by the worker against the fake Messages API)
        button("Ask the teacher to cluster them").click()
        expect(job_line("label", "succeeded")).to_be_visible(timeout=JOB_S)
        shot("teacher-labelled")
        assert read(url, lambda s: list_sets(s, dataset.id, has=["teacher"]).total) == 24
        assert workbench["teacher"].count >= 1

        # 3. Review the largest set: ask the active model, then see both clusterings and the heatmap
        largest = read(url, lambda s: list_sets(s, dataset.id, order="size", limit=1).items[0])
        page.goto(f"{base}/?dataset={dataset.id}&set={largest.id}")
        expect(page.get_by_text(f"Set {largest.name}", exact=True)).to_be_visible()
        button("Predict with the model").click()
        expect(page.get_by_text("CACTUS model: tiny-start")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Teacher \(LLM\): claude"))).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        expect(page.locator(".js-plotly-plot .heatmaplayer")).to_have_count(1)
        expect(page.get_by_text(re.compile(r"SIA embeddings give \d+ clusters"))).to_be_visible()
        shot("review")
        shot("review-heatmap", at=page.get_by_test_id("stPlotlyChart").first)
        page.get_by_role("radio", name="NIA", exact=True).click()
        expect(page.get_by_text("NIA: no inter-entity attention · outlined by the teacher's clusters")).to_be_visible()
        shot("review-nia", at=page.get_by_test_id("stPlotlyChart").first)

        # 4. Correct: start from the teacher, move one entity into a new cluster, undo it with the Z key, save
        page.get_by_role("link", name="Correct this set").click()
        button("Start from the teacher").click()
        expect(page.get_by_text("Started from the teacher's clustering.")).to_be_visible()
        choose("To", "➕ a new cluster")
        settle()
        type_into("Name of the new cluster", "Odd one")
        button("Move").click()
        expect(page.get_by_text(re.compile(r"^Moved '"))).to_be_visible()
        expect(page.locator(".cactus-card", has_text="Odd one")).to_have_count(1)
        shot("moved")
        assert button("Undo").get_attribute("disabled") is None
        page.locator("body").press("z")  # the Undo button's keyboard shortcut
        expect(page.get_by_text("Undone.")).to_be_visible()
        expect(page.locator(".cactus-card", has_text="Odd one")).to_have_count(0)
        shot("undone")
        button("Save").click()
        expect(page.get_by_text("Saved: the set is marked reviewed.")).to_be_visible()
        shot("saved")
        detail = read(url, lambda s: get_set(s, largest.id))
        assert detail.reviewed and detail.reviewed_by == "browser"
        assert detail.human.clusters == detail.teacher.clusters
        assert [e.action for e in read(url, lambda s: edit_history(s, largest.id))] == ["accept", "move", "undo"]

        # 5. Train: a tiny fine-tune from a local BERT folder, followed live until it succeeds
        page.get_by_role("link", name="Train").click()
        expect(page.get_by_text(re.compile(r"Training will use 24 labelled sets: 1 reviewed"))).to_be_visible()
        page.get_by_text("a local Hugging Face folder").click()
        settle()
        type_into("Folder of a BERT-family or T5 encoder", str(workbench["bert"]))
        type_into("Epochs", "2")
        page.get_by_text("More options").click()
        type_into("Model name (default: dataset, mode, loss and job)", "tiny from the browser")
        page.get_by_text("Make it the active model when done").click()
        settle()
        expect(page.get_by_role("checkbox", name="Make it the active model when done")).not_to_be_checked()
        launch = button("Launch training")
        # the theme of streamlit_config.toml is in force: primary buttons take its primaryColor (#0f766e)
        assert launch.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(15, 118, 110)"
        launch.click()
        expect(job_line("finetune", r"(queued|running)")).to_be_visible()
        shot("training")
        expect(job_line("finetune", "succeeded")).to_be_visible(timeout=JOB_S)
        expect(page.locator(".js-plotly-plot")).to_have_count(2)  # loss and validation charts
        shot("trained", at=page.locator(".js-plotly-plot").first)
        trained = read(url, lambda s: next(m for m in list_models(s) if m.name == "tiny from the browser"))
        assert not trained.active and trained.training["train_sets"] > 0

        # 6. Models: make the new model the active one
        page.get_by_role("link", name="Models").click()
        expect(page.get_by_text("This is the active model")).to_be_visible()
        choose("Model", "tiny from the browser")
        button("Make it the active model").click()
        expect(page.get_by_text("This is the active model")).to_be_visible()
        expect(page.get_by_text("tiny from the browser · SIA")).to_be_visible()
        shot("activated")
        assert read(url, active_model).name == "tiny from the browser"
        browser.close()


#: Streamlit's own probes when a page other than the first is loaded by its URL: the frontend first tries the page's
#: path as the app's base path (streamlit/streamlit#7074, open upstream), then the root, which answers.
UPSTREAM_PROBES = re.compile(r"^/(review|correct|data|train|models|evaluate)/_stcore/(health|host-config)$")


def test_every_page_loads_without_failed_or_outside_requests(workbench):
    from urllib.parse import urlparse

    from playwright.sync_api import sync_playwright

    base = workbench["base"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        outside, failed = [], []
        page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None)
                and not r.url.startswith("data:") and outside.append(r.url))
        # ERR_ABORTED: the browser dropping a load of our own that the next navigation made moot, not a failure
        page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED" and failed.append((r.url, r.failure)))
        page.on("response", lambda r: r.status >= 400 and failed.append((r.url, r.status)))
        for path in ("", "data", "correct", "train", "models", "evaluate"):
            page.goto(f"{base}/{path}")
            page.get_by_test_id("stSidebarNav").wait_for()
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')")
            page.wait_for_timeout(1500)
        for name in ("Data", "Train", "Models", "Evaluate", "Correct", "Review"):  # and through the sidebar
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
            page.wait_for_timeout(1500)
        browser.close()
    assert outside == []  # e.g. a :material/ favicon from fonts.gstatic.com
    unexpected = [(url, why) for url, why in failed if not UPSTREAM_PROBES.match(urlparse(url).path)]
    assert unexpected == []
