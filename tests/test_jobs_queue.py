"""The job queue and the worker's claims, in process, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from db import ConflictError, NotFoundError, create_dataset, session_scope
from db.models import JobRow
from jobs import claims
from jobs.base import JobParamsError
from jobs.queue import cancel, enqueue, get_job, list_jobs, retry
from jobs.types import PLUGINS_ENV, get_job_type, job_types

pytestmark = pytest.mark.usefixtures("job_types_for_tests")


def test_registry_has_the_builtin_types_and_plugins(monkeypatch):
    assert {"label", "test.steps"} <= set(job_types())
    known = r"evaluate, finetune, label, predict, test\.steps"
    with pytest.raises(JobParamsError, match=rf"unknown job type 'nope'; known: {known}"):
        get_job_type("nope")
    monkeypatch.setenv(PLUGINS_ENV, "no.such.module")
    with pytest.raises(JobParamsError, match=r"cannot import job type plugin 'no\.such\.module'"):
        job_types()
    monkeypatch.setenv(PLUGINS_ENV, "tests.jobs_helpers")
    with pytest.raises(JobParamsError, match="must define JOB_TYPE"):
        job_types()


def test_enqueue_checks_parameters_before_queueing(store_url):
    with session_scope(store_url) as session:
        with pytest.raises(JobParamsError, match="steps must be an integer from 1 to 10000, got 'many'"):
            enqueue(session, "test.steps", {"steps": "many"})
        with pytest.raises(JobParamsError, match="label: the parameter 'dataset_id' is required"):
            enqueue(session, "label", {})
        with pytest.raises(JobParamsError, match="label: unknown parameter"):
            enqueue(session, "label", {"dataset_id": 1, "colour": "red"})
        with pytest.raises(JobParamsError, match="no dataset with id 7"):
            enqueue(session, "label", {"dataset_id": 7})
        with pytest.raises(JobParamsError, match="unknown job type"):
            enqueue(session, "explode", {})
        dataset = create_dataset(session, "d", "queries")
        job = enqueue(session, "label", {"dataset_id": dataset.id, "sets": "all"})
        assert (job.status, job.dataset_id, job.attempts, job.progress) == ("queued", dataset.id, 0, 0.0)
        assert "cactus worker" in job.message and not job.finished
    with session_scope(store_url, readonly=True) as session:
        assert [j.id for j in list_jobs(session)] == [job.id]


@pytest.mark.parametrize(("job_type", "params", "message"), [
    ("predict", {}, "predict: the parameter 'dataset_id' is required"),
    ("evaluate", {"dataset_id": "3"}, "evaluate: dataset_id must be an integer of at least 1, got '3'"),
    ("finetune", {"dataset_id": True}, "finetune: dataset_id must be an integer of at least 1, got True"),
    ("label", {"dataset_id": 1, "budget_tokens": -1}, "label: budget_tokens must be an integer of at least 0"),
    ("predict", {"dataset_id": 1, "max_batch_tokens": 0},
     "predict: max_batch_tokens must be an integer of at least 1, got 0"),
    ("label", {"dataset_id": 1, "cache": "yes"}, "label: cache must be true or false, got 'yes'"),
    ("evaluate", {"dataset_id": 1, "baselines": 1}, "evaluate: baselines must be true or false, got 1"),
    ("predict", {"dataset_id": 1, "set_ids": []}, r"predict: set_ids must be a non-empty list of set ids, got \[\]"),
    ("evaluate", {"dataset_id": 1, "model_ids": [1, "2"]}, "evaluate: model_ids must be a list of model ids"),
    ("finetune", {"dataset_id": 1, "epochs": 3}, "finetune: unknown parameter\\(s\\) epochs; known: activate, "
                                                 "adapt, adapt_steps, dataset_id, human, init_model_id, name, "
                                                 "pretrain, split_seed, train"),
])
def test_every_job_type_names_the_bad_parameter(job_type, params, message):
    with pytest.raises(JobParamsError, match=message):
        get_job_type(job_type).parse_params(params)


def test_claims_go_oldest_first_and_once(store_url):
    with session_scope(store_url) as session:
        first = enqueue(session, "test.steps", {"steps": 1}).id
        second = enqueue(session, "test.steps", {"steps": 2}).id
    with session_scope(store_url) as session:
        a = claims.claim_next(session, "worker-a")
    with session_scope(store_url) as session:
        b = claims.claim_next(session, "worker-b")
    with session_scope(store_url) as session:
        assert claims.claim_next(session, "worker-c") is None
    assert (a.id, a.status, a.worker_id, a.attempts) == (first, "running", "worker-a", 1)
    assert "started by worker worker-a (attempt 1 of 2)" in a.message and a.started_at is not None
    assert (b.id, b.worker_id) == (second, "worker-b")
    with session_scope(store_url) as session:
        # only the owner, with the lease it got, may heartbeat or finish
        assert claims.heartbeat(session, first, "worker-a", a.lease, progress=0.5, message="half").owned
        assert not claims.heartbeat(session, first, "worker-b", a.lease, progress=0.9).owned
        assert not claims.heartbeat(session, first, "worker-a", a.lease - 1, progress=0.9).owned
        assert not claims.finish(session, first, "worker-b", a.lease, "succeeded")
        assert not claims.finish(session, first, "worker-a", a.lease + 1, "succeeded")
        assert claims.finish(session, first, "worker-a", a.lease, "succeeded", result={"ok": True})
        assert not claims.finish(session, first, "worker-a", a.lease, "failed")  # finished already
    with session_scope(store_url, readonly=True) as session:
        done = get_job(session, first)
        assert (done.status, done.progress, done.message, done.result) == ("succeeded", 0.5, "half", {"ok": True})
        assert done.finished and done.seconds is not None and done.seconds >= 0
        assert [j.id for j in list_jobs(session, status="running")] == [second]
        assert [j.id for j in list_jobs(session, status=["succeeded", "queued"])] == [first]
        with pytest.raises(JobParamsError, match="unknown job status 'done'"):
            list_jobs(session, status="done")


def test_cancel_queued_running_and_finished_jobs(store_url):
    with session_scope(store_url) as session:
        queued = enqueue(session, "test.steps", {"steps": 1}).id
        running = enqueue(session, "test.steps", {"steps": 1}).id
        finished = enqueue(session, "test.steps", {"steps": 1}).id
    with session_scope(store_url) as session:
        assert cancel(session, queued).status == "cancelled"
        claimed = claims.claim_next(session, "w")
        assert claimed.id == running  # the cancelled one is never claimed
        job = cancel(session, running)
        assert (job.status, job.cancel_requested) == ("running", True)
        assert claims.heartbeat(session, running, "w", claimed.lease).cancel_requested
        assert claims.finish(session, running, "w", claimed.lease, "cancelled")
        claimed = claims.claim_next(session, "w")
        assert claimed.id == finished
        claims.finish(session, finished, "w", claimed.lease, "succeeded")
        with pytest.raises(ConflictError, match="has succeeded already"):
            cancel(session, finished)
        with pytest.raises(NotFoundError):
            cancel(session, 999)
        again = retry(session, queued)
        assert (again.status, again.params, again.id > finished) == ("queued", {"steps": 1}, True)
        with pytest.raises(ConflictError, match="only a finished job can be run again"):
            retry(session, again.id)


def _age_heartbeat(url: str, job_id: int, seconds: float) -> None:
    with session_scope(url) as session:
        job = get_job(session, job_id)
        session.execute(update(JobRow).where(JobRow.id == job_id)
                        .values(heartbeat_at=job.heartbeat_at - timedelta(seconds=seconds)))


def test_stale_jobs_are_requeued_once_then_failed(store_url):
    with session_scope(store_url) as session:
        job_id = enqueue(session, "test.steps", {"steps": 1}).id
        first = claims.claim_next(session, "dead-worker")
    with session_scope(store_url) as session:
        assert claims.recover_stale(session, stale_after=30) == []  # fresh heartbeat: left alone
    _age_heartbeat(store_url, job_id, 60)
    with session_scope(store_url) as session:
        (requeued,) = claims.recover_stale(session, stale_after=30)
        assert (requeued.status, requeued.worker_id) == ("queued", None)
        assert "dead-worker stopped sending heartbeats" in requeued.message and "Attempt 2 of 2" in requeued.message
        assert requeued.lease == first.lease + 1  # the requeue moved the lease on: the first holder is fenced off
        second = claims.claim_next(session, "dead-again")
        assert (second.id, second.attempts, second.lease) == (job_id, 2, first.lease + 2)
        assert claims.heartbeat(session, job_id, "dead-again", second.lease).owned
        assert not claims.heartbeat(session, job_id, "dead-worker", first.lease).owned  # the first worker lost it
        # the same worker name with the old token (a worker id reused, a frozen process waking up) is refused too
        assert not claims.heartbeat(session, job_id, "dead-again", first.lease).owned
    _age_heartbeat(store_url, job_id, 60)
    with session_scope(store_url) as session:
        (failed,) = claims.recover_stale(session, stale_after=30)
        assert failed.status == "failed" and failed.finished_at is not None
        assert "worker dead-again stopped sending heartbeats" in failed.error
        assert "used its 2 attempt(s)" in failed.error


def test_a_stale_job_with_a_cancel_request_ends_cancelled(store_url):
    with session_scope(store_url) as session:
        job_id = enqueue(session, "test.steps", {"steps": 1}).id
        claims.claim_next(session, "w")
        cancel(session, job_id)
    _age_heartbeat(store_url, job_id, 60)
    with session_scope(store_url) as session:
        (job,) = claims.recover_stale(session, stale_after=30)
        assert job.status == "cancelled"


def test_release_puts_the_job_back_without_counting_the_attempt(store_url):
    with session_scope(store_url) as session:
        job_id = enqueue(session, "test.steps", {"steps": 1}).id
        lease = claims.claim_next(session, "w").lease
        assert claims.release(session, job_id, "w", lease, "requeued: its worker was stopped")
        job = get_job(session, job_id)
        assert (job.status, job.attempts, job.message) == ("queued", 0, "requeued: its worker was stopped")
        assert claims.claim_next(session, "w2").attempts == 1
