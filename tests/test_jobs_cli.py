"""``cactus jobs`` on a real SQLite store, with a real worker process running what it queues."""

from __future__ import annotations

import json

import pytest

from cactus.cli import main
from cactus.data import write_sets
from db.session import dispose_engines
from tests.jobs_helpers import TEST_JOB_TYPES, sample_sets, start_worker


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CACTUS_JOB_TYPES", TEST_JOB_TYPES)
    yield f"sqlite:///{tmp_path / 'store.db'}"
    dispose_engines()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_submit_follow_show_retry_and_cancel(store, tmp_path, capsys):
    status, out, _ = cli(capsys, "jobs", "types")
    assert status == 0 and "finetune" in out and "test.steps" in out

    (tmp_path / "params.json").write_text(json.dumps({"steps": 3}))
    status, out, _ = cli(capsys, "jobs", "submit", "test.steps", "--params", f"@{tmp_path / 'params.json'}", "--db",
                         store)
    assert status == 0 and "queued job 1 (test.steps)" in out

    status, out, _ = cli(capsys, "jobs", "list", "--db", store)
    header, row = out.splitlines()
    assert header.split()[:4] == ["id", "type", "status", "progress"]
    assert row.split()[:4] == ["1", "test.steps", "queued", "0%"] and "queued: the next free worker takes it" in row

    worker = start_worker(store, tmp_path, "--exit-when-idle")
    status, out, _ = cli(capsys, "jobs", "wait", "1", "--db", store)
    assert worker.wait(60) == 0
    assert status == 0, out
    assert "job 1 succeeded: 100%" in out and json.loads(out.splitlines()[-1])["steps"] == 3

    status, out, _ = cli(capsys, "jobs", "show", "1", "--db", store)
    assert status == 0 and "status:           succeeded" in out and '"steps": 3' in out
    assert "step 2 done (attempt 1)" in out  # the log tail
    status, out, _ = cli(capsys, "jobs", "show", "1", "--json", "--db", store)
    shown = json.loads(out)
    assert (shown["status"], shown["progress"], shown["metrics"]["steps_done"]) == ("succeeded", 1.0, 3)

    status, out, _ = cli(capsys, "jobs", "retry", "1", "--db", store)
    assert status == 0 and "queued job 2 (test.steps), a re-run of job 1" in out
    status, out, _ = cli(capsys, "jobs", "cancel", "2", "--db", store)
    assert status == 0 and "job 2: cancelled" in out
    status, _, err = cli(capsys, "jobs", "cancel", "1", "--db", store)
    assert status == 2 and "job 1 has succeeded already" in err

    status, out, _ = cli(capsys, "jobs", "list", "--status", "cancelled", "--json", "--db", store)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [2]


def test_a_failing_job_makes_wait_fail_with_its_error(store, tmp_path, capsys):
    status, out, _ = cli(capsys, "jobs", "submit", "test.steps", "--params", '{"steps": 2, "fail_at": 1}',
                         "--max-attempts", "1", "--db", store)
    assert status == 0
    worker = start_worker(store, tmp_path, "--exit-when-idle")
    status, out, err = cli(capsys, "jobs", "wait", "1", "--db", store)
    assert worker.wait(60) == 0
    assert status == 1 and "job 1 failed" in err and "asked to fail at step 1" in err
    status, out, _ = cli(capsys, "jobs", "show", "1", "--db", store)
    assert "traceback:" in out and "ValueError: asked to fail at step 1" in out


def test_bad_submissions_are_messages_and_queue_nothing(store, tmp_path, capsys):
    write_sets(tmp_path / "sets.jsonl", sample_sets())
    assert main(["import-sets", str(tmp_path / "sets.jsonl"), "--dataset", "crafts", "--db", store]) == 0
    capsys.readouterr()
    cases = [
        (["test.steps", "--params", '{"steps": 0}'], "steps must be an integer from 1 to 10000, got 0"),
        (["test.steps", "--params", "{steps: 3}"], "--params is not valid JSON"),
        (["test.steps", "--params", "[3]"], "--params must be a JSON object"),
        (["test.steps", "--params", f"@{tmp_path / 'missing.json'}"], "cannot read the parameters file"),
        (["no.such.type"], "unknown job type 'no.such.type'; known: evaluate, finetune"),
        (["finetune", "--dataset", "nope"], "no dataset named 'nope'; known: crafts"),
        (["finetune", "--dataset", "crafts", "--params", '{"dataset_id": 7}'],
         "--dataset crafts is dataset 1, but --params names dataset_id 7"),
        (["finetune", "--dataset", "crafts", "--params", '{"train": {"epochs": "ten"}}'],
         "finetune: train: epochs must be an integer, got 'ten'"),
    ]
    for args, message in cases:
        status, _, err = cli(capsys, "jobs", "submit", *args, "--db", store)
        assert status == 2 and message in err, (args, err)
    status, out, _ = cli(capsys, "jobs", "list", "--db", store)
    assert status == 0 and out.strip() == "no jobs match"
    status, _, err = cli(capsys, "jobs", "list", "--status", "done", "--db", store)
    assert status == 2 and "unknown job status 'done'" in err
    status, _, err = cli(capsys, "jobs", "show", "9", "--db", store)
    assert status == 2 and "no job with id 9" in err
