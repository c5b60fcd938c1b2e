"""``cactus worker`` as separate processes on a real store: lifecycle, crashes, cancel, bad jobs, several workers.

The jobs are the built-in ``label`` job against a local server that speaks the Messages API
(tests/fake_anthropic.py) and the ``test.steps`` job type loaded as a plugin (tests/jobs_helpers_types.py).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import func, select

from db import add_clustering, create_dataset, delete_dataset, get_set, import_sets, list_sets, session_scope
from db.models import ClusteringRow, JobRow
from db.types import utcnow
from jobs.queue import JobInfo, cancel, enqueue
from tests.fake_anthropic import FakeAnthropic, cluster_by_first_word, slow
from tests.jobs_helpers import child_pids, job, job_folder, make_set, start_worker, steps_run_twice, wait_for

pytestmark = pytest.mark.usefixtures("job_types_for_tests")


def wait_until_stale(url: str, job_id: int) -> None:
    """Wait until the job's heartbeat is older than the workers' --stale-after (1.5 s)."""
    wait_for(lambda: (utcnow() - job(url, job_id).heartbeat_at).total_seconds() > 1.7, what="a stale heartbeat")


def queue(url: str, type: str, params: dict, **kw) -> int:
    with session_scope(url) as session:
        return enqueue(session, type, params, **kw).id


def product_sets(n: int) -> list:
    words = ["glue", "candle", "pen", "tape"]
    return [make_set(f"s{i}", [f"{words[(i + k) % 4]} item {k}" for k in range(4)]) for i in range(n)]


def test_label_job_goes_queued_running_succeeded(store_url, tmp_path, workers):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "shop", "products")
        import_sets(session, dataset.id, product_sets(4))
    job_id = queue(store_url, "label", {"dataset_id": dataset.id, "concurrency": 1})
    assert job(store_url, job_id).status == "queued"
    with FakeAnthropic(lambda prompt, body: slow(0.4, cluster_by_first_word(prompt))) as server:
        workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", cli=True, ANTHROPIC_BASE_URL=server.url,
                                    ANTHROPIC_API_KEY="test-key", XDG_DATA_HOME=str(tmp_path / "data")))
        running = wait_for(lambda: (j := job(store_url, job_id)).status == "running" and j.progress > 0 and j,
                           what="the job to run and report progress")
        assert running.worker_id and running.attempts == 1 and "sets" in running.message
        assert "labelling 4 set(s) of 'shop'" in running.log_tail
        assert workers[0].wait(60) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded", (done.error, done.log_tail)
    assert (done.progress, done.result["labelled"], done.result["sets"]) == (1.0, 4, 4)
    assert done.metrics["labelled"] == 4 and done.finished_at >= done.started_at
    assert server.count == 4 and server.keys_seen == {"test-key"}
    with session_scope(store_url, readonly=True) as session:
        page = list_sets(session, dataset.id, has=["teacher"])
        assert page.total == 4
        teacher = get_set(session, page.items[0].id).teacher
        # grouped by first word: "glue item 0", "candle item 1", "pen item 2", "tape item 3"
        assert teacher.clusters == ((0,), (1,), (2,), (3,)) and teacher.job_id == job_id
        assert teacher.names == ("Glue items", "Candle items", "Pen items", "Tape items")
        assert teacher.details["unplaced"] == [] and teacher.producer
    assert (job_folder(tmp_path, store_url, job_id) / "log.txt").read_text().count("attempt 1") >= 1


def test_a_killed_worker_leaves_a_job_the_next_worker_resumes(store_url, tmp_path, workers):
    job_id = queue(store_url, "test.steps", {"steps": 12, "delay": 0.15})
    work = job_folder(tmp_path, store_url, job_id)
    workers.append(start_worker(store_url, tmp_path, name="first"))
    wait_for(lambda: len(list(work.glob("step-*"))) >= 3, what="three steps of the first attempt")
    os.kill(workers[0].pid, signal.SIGKILL)
    workers[0].wait(10)
    steps_at_kill = len(list(work.glob("step-*")))
    wait_until_stale(store_url, job_id)
    # the job's process noticed that its worker was gone and stopped too (one step may have been under way)
    assert len(list(work.glob("step-*"))) <= steps_at_kill + 1
    assert job(store_url, job_id).status == "running"  # nobody knows yet
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name="second"))
    assert workers[1].wait(60) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded", (done.error, done.log_tail)
    assert done.attempts == 2 and done.result["attempt"] == 2
    assert done.result["resumed_from"] >= 3  # the second attempt skipped the steps already done
    assert sorted(int(p.read_text()) for p in work.glob("step-*"))[-1] == 2
    assert steps_run_twice(work) == []  # the killed worker's job process ran no step the second attempt ran
    log = (tmp_path / "second.log").read_text()
    assert f"job {job_id}: requeued: worker" in log and "stopped sending heartbeats" in log


def test_a_job_out_of_attempts_fails_with_the_reason(store_url, tmp_path, workers):
    job_id = queue(store_url, "test.steps", {"steps": 50, "delay": 0.1}, max_attempts=1)
    workers.append(start_worker(store_url, tmp_path, name="first"))
    wait_for(lambda: job(store_url, job_id).progress > 0, what="progress")
    os.kill(workers[0].pid, signal.SIGKILL)
    wait_until_stale(store_url, job_id)
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name="second"))
    assert workers[1].wait(60) == 0
    failed = job(store_url, job_id)
    assert failed.status == "failed" and failed.attempts == 1
    assert "stopped sending heartbeats" in failed.error and "retry the job" in failed.error


def test_cancel_stops_a_running_job_within_seconds_and_the_worker_goes_on(store_url, tmp_path, workers):
    long_job = queue(store_url, "test.steps", {"steps": 1000, "delay": 0.05})
    queued_job = queue(store_url, "test.steps", {"steps": 1})
    next_job = queue(store_url, "test.steps", {"steps": 2})
    with session_scope(store_url) as session:
        assert cancel(session, queued_job).status == "cancelled"  # never starts
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle"))
    wait_for(lambda: job(store_url, long_job).progress > 0, what="the long job to start")
    with session_scope(store_url) as session:
        cancel(session, long_job)
    asked = time.monotonic()
    stopped = wait_for(lambda: (j := job(store_url, long_job)).status == "cancelled" and j, timeout=15,
                       what="the job to be cancelled")
    assert time.monotonic() - asked < 5
    assert stopped.progress < 1.0 and stopped.finished_at is not None
    steps = len(list(job_folder(tmp_path, store_url, long_job).glob("step-*")))
    assert workers[0].wait(60) == 0
    assert len(list(job_folder(tmp_path, store_url, long_job).glob("step-*"))) == steps  # its process is gone
    assert job(store_url, next_job).status == "succeeded"
    assert job(store_url, queued_job).started_at is None


def test_a_sigterm_nobody_sent_through_cancel_fails_the_job_and_says_so(store_url, tmp_path, workers):
    job_id = queue(store_url, "test.steps", {"steps": 1000, "delay": 0.05})
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle"))
    wait_for(lambda: job(store_url, job_id).progress > 0, what="the job to start")
    (child,) = child_pids(workers[0].pid)
    os.kill(child, signal.SIGTERM)  # e.g. an administrator's kill, or the system shutting down
    assert workers[0].wait(60) == 0
    failed = job(store_url, job_id)
    assert failed.status == "failed" and not failed.cancel_requested
    assert "stopped by SIGTERM from outside the workbench" in failed.error
    assert steps_run_twice(job_folder(tmp_path, store_url, job_id)) == []


def test_cancel_with_no_worker_alive_ends_the_job_at_once(store_url, tmp_path, workers):
    job_id = queue(store_url, "test.steps", {"steps": 1000, "delay": 0.05})
    workers.append(start_worker(store_url, tmp_path))
    wait_for(lambda: job(store_url, job_id).progress > 0, what="the job to start")
    os.kill(workers[0].pid, signal.SIGKILL)
    wait_until_stale(store_url, job_id)
    with session_scope(store_url) as session:
        cancelled = cancel(session, job_id, orphaned_after=1.5)  # the workers' --stale-after here
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert "stopped sending heartbeats" in cancelled.message
    assert steps_run_twice(job_folder(tmp_path, store_url, job_id)) == []


def test_bad_jobs_fail_readably_and_the_worker_goes_on(store_url, tmp_path, workers):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "gone", "products")
        import_sets(session, dataset.id, product_sets(2))
    label_job = queue(store_url, "label", {"dataset_id": dataset.id})
    with session_scope(store_url) as session:  # the dataset goes away before a worker gets to the job
        delete_dataset(session, dataset.id)
        # jobs written by another client, without the queue's checks
        session.add(JobRow(type="test.steps", params={"steps": "many"}))
        session.add(JobRow(type="no.such.type", params={}))
    crashing = queue(store_url, "test.steps", {"steps": 3, "fail_at": 1})
    good = queue(store_url, "test.steps", {"steps": 2})
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", ANTHROPIC_API_KEY="unused"))
    assert workers[0].wait(60) == 0
    with session_scope(store_url, readonly=True) as session:
        jobs = {row.id: JobInfo.of(row) for row in session.scalars(select(JobRow))}
    bad_params = next(j for j in jobs.values() if j.params == {"steps": "many"})
    unknown = next(j for j in jobs.values() if j.type == "no.such.type")
    assert jobs[label_job].status == "failed" and jobs[label_job].error.startswith(f"no dataset with id {dataset.id}")
    assert (bad_params.status, bad_params.error) == ("failed", "test.steps: steps must be an integer from 1 to "
                                                                "10000, got 'many'")
    assert unknown.status == "failed"
    assert unknown.error.startswith("unknown job type 'no.such.type'; known: evaluate, finetune, label, predict")
    assert jobs[crashing].status == "failed" and jobs[crashing].error == "ValueError: asked to fail at step 1"
    assert "Traceback" in jobs[crashing].traceback and "asked to fail" in jobs[crashing].log_tail
    assert jobs[crashing].progress == pytest.approx(1 / 3)
    assert jobs[good].status == "succeeded" and jobs[good].result == {"steps": 2, "resumed_from": 0, "attempt": 1}
    assert jobs[good].metrics == {"steps_done": 2, "history": [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]}


def test_several_workers_run_each_job_exactly_once(store_url, tmp_path, workers):
    ids = [queue(store_url, "test.steps", {"steps": 1, "delay": 0.05}) for _ in range(12)]
    for n in range(3):
        workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name=f"w{n}"))
    assert [w.wait(90) for w in workers] == [0, 0, 0]
    finished = [job(store_url, i) for i in ids]
    assert {j.status for j in finished} == {"succeeded"}
    assert {j.attempts for j in finished} == {1}
    assert len({j.worker_id for j in finished}) >= 2  # the work was shared
    for i in ids:  # one attempt each: one log header per job
        assert (job_folder(tmp_path, store_url, i) / "log.txt").read_text().count("--- ") == 1


def test_stopping_a_worker_puts_its_job_back(store_url, tmp_path, workers):
    job_id = queue(store_url, "test.steps", {"steps": 40, "delay": 0.05})
    workers.append(start_worker(store_url, tmp_path, name="first"))
    wait_for(lambda: job(store_url, job_id).progress > 0, what="progress")
    workers[0].send_signal(signal.SIGTERM)
    assert workers[0].wait(30) == 0
    back = job(store_url, job_id)
    assert (back.status, back.attempts, back.message) == ("queued", 0, "requeued: its worker was stopped")
    workers.append(start_worker(store_url, tmp_path, "--once", name="second"))
    assert workers[1].wait(60) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded" and done.attempts == 1 and done.result["resumed_from"] > 0


def test_worker_once_with_an_empty_queue_exits_at_once(store_url, tmp_path, workers):
    workers.append(start_worker(store_url, tmp_path, "--once"))
    assert workers[0].wait(60) == 0
    with session_scope(store_url, readonly=True) as session:
        assert session.scalar(select(func.count(JobRow.id))) == 0
        assert session.scalar(select(func.count(ClusteringRow.id))) == 0


def test_label_job_resumes_only_the_sets_still_missing(store_url, tmp_path, workers):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "half", "products")
        import_sets(session, dataset.id, product_sets(3))
        first = list_sets(session, dataset.id).items[0].id
        add_clustering(session, first, "teacher", [[0, 1, 2, 3]], producer="earlier run")
    job_id = queue(store_url, "label", {"dataset_id": dataset.id, "cache": False})
    with FakeAnthropic() as server:
        workers.append(start_worker(store_url, tmp_path, "--once", ANTHROPIC_BASE_URL=server.url,
                                    ANTHROPIC_API_KEY="k"))
        assert workers[0].wait(60) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded" and done.result["sets"] == 2 and server.count == 2
    with session_scope(store_url, readonly=True) as session:
        assert get_set(session, first).teacher.producer == "earlier run"


def test_label_job_through_batches_reports_the_batch_counts(store_url, tmp_path, workers):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "batched", "products")
        import_sets(session, dataset.id, product_sets(4))
    job_id = queue(store_url, "label", {"dataset_id": dataset.id, "batch": True, "poll_interval": 0.2})
    with FakeAnthropic() as server:
        server.batch_polls = 4
        workers.append(start_worker(store_url, tmp_path, "--once", ANTHROPIC_BASE_URL=server.url,
                                    ANTHROPIC_API_KEY="k", XDG_DATA_HOME=str(tmp_path / "data")))
        polling = wait_for(lambda: "requests done" in (j := job(store_url, job_id)).message and j,
                           what="progress from the batch counts")
        assert 0 < polling.progress < 1 and "1 batch:" in polling.message
        assert workers[0].wait(60) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded", (done.error, done.log_tail)
    assert (done.result["labelled"], done.result["batched"]) == (4, 4)
    assert done.metrics["batch_requests"] == 4 and "through the Message Batches API" in done.log_tail
    assert (server.batch_submitted, server.count) == (4, 0)
    with session_scope(store_url, readonly=True) as session:
        assert all(get_set(session, s.id).teacher is not None for s in list_sets(session, dataset.id).items)


def test_label_job_refuses_batch_without_the_cache_or_with_a_budget():
    from jobs.base import JobParamsError
    from jobs.types.label import parse_params

    with pytest.raises(JobParamsError, match="batch needs the cache"):
        parse_params({"dataset_id": 1, "batch": True, "cache": False})
    with pytest.raises(JobParamsError, match="budgets apply"):
        parse_params({"dataset_id": 1, "batch": True, "budget_usd": 1})
    assert parse_params({"dataset_id": 1, "batch": True}).poll_interval == 30.0


def test_max_jobs_stops_the_worker_after_that_many(store_url, tmp_path, workers):
    ids = [queue(store_url, "test.steps", {"steps": 1}) for _ in range(3)]
    workers.append(start_worker(store_url, tmp_path, "--max-jobs", "2"))
    assert workers[0].wait(60) == 0
    assert [job(store_url, i).status for i in ids] == ["succeeded", "succeeded", "queued"]
