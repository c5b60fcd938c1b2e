"""The app and a worker write to one SQLite file at once: nothing is lost and nobody sees "database is locked".

Three processes: the app's write path (one edit per transaction, reads between), and a worker whose
``label`` job stores a teacher clustering per set from its child process while the worker itself
writes heartbeats and progress.
"""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import func, select

from db import create_dataset, import_sets, rebuild_human_clustering, session_scope, start_clustering
from db.models import ClusteringRow, EditRow, SetRow
from db.partition import Partition
from jobs.queue import enqueue, get_job
from tests.fake_anthropic import FakeAnthropic, cluster_by_first_word, slow
from tests.jobs_helpers import (
    REPO,
    app_edit_sequence,
    job_folder,
    make_set,
    start_worker,
    wait_for,
    worker_env,
)

SETS = 300
EDITED = 30
EDITS = 300


def test_app_and_worker_write_concurrently_without_losing_anything(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    words = ["glue", "candle", "pen", "tape"]
    with session_scope(url) as session:
        dataset = create_dataset(session, "shop", "products")
        import_sets(session, dataset.id, [make_set(f"s{i}", [f"{words[(i + k) % 4]} {k} of set {i}" for k in range(4)])
                                          for i in range(SETS)])
        set_ids = list(session.scalars(select(SetRow.id).order_by(SetRow.position)))
        edited = set_ids[:EDITED]
        for set_id in edited:
            start_clustering(session, set_id, author="app")
        job_id = enqueue(session, "label", {"dataset_id": dataset.id, "concurrency": 2, "cache": False}).id

    with FakeAnthropic(lambda prompt, body: slow(0.01, cluster_by_first_word(prompt))) as server:
        worker = start_worker(url, tmp_path, "--exit-when-idle", "--heartbeat-interval", "0.05",
                              ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="k")
        try:
            wait_for(lambda: _job(url, job_id).progress > 0, what="the label job to store its first sets")
            app = subprocess.run(
                [sys.executable, "-c", "import sys, json; from tests.jobs_helpers import app_edits; "
                 "app_edits(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))", url, str(edited), str(EDITS)],
                capture_output=True, text=True, timeout=300, env=worker_env(), cwd=REPO)
            assert worker.wait(300) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    assert app.returncode == 0, app.stderr
    worker_log = (tmp_path / "worker.log").read_text() + \
        (job_folder(tmp_path, url, job_id) / "log.txt").read_text()
    assert "database is locked" not in app.stderr + worker_log

    job = _job(url, job_id)
    assert job.status == "succeeded", (job.error, job.log_tail)
    assert job.result["labelled"] == SETS and server.count == SETS
    with session_scope(url, readonly=True) as session:
        edits = session.execute(select(EditRow.created_at).where(EditRow.action != "accept")).scalars().all()
        assert len(edits) == EDITS
        # the two wrote at the same time: the app's edits fall inside the job's run
        assert min(edits) < job.finished_at and max(edits) > job.started_at
        teacher = session.scalar(select(func.count(ClusteringRow.id)).where(ClusteringRow.source == "teacher"))
        assert teacher == SETS
        # every set's human clustering is what the app's edits, in order, make of it
        expected = {set_id: Partition.singletons(4) for set_id in edited}
        for set_id, edit in app_edit_sequence(edited, EDITS):
            expected[set_id] = edit.apply(expected[set_id])
        for set_id in edited:
            human = session.scalar(select(ClusteringRow).where(ClusteringRow.set_id == set_id,
                                                               ClusteringRow.source == "human"))
            assert Partition.build(human.clusters, human.names) == expected[set_id]
            assert rebuild_human_clustering(session, set_id) == expected[set_id]


def _job(url: str, job_id: int):
    with session_scope(url, readonly=True) as session:
        return get_job(session, job_id)
