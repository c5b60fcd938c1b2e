"""Labelling through the Message Batches API: the real anthropic SDK against the local fake server.

What the server received is counted (``batch_submitted``), so "never sent twice" is checked, not assumed.
"""

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
from cactus.teacher import TeacherConfig, TeacherError, label_sets, summarize
from cactus.teacher.batches import BatchOptions, cancel_batches, label_sets_batched, plan_batches
from cactus.teacher.cache import ReplyCache
from tests.fake_anthropic import FakeAnthropic, error, expired, serve_fake, teacher_test_env

KEY = "sk-ant-test-batches-0123456789-SECRET"
REPO = Path(__file__).resolve().parents[1]
CLI = "import sys, cactus.cli as c; c.COMMANDS = ('label',); sys.exit(c.main(sys.argv[1:]))"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    teacher_test_env(monkeypatch, KEY)


@pytest.fixture
def server(monkeypatch):
    yield from serve_fake(monkeypatch)


def make_sets(n: int) -> list[EntitySet]:
    """Sets ``s0``.. with a ``#k`` tag on every text so their prompts differ (``#k`` ends a line)."""
    return [EntitySet(f"s{k}", [Entity(f"s{k}e{i}", t) for i, t in enumerate(
        [f"glue stick #{k}", f"tape roll #{k}", f"glue gun #{k}", f"tape dispenser #{k}"])]) for k in range(n)]


def label_cli(tmp_path: Path, *extra: str) -> list[str]:
    return ["label", str(tmp_path / "sets.jsonl"), "--out", str(tmp_path / "labelled.jsonl"), "--no-progress",
            "--batch", "--poll-interval", "0.01", "--max-poll-interval", "0.05", *extra]


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "labelled.jsonl.report.json").read_text())


def config_for(tmp_path: Path, server: FakeAnthropic, **overrides) -> TeacherConfig:
    return TeacherConfig(**{"base_url": server.url, "cache_path": tmp_path / "cache.sqlite", "max_retries": 0,
                            **overrides})


def options(**overrides) -> BatchOptions:
    return BatchOptions(**{"output": "out", "poll_interval": 0.0, "max_poll_interval": 0.01, **overrides})


def test_sets_go_through_one_batch_at_half_the_price(server, tmp_path, capsys):
    write_sets(tmp_path / "sets.jsonl", make_sets(5))
    assert cactus.cli.main(label_cli(tmp_path)) == 0
    assert (server.batches_created, server.batch_submitted, server.count) == (1, 5, 0)  # no request one by one
    assert len(read_sets(tmp_path / "labelled.jsonl", require_labels=True).sets) == 5
    summary = report(tmp_path)["summary"]
    assert (summary["batched"], summary["labelled"], summary["requests_billed"]) == (5, 5, 5)
    captured = capsys.readouterr()
    assert "5 sets through the Message Batches API (half price)" in captured.out
    assert "1 batch: 5 of 5 requests done (5 succeeded" in captured.err
    # the same sets one by one cost twice as much
    interactive = label_sets(make_sets(5), config_for(tmp_path / "one-by-one", server))
    one_by_one = summarize(interactive, config_for(tmp_path, server))["cost_usd"]
    assert one_by_one > 0 and summary["cost_usd"] == pytest.approx(one_by_one / 2, abs=2e-6)
    # a rerun pays nothing and sends nothing
    assert cactus.cli.main(label_cli(tmp_path)) == 0
    assert (server.batch_submitted, report(tmp_path)["summary"]["cached"]) == (5, 5)


def test_more_sets_than_a_batch_holds_go_into_several_batches(server, tmp_path):
    results = label_sets_batched(make_sets(7), config_for(tmp_path, server), options(max_requests=3))
    assert [r.status for r in results] == ["labelled"] * 7 and [r.set_id for r in results] == [f"s{k}" for k in
                                                                                               range(7)]
    sizes = sorted(len(b.custom_ids) for b in server.batches.values())
    assert sizes == [1, 3, 3] and server.batch_submitted == 7


