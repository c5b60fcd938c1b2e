"""``cactus label`` end to end: files in, labelled files and a report out, against a local Messages API."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cactus.cli
from cactus.data import Entity, EntitySet, read_sets, write_sets
from tests.fake_anthropic import FakeAnthropic, cluster_by_first_word, error, serve_fake, slow, teacher_test_env, text

KEY = "sk-ant-test-cli-0123456789-SECRET"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def env(monkeypatch):
    teacher_test_env(monkeypatch, KEY)


@pytest.fixture
def server(monkeypatch):
    yield from serve_fake(monkeypatch)


def write_input(path: Path, n: int) -> Path:
    sets = [
        EntitySet(f"s{k}", [Entity(f"s{k}e{i}", t) for i, t in enumerate(
            [f"glue stick #{k}", f"tape roll #{k}", f"glue gun #{k}", f"tape dispenser #{k}"])],
            extra={"source": "test"})
        for k in range(n)
    ]
    write_sets(path, sets)
    return path


def test_label_command_is_registered():
    import importlib

    importlib.reload(importlib.import_module("cactus.cli"))  # the real registry, not the patched one
    assert "label" in importlib.import_module("cactus.cli").COMMANDS


def test_label_writes_labelled_sets_a_report_and_a_summary(server, tmp_path, capsys):
    sets = write_input(tmp_path / "sets.jsonl", 3)
    out = tmp_path / "out" / "labelled.jsonl"
    server.push_for("#2", text("I cannot do that."))
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress"]) == 0
    labelled = read_sets(out, require_labels=True).sets
    assert [s.id for s in labelled] == ["s0", "s1"]
    assert labelled[0].cluster_names == ["Glue items", "Tape items"]
    assert labelled[0].extra["source"] == "test" and labelled[0].extra["teacher"]["model"] == "claude-sonnet-4-6"
    report = json.loads((tmp_path / "out" / "labelled.jsonl.report.json").read_text())
    assert report["summary"]["labelled"] == 2 and report["summary"]["discarded"] == 1
    assert report["summary"]["requests_billed"] == 3 and report["summary"]["cost_usd"] > 0
    (discarded,) = report["not_labelled"]
    assert discarded["set_id"] == "s2" and discarded["raw_reply"] == "I cannot do that."
    assert report["settings"]["endpoint"] == server.url
    assert (tmp_path / "out" / "teacher-cache.sqlite").is_file()  # default: beside the output
    stdout = capsys.readouterr().out
    assert "2 of 3 sets labelled by claude-sonnet-4-6" in stdout and "1 discarded" in stdout
    assert "(estimate)" in stdout


def test_a_rerun_reads_the_cache_and_pays_nothing(server, tmp_path, capsys):
    sets = write_input(tmp_path / "sets.jsonl", 3)
    out = tmp_path / "labelled.jsonl"
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress"]) == 0
    first = out.read_text()
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress"]) == 0
    assert server.count == 3 and out.read_text() == first
    assert "this run: 0 requests" in capsys.readouterr().out


def test_without_a_key_label_fails_fast_and_says_how_to_set_it(server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    sets = write_input(tmp_path / "sets.jsonl", 2)
    out = tmp_path / "labelled.jsonl"
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: 2 set(s) need new labels" in err and "export ANTHROPIC_API_KEY" in err
    assert "works on stored labels" in err
    assert not out.exists() and server.count == 0


def test_the_key_is_in_no_file_written(server, tmp_path):
    sets = write_input(tmp_path / "sets.jsonl", 3)
    server.push_for("#1", *[error(500)] * 5)
    out = tmp_path / "labelled.jsonl"
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress", "--max-retries", "1"]) == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"labelled.jsonl", "labelled.jsonl.report.json", "teacher-cache.sqlite"}
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path


def test_a_failed_set_gives_exit_status_1_and_is_listed(server, tmp_path, capsys):
    sets = write_input(tmp_path / "sets.jsonl", 3)
    server.push_for("#1", *[error(529)] * 2)
    out = tmp_path / "labelled.jsonl"
    report_path = tmp_path / "report.json"
    code = cactus.cli.main(["label", str(sets), "--out", str(out), "--report", str(report_path), "--no-progress",
                            "--max-retries", "1"])
    assert code == 1
    assert [s.id for s in read_sets(out).sets] == ["s0", "s2"]
    (failed,) = json.loads(report_path.read_text())["not_labelled"]
    assert failed["set_id"] == "s1" and failed["status"] == "failed" and "overloaded" in failed["error"]
    assert "1 sets failed" in capsys.readouterr().err


def test_a_budget_stop_lists_the_sets_not_sent(server, tmp_path, capsys):
    from dataclasses import replace

    server.respond_with(lambda prompt, body: replace(cluster_by_first_word(prompt), input_tokens=60,
                                                     output_tokens=40))
    sets = write_input(tmp_path / "sets.jsonl", 4)
    out = tmp_path / "labelled.jsonl"
    code = cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress", "--concurrency", "1",
                            "--budget-tokens", "150"])
    assert code == 0 and server.count == 2
    report = json.loads((tmp_path / "labelled.jsonl.report.json").read_text())
    assert [r["set_id"] for r in report["not_labelled"]] == ["s2", "s3"]
    assert all(r["status"] == "skipped_budget" for r in report["not_labelled"])
    assert "budget reached: 2 sets not sent" in capsys.readouterr().err


def test_options_reach_the_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CACTUS_CACHE_DIR", str(tmp_path / "cache-dir"))
    sets = write_input(tmp_path / "sets.jsonl", 1)
    code = cactus.cli.main(["label", str(sets), "--out", str(tmp_path / "o.jsonl"), "--no-progress",
                            "--model", "claude-haiku-4-5", "--max-tokens", "999", "--noun", "queries",
                            "--temperature", "0"])
    assert code == 0
    body = server.requests[0].body
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("claude-haiku-4-5", 999, 0.0)
    assert body["messages"][0]["content"].startswith("Cluster these queries:")
    assert (tmp_path / "cache-dir" / "teacher-cache.sqlite").is_file()


def test_base_url_option_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    sets = write_input(tmp_path / "sets.jsonl", 1)
    with FakeAnthropic() as server:
        code = cactus.cli.main(["label", str(sets), "--out", str(tmp_path / "o.jsonl"), "--no-progress",
                                "--base-url", server.url, "--no-cache"])
        assert code == 0 and server.count == 1
    assert not (tmp_path / "teacher-cache.sqlite").exists()


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        (["--out", "{sets}"], "is the input file"),
        (["--out", "{tmp}/o.jsonl", "--budget-usd", "1", "--model", "my-own-model"], "--price-in"),
        (["--out", "{tmp}/o.jsonl", "--cache", "{tmp}/c.sqlite", "--no-cache"], "contradict"),
        (["--out", "{tmp}/o.jsonl", "--concurrency", "0"], "concurrency must be at least 1"),
    ],
)
def test_bad_options_are_refused_with_a_message(tmp_path, capsys, extra_args, message):
    sets = write_input(tmp_path / "sets.jsonl", 1)
    args = [a.format(sets=sets, tmp=tmp_path) for a in extra_args]
    assert cactus.cli.main(["label", str(sets), *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_invalid_input_lines_stop_the_run_or_are_reported(server, tmp_path, capsys):
    sets = write_input(tmp_path / "sets.jsonl", 2)
    with sets.open("a") as handle:
        handle.write('{"id": "bad", "entities": [{"id": "x", "text": "only one"}]}\n')
    out = tmp_path / "labelled.jsonl"
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress"]) == 2
    assert "sets.jsonl:3" in capsys.readouterr().err and server.count == 0
    assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress", "--skip-invalid"]) == 0
    report = json.loads((tmp_path / "labelled.jsonl.report.json").read_text())
    assert len(report["skipped_input_lines"]) == 1 and "at least 2 entities" in report["skipped_input_lines"][0]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_killed_run_resumes_without_paying_twice_for_what_it_cached(tmp_path, monkeypatch, concurrency):
    """kill -9 mid-run: every reply that arrived is in the cache (written before it is parsed); only requests
    still in flight are sent again."""
    n = 6
    sets = write_input(tmp_path / "sets.jsonl", n)
    out = tmp_path / "labelled.jsonl"
    cache = tmp_path / "teacher-cache.sqlite"
    with FakeAnthropic(lambda prompt, body: slow(0.25, cluster_by_first_word(prompt))) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}
        code = "import sys, cactus.cli as c; c.COMMANDS = ('label',); sys.exit(c.main(sys.argv[1:]))"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "label", str(sets), "--out", str(out), "--no-progress",
             "--concurrency", str(concurrency)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        cached = 0
        while time.monotonic() < deadline and cached < 2 and proc.poll() is None:
            time.sleep(0.02)
            if cache.exists():
                try:
                    with sqlite3.connect(cache) as db:
                        cached = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
                except sqlite3.OperationalError:
                    pass  # the table is being created
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        assert not out.exists()  # no half-written output
        with sqlite3.connect(cache) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            cached = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        assert 2 <= cached < n
        sent_before = server.count
        answered = set(server.prompts[:sent_before])
        assert cactus.cli.main(["label", str(sets), "--out", str(out), "--no-progress", "--concurrency", "1"]) == 0
        assert server.count - sent_before == n - cached  # only the prompts with no cached reply
        assert len(answered) <= cached + concurrency  # what was re-sent had been in flight at the kill
    assert len(read_sets(out, require_labels=True).sets) == n
