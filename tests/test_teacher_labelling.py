"""Batch labelling through the real anthropic SDK against a local Messages API server."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from cactus.data import Entity, EntitySet
from cactus.teacher import (
    MissingAPIKeyError,
    TeacherConfig,
    TeacherError,
    build_prompt,
    label_sets,
    summarize,
)
from tests.fake_anthropic import FakeAnthropic, cluster_by_first_word, empty_content, error, malformed, slow, text

KEY = "sk-ant-test-0123456789-SECRET"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "CACTUS_TEACHER_MODEL", "CACTUS_CACHE_DIR", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never the real API from a test


@pytest.fixture
def server():
    with FakeAnthropic() as fake:
        yield fake


def make_set(k: int, extra: int = 0) -> EntitySet:
    """Set ``s{k}``: two glue and two tape products (plus ``extra`` pens), tagged #k so prompts differ."""
    texts = [f"glue stick #{k}", f"tape roll #{k}", f"glue gun #{k}", f"tape dispenser #{k}"]
    texts += [f"pen model {j} #{k}" for j in range(extra)]
    return EntitySet(f"s{k}", [Entity(f"s{k}e{i}", t) for i, t in enumerate(texts)])


def config_for(server: FakeAnthropic, tmp_path: Path, **overrides) -> TeacherConfig:
    settings = dict(base_url=server.url, cache_path=tmp_path / "cache.sqlite", concurrency=2, max_retries=2,
                    timeout=5.0)
    settings.update(overrides)
    return TeacherConfig(**settings)


def test_sets_are_labelled_with_the_papers_prompt(server, tmp_path):
    sets = [make_set(k) for k in range(3)]
    seen = []
    results = label_sets(sets, config_for(server, tmp_path), api_key=KEY,
                         on_progress=lambda done, total, r: seen.append((done, total, r.set_id)))
    assert [r.status for r in results] == ["labelled"] * 3
    assert [r.set_id for r in results] == ["s0", "s1", "s2"]
    first = results[0].labelled
    assert first.clusters == [[0, 2], [1, 3]] and first.cluster_names == ["Glue items", "Tape items"]
    assert first.extra["teacher"] == {"model": "claude-sonnet-4-6", "dropped_entity_ids": [], "invented": 0}
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert server.count == 3
    body = server.requests[0].body
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 8192
    assert "temperature" not in body  # the SDK's API version rejects sampling parameters
    assert sorted(server.prompts) == sorted(build_prompt(s.texts) for s in sets)
    assert server.keys_seen == {KEY}
    r = results[0]
    assert r.input_tokens > 0 and r.output_tokens > 0 and not r.cached
    assert r.cost_usd == pytest.approx((r.input_tokens * 3 + r.output_tokens * 15) / 1e6)


def test_temperature_and_noun_reach_the_request(server, tmp_path):
    label_sets([make_set(0)], config_for(server, tmp_path, temperature=0.0, noun="queries"), api_key=KEY)
    body = server.requests[0].body
    assert body["temperature"] == 0.0
    assert body["messages"][0]["content"].startswith("Cluster these queries:\nglue stick #0")


@pytest.mark.parametrize("status", [429, 500, 529])
def test_a_transient_error_is_retried_by_the_sdk(server, tmp_path, status):
    server.push_for("#1", error(status))
    results = label_sets([make_set(0), make_set(1)], config_for(server, tmp_path), api_key=KEY)
    assert [r.status for r in results] == ["labelled", "labelled"]
    assert server.requests_for("#1") == 2
    assert server.requests_for("#0") == 1


def test_a_failing_set_is_recorded_and_the_others_go_on(server, tmp_path):
    server.push_for("#1", *[error(500)] * 3)  # max_retries=2: three tries
    results = label_sets([make_set(k) for k in range(4)], config_for(server, tmp_path), api_key=KEY)
    assert [r.status for r in results] == ["labelled", "failed", "labelled", "labelled"]
    failed = results[1]
    assert failed.set_id == "s1" and failed.labelled is None and failed.raw_reply is None
    assert "set 's1'" in failed.error and "500" in failed.error and "rerun later" in failed.error
    assert server.requests_for("#1") == 3
    assert summarize(results, config_for(server, tmp_path))["failed"] == 1