def test_batches_are_cut_by_the_size_of_their_body_too(server, tmp_path):
    server.max_batch_bytes = 1200  # each request is about 370 bytes
    with pytest.raises(TeacherError, match="refused to create a batch"):  # one batch over the server's limit
        label_sets_batched(make_sets(7), config_for(tmp_path / "unbounded", server), options())
    results = label_sets_batched(make_sets(7), config_for(tmp_path, server), options(max_bytes=1200))
    assert [r.status for r in results] == ["labelled"] * 7
    sizes = [len(b.custom_ids) for b in server.batches.values()]
    assert len(sizes) >= 3 and sum(sizes) == 7 and server.batch_submitted == 7


def test_batch_plans_respect_both_limits_and_refuse_a_request_too_large_alone():
    assert plan_batches([10, 10, 10, 10, 10], max_requests=2, max_bytes=1000, overhead=0) == [
        range(0, 2), range(2, 4), range(4, 5)]
    assert plan_batches([40, 40, 40, 10], max_requests=10, max_bytes=90, overhead=5) == [
        range(0, 2), range(2, 4)]
    assert plan_batches([], max_requests=3, max_bytes=100) == []
    with pytest.raises(TeacherError, match="request 2 alone is 200 bytes"):
        plan_batches([10, 200], max_requests=3, max_bytes=100, overhead=0)


def test_errored_and_expired_requests_are_retried_in_a_new_batch(server, tmp_path):
    server.push_for("#1\n", error(529))
    server.push_for("#2\n", expired())
    results = label_sets_batched(make_sets(4), config_for(tmp_path, server), options())
    assert [r.status for r in results] == ["labelled"] * 4
    assert [r.batch_attempts for r in results] == [1, 2, 2, 1]
    assert server.batches_created == 2 and server.batch_requests_for("#1\n") == 2
    assert summarize(results, config_for(tmp_path, server))["batch_retried"] == 2


def test_retries_are_bounded_and_a_refused_request_is_not_retried(server, tmp_path):
    server.push_for("#1\n", error(500), error(500), error(500))
    server.push_for("#2\n", error(400, "prompt is too long"))
    results = label_sets_batched(make_sets(3), config_for(tmp_path, server), options(retries=1))
    assert [r.status for r in results] == ["labelled", "failed", "failed"]
    assert "gave up after 2 batches" in results[1].error and "api_error" in results[1].error
    assert "invalid_request_error: prompt is too long" in results[2].error and "gave up" not in results[2].error
    assert server.batch_requests_for("#1\n") == 2 and server.batch_requests_for("#2\n") == 1


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the labeller exited before {what}: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def recorded_batch_ids(cache: Path) -> list[str]:
    if not cache.exists():
        return []
    try:
        with sqlite3.connect(cache) as db:
            return [r[0] for r in db.execute("SELECT batch_id FROM batch_submissions WHERE batch_id IS NOT NULL")]
    except sqlite3.OperationalError:
        return []  # the tables are being created


