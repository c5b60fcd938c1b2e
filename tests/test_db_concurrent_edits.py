"""Four people edit one set at once, 125 edits each, while a worker heartbeats (issue 12), on SQLite and PostgreSQL.

Each editor is a process that does what the review page does: read the set (one read-only session), pick an
edit that fits what it saw (a move, a rename, an undo or a redo), and send it with the ``expected_head`` it read.
An edit is either accepted on exactly the state its author saw or refused with a ConflictError. Afterwards:
no stale edit was accepted, none was lost, and replaying the log (undo and redo included) gives the stored
clustering. ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db import (
    ConflictError,
    EditError,
    Move,
    Partition,
    Rename,
    apply_edit,
    create_dataset,
    edit_history,
    get_set,
    import_sets,
    list_sets,
    rebuild_human_clustering,
    redo,
    session_scope,
    start_clustering,
    undo,
)
from db.edits import edit_stacks
from jobs.queue import cancel, enqueue, get_job
from tests.jobs_helpers import REPO, make_set, start_worker, wait_for, worker_env

EDITORS = 4
EDITS = 125
SIZE = 6


def _choose(rng: random.Random, seen: Partition, undoable: int, redoable: int, who: str, k: int) -> tuple[str, object]:
    """An edit that changes ``seen`` (so an accepted one is always logged)."""
    roll = rng.random()
    if roll < 0.5 and redoable:  # a redo is open only until the next accepted edit: take it often, or none may land
        return "redo", None
    if roll < 0.1 and undoable >= 2:  # never undo the first accept: the set keeps a human clustering
        return "undo", None
    if roll < 0.4:
        return "rename", Rename(cluster=rng.randrange(len(seen.clusters)), name=f"{who}-{k}")
    entity = rng.randrange(SIZE)
    home = next(c for c, members in enumerate(seen.clusters) if entity in members)
    targets = [c for c in range(len(seen.clusters)) if c != home] + ([None] if len(seen.clusters[home]) > 1 else [])
    return "move", Move(entity=entity, to=rng.choice(targets), name=f"{who}-{k}")


def edit_loop(url: str, set_id: int | str, who: str, go: str, out: str) -> None:
    """One editor: ``EDITS`` attempts, each on the view it just read; one JSON line per attempt in ``out``."""
    set_id = int(set_id)
    rng = random.Random(who)
    while not Path(go).exists():
        time.sleep(0.01)
    with open(out, "w") as log:
        for k in range(EDITS):
            with session_scope(url, readonly=True) as session:
                view = get_set(session, set_id)
                stacks = edit_stacks(session, set_id)
            assert view.human is not None
            seen = Partition.build(view.human.clusters, view.human.names)
            kind, edit = _choose(rng, seen, len(stacks.undo), len(stacks.redo), who, k)
            record = {"who": who, "k": k, "kind": kind, "seen_head": view.edit_head, "seen": seen.to_json()}
            try:
                with session_scope(url) as session:
                    if kind == "undo":
                        done = undo(session, set_id, author=who, expected_head=view.edit_head)
                    elif kind == "redo":
                        done = redo(session, set_id, author=who, expected_head=view.edit_head)
                    else:
                        done = apply_edit(session, set_id, edit, author=who, expected_head=view.edit_head)
                assert done is not None
                record |= {"accepted": True, "seq": done.details["edit_head"]}
            except ConflictError:
                record |= {"accepted": False}
            except EditError as exc:  # the edit did not fit the state it met: it was not made on the one it saw
                record |= {"accepted": False, "unfit": str(exc)}
            log.write(json.dumps(record) + "\n")


pytestmark = pytest.mark.usefixtures("job_types_for_tests")


def test_four_editors_and_a_worker_at_once_no_stale_edit_accepted_none_lost(store_url, tmp_path):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "shared", "products")
        import_sets(session, dataset.id, [make_set("s", [f"item {i}" for i in range(SIZE)])])
        set_id = list_sets(session, dataset.id).items[0].id
        start_clustering(session, set_id, author="setup")  # edit 1
        job_id = enqueue(session, "test.steps", {"steps": 10_000, "delay": 0.02}).id
    worker = start_worker(store_url, tmp_path, "--heartbeat-interval", "0.05")
    editors: list[subprocess.Popen] = []
    go = tmp_path / "go"
    try:
        wait_for(lambda: _job(store_url, job_id).progress > 0, what="the worker's job to run")
        for n in range(EDITORS):
            editors.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; from tests.test_db_concurrent_edits import edit_loop; "
                 "edit_loop(*sys.argv[1:])", store_url, str(set_id), f"editor{n}", str(go),
                 str(tmp_path / f"editor{n}.jsonl")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=worker_env(), cwd=REPO))
        time.sleep(1.0)  # let every editor import and wait at the gate, so that they start together
        go.touch()
        outputs = [e.communicate(timeout=600)[0] for e in editors]
        beat_during_edits = _job(store_url, job_id)
        with session_scope(store_url) as session:
            cancel(session, job_id)
        wait_for(lambda: _job(store_url, job_id).status == "cancelled", what="the worker's job to stop")
    finally:
        for process in [*editors, worker]:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert [e.returncode for e in editors] == [0] * EDITORS, outputs
    assert beat_during_edits.status == "running" and beat_during_edits.attempts == 1  # the worker kept its job

    attempts = [json.loads(line) for n in range(EDITORS) for line in (tmp_path / f"editor{n}.jsonl").open()]
    assert len(attempts) == EDITORS * EDITS
    accepted = [a for a in attempts if a["accepted"]]
    refused = len(attempts) - len(accepted)
    with session_scope(store_url, readonly=True) as session:
        log = {entry.seq: entry for entry in edit_history(session, set_id)}
        stored = get_set(session, set_id).human
        replayed = rebuild_human_clustering(session, set_id)
    # an accepted edit is the entry right after the head its author saw, and it was applied to what they saw
    stale = [a for a in accepted
             if a["seq"] != a["seen_head"] + 1 or log[a["seq"]].author != a["who"]
             or log[a["seq"]].before != Partition.from_json(a["seen"])]
    print(f"\nFIGURE concurrent edits ({store_url.split(':')[0]}): stale edits accepted {len(stale)} of "
          f"{len(attempts)}; {len(accepted)} accepted, {refused} refused as stale")
    assert stale == [] and [a for a in attempts if "unfit" in a] == []
    assert refused > 0  # the editors did race: some saw a head that had moved on by the time they wrote
    # none lost, none made up: the log is the first accept and exactly the accepted edits
    assert sorted(log) == list(range(1, len(accepted) + 2))
    assert sorted(a["seq"] for a in accepted) == list(range(2, len(accepted) + 2))
    assert {log[a["seq"]].action for a in accepted if a["kind"] in ("undo", "redo")} <= {"undo", "redo"}
    assert {a["kind"] for a in accepted} == {"move", "rename", "undo", "redo"}
    # undo and redo replay to the stored state
    assert stored is not None and replayed == Partition.build(stored.clusters, stored.names)
    with session_scope(store_url) as session:
        for _ in range(10):
            undo(session, set_id, author="check")
        for _ in range(10):
            redo(session, set_id, author="check")
    with session_scope(store_url, readonly=True) as session:
        again = get_set(session, set_id).human
        assert (again.clusters, again.names) == (stored.clusters, stored.names)
        assert rebuild_human_clustering(session, set_id) == replayed
    assert "database is locked" not in "".join(outputs) + (tmp_path / "worker.log").read_text()


def _job(url: str, job_id: int):
    with session_scope(url, readonly=True) as session:
        return get_job(session, job_id)