def test_rate_limits_that_outlast_the_retries_say_what_to_do(server, tmp_path):
    server.push_for("#0", *[error(429)] * 3)
    (result,) = label_sets([make_set(0)], config_for(server, tmp_path), api_key=KEY)
    assert result.status == "failed"
    assert "rate limited after 2 retries" in result.error and "--concurrency" in result.error


def test_malformed_json_fails_that_set_only(server, tmp_path):
    server.push_for("#0", malformed())
    results = label_sets([make_set(0), make_set(1)], config_for(server, tmp_path), api_key=KEY)
    assert [r.status for r in results] == ["failed", "labelled"]
    assert "not a Messages API reply" in results[0].error


def test_a_reply_slower_than_the_timeout_is_retried_then_failed(server, tmp_path):
    server.push_for("#0", slow(2.0), slow(2.0))
    config = config_for(server, tmp_path, timeout=0.3, max_retries=1)
    results = label_sets([make_set(0), make_set(1)], config, api_key=KEY)
    assert [r.status for r in results] == ["failed", "labelled"]
    assert "no reply within 0.3 s after 1 retries" in results[0].error
    assert server.requests_for("#0") == 2


def test_an_empty_content_list_is_discarded_kept_and_not_paid_twice(server, tmp_path):
    server.push_for("#0", empty_content(output_tokens=3))
    config = config_for(server, tmp_path)
    (result,) = label_sets([make_set(0)], config, api_key=KEY)
    assert result.status == "discarded"
    assert result.raw_reply == "" and "no text" in result.error and result.output_tokens == 3
    (again,) = label_sets([make_set(0)], config, api_key=KEY)
    assert again.status == "discarded" and again.cached and server.count == 1
    (retried,) = label_sets([make_set(0)], replace(config, retry_discarded=True), api_key=KEY)
    assert retried.status == "labelled" and not retried.cached and server.count == 2


def test_an_unparseable_reply_is_discarded_with_its_raw_text(server, tmp_path):
    refusal = "I'm sorry, I can't group these items."
    server.push_for("#0", text(refusal))
    results = label_sets([make_set(0), make_set(1)], config_for(server, tmp_path), api_key=KEY)
    assert [r.status for r in results] == ["discarded", "labelled"]
    assert results[0].raw_reply == refusal and "no entity of the set" in results[0].error


def test_a_reply_cut_at_max_tokens_is_discarded_and_asked_again_with_a_higher_limit(server, tmp_path):
    server.push_for("#0", text("**Glue items**\n- glue stick #0\n- glue gun #0\n**Tape", stop_reason="max_tokens"))
    config = config_for(server, tmp_path, max_tokens=20)
    (result,) = label_sets([make_set(0)], config, api_key=KEY)
    assert result.status == "discarded" and "raise --max-tokens" in result.error
    label_sets([make_set(0)], config, api_key=KEY)
    assert server.count == 1  # same limit: the cached reply stands
    (bigger,) = label_sets([make_set(0)], replace(config, max_tokens=4000), api_key=KEY)
    assert bigger.status == "labelled" and server.count == 2


def test_only_text_blocks_are_read_not_thinking(server, tmp_path):
    server.push_for("#0", text("## Glue\n- glue stick #0\n- glue gun #0\n## Tape\n- tape roll #0\n- tape dispenser #0",
                               thinking="## Everything\n- glue stick #0\n- tape roll #0"))
    (result,) = label_sets([make_set(0)], config_for(server, tmp_path), api_key=KEY)
    assert result.labelled.cluster_names == ["Glue", "Tape"] and "Everything" not in result.raw_reply


def test_missing_entities_are_dropped_and_invented_ones_counted(server, tmp_path):
    server.push_for("#0", text("## Glue\n- glue stick #0\n- glue gun #0\n- glitter glue #0\n## Tape\n- tape roll #0"))
    (result,) = label_sets([make_set(0)], config_for(server, tmp_path), api_key=KEY)
    assert result.status == "labelled"
    assert result.dropped_entity_ids == ["s0e3"] and result.invented == 1
    assert result.invented_texts == ["glitter glue #0"]
    labelled = result.labelled
    assert [e.id for e in labelled.entities] == ["s0e0", "s0e1", "s0e2"]
    assert labelled.clusters == [[0, 2], [1]] and labelled.cluster_names == ["Glue", "Tape"]


