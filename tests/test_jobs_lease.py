"""Fenced job leases (issue 12): a worker frozen past ``--stale-after`` loses its job, and its job's process stops
by itself and writes nothing more, so no step runs twice; cancel stops a job whose worker is frozen.

The job is ``test.steps`` (tests/jobs_helpers_types.py): each step appends the attempt that ran it to its file
inside a store session of the job, so a file with two lines is a step that ran twice. The figures (seconds from
cancel to stopped) are printed; ``pytest -s`` shows them (docs/benchmarks.md has a run's).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from db import add_clustering, create_dataset, import_sets, list_sets, session_scope
from db.models import ClusteringRow, JobRow
from db.types import utcnow
from jobs import claims
from jobs.base import JobContext, LeaseLost
from jobs.queue import cancel, enqueue
from tests.jobs_helpers import (
    alive,
    child_pids,
    freeze,
    job,
    job_folder,
    make_set,
    start_worker,
    step_runs,
    steps_run_twice,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("job_types_for_tests")


def queue(url: str, params: dict, **kw) -> int:
    with session_scope(url) as session:
        return enqueue(session, "test.steps", params, **kw).id


def test_a_store_session_of_a_job_whose_lease_moved_on_writes_nothing(store_url, tmp_path):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "d", "products")
        import_sets(session, dataset.id, [make_set("s", ["glue", "tape"])])
        set_id = list_sets(session, dataset.id).items[0].id
        job_id = enqueue(session, "test.steps", {"steps": 1}).id
        first = claims.claim_next(session, "frozen-worker")
    ctx = JobContext(job_id=job_id, type="test.steps", params={}, attempt=1, db_url=store_url,
                     work_dir=tmp_path / "work", lease=first.lease)
    with ctx.session() as session:  # the lease holds: the write goes through
        add_clustering(session, set_id, "teacher", [[0, 1]], job_id=job_id)
    with session_scope(store_url) as session:  # the worker went silent; another worker takes the job over
        session.execute(update(JobRow).where(JobRow.id == job_id).values(
            heartbeat_at=first.heartbeat_at - timedelta(seconds=60)))
        (requeued,) = claims.recover_stale(session, stale_after=30)
        second = claims.claim_next(session, "other-worker")
    assert (requeued.status, second.lease) == ("queued", first.lease + 2)
    with pytest.raises(LeaseLost, match="taken over"), ctx.session() as session:
        add_clustering(session, set_id, "teacher", [[0], [1]], job_id=job_id)
    with pytest.raises(LeaseLost):  # and the process knows it now: its reports to the worker stop too
        ctx.progress(0.5, "half")
    with session_scope(store_url) as session:
        assert session.scalar(select(func.count(ClusteringRow.id)).where(ClusteringRow.source == "teacher")) == 1
        # the holder of the new lease writes as before
        assert claims.heartbeat(session, job_id, "other-worker", second.lease).owned
        assert not claims.heartbeat(session, job_id, "frozen-worker", first.lease).owned


def test_a_worker_frozen_past_stale_after_loses_its_job_and_no_step_runs_twice(store_url, tmp_path, workers):
    job_id = queue(store_url, {"steps": 60, "delay": 0.1})
    work = job_folder(tmp_path, store_url, job_id)
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name="frozen"))
    wait_for(lambda: len(step_runs(work)) >= 3, what="three steps of the first attempt")
    (first_child,) = child_pids(workers[0].pid)
    freeze(workers[0], store_url, job_id)  # SIGSTOP: a long GC, a suspended VM; its job's process runs on
    workers.append(start_worker(store_url, tmp_path, "--max-jobs", "1", name="second"))  # it waits for the job
    wait_for(lambda: job(store_url, job_id).attempts == 2, timeout=30, what="the second worker to take the job")
    taken_over = time.monotonic()
    wait_for(lambda: not alive(first_child), timeout=15, what="the frozen worker's job process to stop itself")
    print(f"\nFIGURE frozen worker: its job's process stopped {time.monotonic() - taken_over:.2f} s after the "
          f"takeover ({store_url.split(':')[0]})")
    assert workers[1].wait(90) == 0
    os.kill(workers[0].pid, signal.SIGCONT)  # it wakes up, finds the job no longer its own, and goes on
    assert workers[0].wait(30) == 0
    done = job(store_url, job_id)
    assert done.status == "succeeded" and done.attempts == 2, (done.error, done.log_tail)
    runs = step_runs(work)
    assert sorted(runs) == list(range(60))
    assert steps_run_twice(work) == []
    assert {a for attempts in runs.values() for a in attempts} == {1, 2}  # both attempts did some of the work
    assert done.result["resumed_from"] == sum(attempts == [1] for attempts in runs.values())
    frozen_log = (tmp_path / "frozen.log").read_text()
    assert f"job {job_id}: its lease moved on" in frozen_log or f"job {job_id} ended (failed) but its lease had " \
        "moved on" in frozen_log
    assert "stopped: the lease was lost" in (work / "log.txt").read_text()  # the first attempt's process says why


@pytest.mark.parametrize("delay", [0.05, 10.0], ids=["writing", "quiet"])
def test_cancel_stops_the_job_of_a_frozen_worker_within_seconds(store_url, tmp_path, workers, delay):
    """"writing": the job's next store session finds the lease gone; "quiet" (a 10 s step, nothing written in
    it): the child's lease watchdog stops it mid-step."""
    job_id = queue(store_url, {"steps": 1000, "delay": delay})
    work = job_folder(tmp_path, store_url, job_id)
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name="frozen"))
    if delay < 1:
        wait_for(lambda: len(step_runs(work)) >= 1, what="the job to run")
    else:
        wait_for(lambda: job(store_url, job_id).status == "running" and child_pids(workers[0].pid),
                 what="the job's process to start")
        time.sleep(1.0)  # it is in its first step now
    (child,) = child_pids(workers[0].pid)
    freeze(workers[0], store_url, job_id)
    wait_for(lambda: (utcnow() - job(store_url, job_id).heartbeat_at).total_seconds() > 1.7,
             what="a stale heartbeat")
    with session_scope(store_url) as session:
        asked = time.monotonic()
        cancelled = cancel(session, job_id, orphaned_after=1.5)  # the workers' --stale-after here
    assert cancelled.status == "cancelled"  # at once, in the store
    wait_for(lambda: not alive(child), timeout=15, what="the job's process to stop itself")
    seconds = time.monotonic() - asked
    print(f"\nFIGURE cancel with the worker frozen: the job's process stopped {seconds:.2f} s after cancel "
          f"(steps of {delay} s, {store_url.split(':')[0]})")
    # a generous bound: it looks at its lease every heartbeat interval (0.2 s here), and a quiet step would
    # otherwise run on for 6 s or more
    assert seconds < 5
    steps = step_runs(work)
    time.sleep(0.5)
    assert step_runs(work) == steps and steps_run_twice(work) == []  # nothing ran after it stopped
    os.kill(workers[0].pid, signal.SIGCONT)
    assert workers[0].wait(30) == 0
    assert job(store_url, job_id).status == "cancelled"  # the worker woke up and left it as it was