def start_labeller(tmp_path: Path, server: FakeAnthropic, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}
    return subprocess.Popen([sys.executable, "-c", CLI, *label_cli(tmp_path, *extra)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def test_a_labeller_killed_mid_poll_resumes_the_same_batches_and_sends_nothing_twice(server, tmp_path):
    n = 8
    write_sets(tmp_path / "sets.jsonl", make_sets(n))
    server.batch_polls = 10**6  # the batches run until the test lets them end
    proc = start_labeller(tmp_path, server, "--batch-size", "5")
    cache = tmp_path / "teacher-cache.sqlite"
    wait_for(lambda: len(recorded_batch_ids(cache)) == 2 and server.batch_calls.count("retrieve") >= 4,
             "both batches to be recorded and polled", proc)
    kill(proc)
    assert not (tmp_path / "labelled.jsonl").exists()
    assert (server.batches_created, server.batch_submitted) == (2, n)
    server.batch_polls = 1
    assert cactus.cli.main(label_cli(tmp_path, "--batch-size", "5")) == 0
    assert (server.batches_created, server.batch_submitted, server.count) == (2, n, 0)  # zero duplicates
    assert len(read_sets(tmp_path / "labelled.jsonl", require_labels=True).sets) == n
    assert report(tmp_path)["summary"]["batched"] == n


def test_a_labeller_killed_while_create_was_in_flight_finds_its_batch_by_custom_id(server, tmp_path):
    n = 4
    write_sets(tmp_path / "sets.jsonl", make_sets(n))
    server.create_delay = 30.0  # the batch exists; its id never reaches the labeller
    proc = start_labeller(tmp_path, server)
    wait_for(lambda: server.batches_created == 1, "the batch to be created", proc)
    kill(proc)
    assert recorded_batch_ids(tmp_path / "teacher-cache.sqlite") == []
    server.create_delay = 0.0
    # someone else's batch of the same size, created meanwhile, is not taken for ours
    import anthropic

    anthropic.Anthropic(base_url=server.url, api_key=KEY).messages.batches.create(requests=[
        {"custom_id": f"other-{k}", "params": {"model": "m", "max_tokens": 9,
                                               "messages": [{"role": "user", "content": f"x\nnot ours {k}\ny"}]}}
        for k in range(n)])
    assert cactus.cli.main(label_cli(tmp_path)) == 0
    assert "list" in server.batch_calls
    assert server.batches_created == 2 and server.batch_submitted == 2 * n  # ours once, plus the other one
    assert recorded_batch_ids(tmp_path / "teacher-cache.sqlite") == ["msgbatch_fake_0000"]
    assert len(read_sets(tmp_path / "labelled.jsonl", require_labels=True).sets) == n


def test_a_submission_whose_create_never_arrived_is_sent_again(server, tmp_path):
    config = config_for(tmp_path, server)
    sets = make_sets(2)
    from cactus.teacher import build_prompt
    from cactus.teacher.cache import cache_key

    with ReplyCache(config.cache_path) as cache:  # recorded, then the process died before create
        cache.begin_submission("cdead", output="out", model=config.model, max_tokens=config.max_tokens,
                               requests=[("cdead-0", cache_key(config.model, build_prompt(sets[0].texts)), 1)])
    results = label_sets_batched(sets, config, options())
    assert [r.status for r in results] == ["labelled", "labelled"]
    assert server.batch_submitted == 2 and server.batches_created == 1
    with ReplyCache(config.cache_path) as cache:
        assert [s.token for s in cache.open_submissions()] == []


def test_cancel_stops_the_open_batches_and_a_rerun_collects_what_they_finished(server, tmp_path, capsys):
    write_sets(tmp_path / "sets.jsonl", make_sets(4))
    out = str((tmp_path / "labelled.jsonl").resolve())
    server.batch_polls = 4  # after 2 polls, half the requests are done

    config = TeacherConfig(base_url=server.url, cache_path=tmp_path / "teacher-cache.sqlite")
    polls = 0

    def interrupt_after_two_polls(counts) -> None:
        nonlocal polls
        polls += 1
        if polls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_sets_batched(make_sets(4), config, options(output=out), on_batch_progress=interrupt_after_two_polls)
    assert cactus.cli.main(label_cli(tmp_path, "--cancel")) == 0
    assert "cancelled 1 batch(es)" in capsys.readouterr().out and "cancel" in server.batch_calls
    assert cancel_batches(config, "another output") == []
    assert cactus.cli.main(label_cli(tmp_path)) == 1  # the canceled requests failed; the rest is labelled
    summary = report(tmp_path)["summary"]
    assert (summary["labelled"], summary["failed"], server.batch_submitted) == (2, 2, 4)
    assert all("canceled in batch" in row["error"] for row in report(tmp_path)["not_labelled"])
    assert cactus.cli.main(label_cli(tmp_path)) == 0  # a further run sends the canceled ones again
    assert server.batch_submitted == 6 and report(tmp_path)["summary"]["labelled"] == 4
    assert cactus.cli.main(label_cli(tmp_path, "--cancel")) == 0
    assert "no open batches" in capsys.readouterr().out


def test_batches_need_the_cache_and_take_no_budget(server, tmp_path, capsys):
    write_sets(tmp_path / "sets.jsonl", make_sets(2))
    assert cactus.cli.main(label_cli(tmp_path, "--no-cache")) == 2
    assert "needs the reply cache" in capsys.readouterr().err
    assert cactus.cli.main(label_cli(tmp_path, "--budget-tokens", "100")) == 2
    assert "budgets apply to interactive labelling only" in capsys.readouterr().err
    assert server.batch_submitted == 0


def test_a_refused_batch_says_what_to_check_and_records_nothing(server, tmp_path):
    server.push_create(error(401, "invalid x-api-key"))
    config = config_for(tmp_path, server)
    with pytest.raises(TeacherError, match="refused to create a batch of 2 requests \\(401"):
        label_sets_batched(make_sets(2), config, options())
    with ReplyCache(config.cache_path) as cache:
        assert cache.open_submissions() == []


def test_a_run_stopped_while_collecting_results_reads_the_rest_again_without_sending(server, tmp_path, monkeypatch):
    import cactus.teacher.batches as batches

    monkeypatch.setattr(batches, "STORE_CHUNK", 2)
    config = config_for(tmp_path, server)

    def stop_after_three(done: int, total: int, result) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_sets_batched(make_sets(6), config, options(), on_progress=stop_after_three)
    results = label_sets_batched(make_sets(6), config, options())
    assert [r.status for r in results] == ["labelled"] * 6 and all(r.batch for r in results)
    assert sum(r.cached for r in results) >= 2  # the first chunk was stored before it was parsed
    assert (server.batch_submitted, server.batches_created) == (6, 1)


def test_polls_back_off_and_each_prints_the_request_counts(server, tmp_path):
    server.batch_polls = 5
    waits: list[float] = []
    lines: list[str] = []
    results = label_sets_batched(make_sets(5), config_for(tmp_path, server),
                                 options(poll_interval=1.0, max_poll_interval=2.0),
                                 on_batch_progress=lambda counts: lines.append(counts.line()), sleep=waits.append)
    assert [r.status for r in results] == ["labelled"] * 5
    assert waits == [1.0, 1.5, 2.0, 2.0]
    assert lines[0] == "1 batch: 1 of 5 requests done (1 succeeded, 0 errored, 0 expired, 0 canceled); next poll in 1 s"
    assert lines[-1] == "1 batch: 5 of 5 requests done (5 succeeded, 0 errored, 0 expired, 0 canceled)"


def test_an_endpoint_failing_while_polling_says_the_batches_are_kept(server, tmp_path):
    server.batch_polls = 10**6
    config = config_for(tmp_path, server)

    def endpoint_fails(counts) -> None:
        server.batch_reads_fail = error(503, "down for maintenance")

    with pytest.raises(TeacherError, match=r"down for maintenance.*rerun the same command to go on polling them"):
        label_sets_batched(make_sets(2), config, options(), on_batch_progress=endpoint_fails)
    with ReplyCache(config.cache_path) as cache:
        assert [s.batch_id for s in cache.open_submissions()] == ["msgbatch_fake_0000"]


def test_an_overloaded_create_is_tried_again_and_a_server_error_is_looked_up_first(server, tmp_path):
    server.push_create(error(529), error(500))
    waits: list[float] = []
    results = label_sets_batched(make_sets(3), config_for(tmp_path, server, max_retries=3), options(),
                                 sleep=waits.append)
    assert [r.status for r in results] == ["labelled"] * 3 and [r.batch_attempts for r in results] == [1, 1, 1]
    assert (server.batches_created, server.batch_submitted) == (1, 3)
    assert waits[0] == 2.0 and "list" in server.batch_calls  # after the 500: was it created after all?