def test_a_reply_that_covers_too_little_of_the_set_is_discarded(server, tmp_path):
    server.push_for("#0", text("## Glue\n- glue stick #0\n- glue gun #0"))
    (result,) = label_sets([make_set(0, extra=4)], config_for(server, tmp_path), api_key=KEY)
    assert result.status == "discarded" and "only 2 of the 8 entities" in result.error


def test_a_rerun_pays_for_nothing_twice(server, tmp_path):
    config = config_for(server, tmp_path)
    sets = [make_set(k) for k in range(4)]
    label_sets(sets, config, api_key=KEY)
    assert server.count == 4
    results = label_sets(sets, config)  # no key needed: everything is cached
    assert server.count == 4
    assert all(r.cached and r.status == "labelled" for r in results)
    assert summarize(results, config)["requests_billed"] == 0


def test_a_crash_mid_run_resumes_without_paying_twice(server, tmp_path):
    config = config_for(server, tmp_path, concurrency=1)
    sets = [make_set(k) for k in range(5)]

    def crash_after_two(done, total, result):
        if done == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        label_sets(sets, config, api_key=KEY, on_progress=crash_after_two)
    sent_before = server.count
    assert 2 <= sent_before < 5  # the request in flight at the crash finished and was cached
    results = label_sets(sets, config, api_key=KEY)
    assert [r.status for r in results] == ["labelled"] * 5
    assert server.count == 5
    assert all(server.requests_for(f"#{k}") == 1 for k in range(5))
    assert sum(r.cached for r in results) == sent_before


def test_a_token_budget_stops_cleanly(server, tmp_path):
    server.respond_with(lambda prompt, body: replace(cluster_by_first_word(prompt), input_tokens=100,
                                                     output_tokens=50))
    config = config_for(server, tmp_path, concurrency=1, budget_tokens=300)
    results = label_sets([make_set(k) for k in range(5)], config, api_key=KEY)
    assert [r.status for r in results] == ["labelled"] * 2 + ["skipped_budget"] * 3
    assert server.count == 2
    assert "token budget spent (300 of 300 tokens" in results[2].error
    summary = summarize(results, config)
    assert summary["skipped_budget"] == 3 and summary["input_tokens"] + summary["output_tokens"] == 300


def test_a_dollar_budget_with_given_prices_stops_cleanly(server, tmp_path):
    server.respond_with(lambda prompt, body: replace(cluster_by_first_word(prompt), input_tokens=100,
                                                     output_tokens=50))
    config = config_for(server, tmp_path, concurrency=1, budget_usd=0.0025, price_in=10.0, price_out=10.0)
    results = label_sets([make_set(k) for k in range(4)], config, api_key=KEY)
    assert [r.status for r in results].count("labelled") == 2 and server.count == 2
    assert results[0].cost_usd == pytest.approx(0.0015)


def test_the_budget_is_exceeded_by_at_most_the_requests_in_flight(server, tmp_path):
    server.respond_with(lambda prompt, body: slow(0.5, cluster_by_first_word(prompt)))
    config = config_for(server, tmp_path, concurrency=3, budget_tokens=1)
    results = label_sets([make_set(k) for k in range(8)], config, api_key=KEY)
    assert server.count == 3
    assert [r.status for r in results].count("skipped_budget") == 5


def test_cached_sets_are_labelled_even_after_the_budget_is_spent(server, tmp_path):
    config = config_for(server, tmp_path, concurrency=1)
    label_sets([make_set(0), make_set(1)], config, api_key=KEY)
    results = label_sets([make_set(k) for k in range(4)], replace(config, budget_tokens=1), api_key=KEY)
    assert [r.status for r in results] == ["labelled", "labelled", "labelled", "skipped_budget"]
    assert server.count == 3