def test_seconds_from_cancel_to_stopped_with_a_live_and_with_a_dead_worker(store_url, tmp_path, workers):
    live = queue(store_url, {"steps": 1000, "delay": 0.05})
    workers.append(start_worker(store_url, tmp_path, "--exit-when-idle", name="live"))
    wait_for(lambda: job(store_url, live).progress > 0, what="the job to start")
    (child,) = child_pids(workers[0].pid)
    with session_scope(store_url) as session:
        cancel(session, live)
    asked = time.monotonic()
    wait_for(lambda: job(store_url, live).status == "cancelled" and not alive(child), timeout=15,
             what="the job to be cancelled")
    with_worker = time.monotonic() - asked
    assert workers[0].wait(30) == 0

    dead = queue(store_url, {"steps": 1000, "delay": 0.05})
    workers.append(start_worker(store_url, tmp_path, name="killed"))
    wait_for(lambda: job(store_url, dead).progress > 0, what="the job to start")
    (child,) = child_pids(workers[1].pid)
    os.kill(workers[1].pid, signal.SIGKILL)
    wait_for(lambda: (utcnow() - job(store_url, dead).heartbeat_at).total_seconds() > 1.7, what="a stale heartbeat")
    with session_scope(store_url) as session:
        asked = time.monotonic()
        assert cancel(session, dead, orphaned_after=1.5).status == "cancelled"
    wait_for(lambda: not alive(child), timeout=15, what="the job's process to be gone")
    without_worker = time.monotonic() - asked
    print(f"\nFIGURE cancel to stopped: {with_worker:.2f} s with a live worker, {without_worker:.2f} s with its "
          f"worker killed ({store_url.split(':')[0]})")
    assert with_worker < 10 and without_worker < 10
    for job_id in (live, dead):
        assert steps_run_twice(job_folder(tmp_path, store_url, job_id)) == []
