"""Job folders belong to their store (named <id>-<uid>, under the store's artifacts folder), and `cactus gc` finds
and removes those of failed, cancelled and deleted jobs, never one holding a registered model."""

from __future__ import annotations

import uuid

import pytest

from cactus.cli import main
from db import register_model, session_scope
from db.artifacts import ARTIFACTS_ENV, artifacts_dir
from jobs import claims
from jobs.queue import enqueue
from jobs.worker import JOBS_DIR_ENV, Worker, WorkerConfig


def test_a_sqlite_store_keeps_its_files_beside_it_and_a_setting_moves_them(tmp_path, monkeypatch):
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    monkeypatch.delenv(JOBS_DIR_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'team.db'}"
    assert artifacts_dir(url) == tmp_path / "team-artifacts"
    assert Worker(WorkerConfig(db_url=url)).jobs_dir == tmp_path / "team-artifacts" / "jobs"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert Worker(WorkerConfig(db_url=other)).jobs_dir != Worker(WorkerConfig(db_url=url)).jobs_dir
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "shared"))
    assert artifacts_dir("postgresql+psycopg://u:p@db.example:5432/cactus") == tmp_path / "shared"
    monkeypatch.delenv(ARTIFACTS_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert artifacts_dir("postgresql+psycopg://u:p@db.example:5432/cactus") == \
        tmp_path / "xdg" / "cactus" / "artifacts" / "db.example-5432-cactus"


def finished_job(session, status: str):
    job = enqueue(session, "test.steps", {"steps": 1})
    lease = claims.claim_next(session, "w").lease
    claims.finish(session, job.id, "w", lease, status)
    return job


pytestmark = pytest.mark.usefixtures("job_types_for_tests")


def test_gc_lists_then_removes_the_folders_of_failed_cancelled_and_unknown_jobs(store_url, tmp_path, capsys):
    jobs_dir = tmp_path / "jobs"
    with session_scope(store_url) as session:
        jobs = {status: finished_job(session, status) for status in ("failed", "cancelled", "succeeded")}
        kept_model = finished_job(session, "failed")
        queued = enqueue(session, "test.steps", {"steps": 1})
    folders = {name: jobs_dir / job.folder for name, job in [*jobs.items(), ("model", kept_model),
                                                               ("queued", queued)]}
    folders["unknown"] = jobs_dir / f"7-{uuid.uuid4().hex}"
    folders["not ours"] = jobs_dir / "notes"
    for folder in folders.values():
        (folder / "model").mkdir(parents=True)
        (folder / "log.txt").write_text("x" * 1000)
    with session_scope(store_url) as session:  # a model registered from a failed job's folder stays
        register_model(session, name="keep", checkpoint=str(folders["model"] / "model"), backbone="minilm",
                       mode="sia", loss="aug_triplet", threshold=0.5)
    assert main(["gc", "--db", store_url, "--jobs-dir", str(jobs_dir)]) == 0
    listed = capsys.readouterr().out
    assert "3 folder(s)" in listed and "rerun with --yes" in listed
    assert all(folder.exists() for folder in folders.values())  # nothing removed without --yes
    assert main(["gc", "--db", store_url, "--jobs-dir", str(jobs_dir), "--yes"]) == 0
    assert "removed 3 folder(s)" in capsys.readouterr().out
    gone = {name for name, folder in folders.items() if not folder.exists()}
    assert gone == {"failed", "cancelled", "unknown"}
    assert main(["gc", "--db", store_url, "--jobs-dir", str(jobs_dir)]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_jobs_of_a_store_made_before_uids_get_one_each_on_upgrade(store_url):
    from sqlalchemy import select, text

    from db.migrate import upgrade
    from db.models import JobRow
    from db.session import get_engine

    engine = get_engine(store_url, migrate=False)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for _ in range(3):
            connection.execute(text(
                "INSERT INTO jobs (type, params, status, progress, message, log_tail, metrics, cancel_requested, "
                "attempts, max_attempts, created_at, updated_at) VALUES ('label', '{}', 'succeeded', 1, '', '', "
                "'{}', false, 1, 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    upgrade(engine)
    with session_scope(store_url, readonly=True) as session:
        uids = list(session.scalars(select(JobRow.uid)))
    assert len(uids) == 3 and len(set(uids)) == 3 and all(len(u) == 32 for u in uids)