def test_sets_with_the_same_texts_share_one_request(server, tmp_path):
    twin = EntitySet("twin", [Entity(f"t{i}", e.text) for i, e in enumerate(make_set(0).entities)])
    results = label_sets([make_set(0), twin, make_set(1)], config_for(server, tmp_path), api_key=KEY)
    assert [r.status for r in results] == ["labelled"] * 3 and server.count == 2
    assert results[1].cached and [e.id for e in results[1].labelled.entities] == ["t0", "t1", "t2", "t3"]
    assert summarize(results, config_for(server, tmp_path))["requests_billed"] == 2


def test_requests_in_flight_never_exceed_the_concurrency(server, tmp_path):
    server.respond_with(lambda prompt, body: slow(0.15, cluster_by_first_word(prompt)))
    label_sets([make_set(k) for k in range(8)], config_for(server, tmp_path, concurrency=3), api_key=KEY)
    assert server.count == 8
    assert 2 <= server.max_in_flight <= 3


def test_a_rejected_key_stops_the_run_after_one_request(tmp_path):
    with FakeAnthropic(expected_key="the-right-key") as server:
        config = config_for(server, tmp_path, concurrency=1)
        results = label_sets([make_set(k) for k in range(4)], config, api_key=KEY)
    assert [r.status for r in results] == ["failed"] * 4
    assert server.count == 1
    assert "rejected the API key (401" in results[0].error and "ANTHROPIC_API_KEY" in results[0].error
    assert results[1].error.startswith("not sent: an earlier request failed")
    assert all(KEY not in r.error for r in results)


def test_an_endpoint_that_keeps_failing_stops_the_run(server, tmp_path):
    server.respond_with(lambda prompt, body: error(500))
    config = config_for(server, tmp_path, concurrency=1, max_retries=0, max_consecutive_failures=2)
    results = label_sets([make_set(k) for k in range(5)], config, api_key=KEY)
    assert [r.status for r in results] == ["failed"] * 5
    assert server.count == 2
    assert "2 requests in a row failed" in results[4].error


def test_without_a_key_nothing_is_sent_and_the_message_says_how_to_set_it(server, tmp_path):
    with pytest.raises(MissingAPIKeyError, match=r"2 set\(s\) need new labels.*export ANTHROPIC_API_KEY"):
        label_sets([make_set(0), make_set(1)], config_for(server, tmp_path))
    assert server.count == 0


def test_the_key_is_read_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    (result,) = label_sets([make_set(0)], TeacherConfig(cache_path=None))
    assert result.status == "labelled" and server.keys_seen == {KEY}


def test_sets_too_large_are_refused_not_truncated(server, tmp_path):
    results = label_sets([make_set(0, extra=3), make_set(1)], config_for(server, tmp_path, max_set_size=5),
                         api_key=KEY)
    assert [r.status for r in results] == ["refused_size", "labelled"]
    assert "7 entities, more than max_set_size=5" in results[0].error
    assert server.requests_for("#0") == 0


def test_the_cache_holds_replies_but_never_the_key(server, tmp_path):
    config = config_for(server, tmp_path)
    label_sets([make_set(0), make_set(1)], config, api_key=KEY)
    with sqlite3.connect(config.cache_path) as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 2
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for path in tmp_path.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_settings_are_checked_with_messages_that_say_what_to_do():
    with pytest.raises(TeacherError, match=r"price table has none for model .my-model.*--price-in"):
        TeacherConfig(model="my-model", budget_usd=1.0)
    with pytest.raises(TeacherError, match="concurrency must be at least 1"):
        TeacherConfig(concurrency=0)
    with pytest.raises(TeacherError, match="both price_in and price_out"):
        TeacherConfig(price_in=1.0)
    assert TeacherConfig(model="my-model", budget_usd=1.0, price_in=1.0, price_out=2.0).prices == (1.0, 2.0)
    assert TeacherConfig(model="claude-haiku-4-5-20251001").prices == (1.0, 5.0)
    assert TeacherConfig(model="my-model").estimate_cost(10, 10) is None


def test_the_model_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CACTUS_TEACHER_MODEL", "claude-opus-4-7")
    assert TeacherConfig().model == "claude-opus-4-7"
