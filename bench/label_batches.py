"""Benchmark labelling through the Message Batches API: 2,000 sets, a SIGKILL, a rerun, requests counted (issue 11).

The teacher is the local fake Messages API server of the test suite (tests/fake_anthropic.py), in this process;
``cactus label --batch`` runs as a separate process, is killed with SIGKILL at the chosen point, and the same
command is run again to completion. The server counts what it received, so duplicate submissions are measured,
not assumed. Each row (one per kill point) is printed as one JSON line:

* ``kill``: ``mid_poll`` (every batch created and recorded, polling under way) or ``mid_create`` (the create
  request reached the server, its answer never reached the labeller: the rerun must find the batch by its
  custom ids).
* ``sets``, ``requests_submitted`` (must equal ``sets``), ``duplicates`` (= submitted - sets), ``batches``,
  ``labelled`` (from the rerun's output), ``first_run_s`` (start to kill), ``rerun_s`` and ``wall_s``.

Example:
    python bench/label_batches.py --sets 2000 --batch-size 1000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cactus.data import Entity, EntitySet, read_sets, write_sets  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402

CLI = "import sys, cactus.cli as c; c.COMMANDS = ('label',); sys.exit(c.main(sys.argv[1:]))"
WORDS = ["glue", "tape", "candle", "pen", "marker", "notebook", "stapler", "scissors"]


def make_sets(n: int, entities: int = 12) -> list[EntitySet]:
    """``n`` sets of ``entities`` product-like titles, distinct across sets."""
    return [EntitySet(f"s{k}", [Entity(f"s{k}e{i}", f"{WORDS[(k + i) % len(WORDS)]} item {i} lot {k}")
                                for i in range(entities)]) for k in range(n)]


def recorded(cache: Path) -> int:
    """Batch ids recorded in the cache so far."""
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM batch_submissions WHERE batch_id IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def run_once(kill: str, n: int, batch_size: int, folder: Path) -> dict:
    sets_path, out = folder / "sets.jsonl", folder / "labelled.jsonl"
    write_sets(sets_path, make_sets(n))
    n_batches = -(-n // batch_size)
    args = ["label", str(sets_path), "--out", str(out), "--no-progress", "--batch", "--batch-size", str(batch_size),
            "--poll-interval", "0.1", "--max-poll-interval", "0.5"]
    with FakeAnthropic() as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": "bench-key", "ANTHROPIC_BASE_URL": server.url}
        server.batch_polls = 10**6  # the batches run until the kill
        if kill == "mid_create":
            server.create_delay = 600.0
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache = folder / "teacher-cache.sqlite"
        if kill == "mid_poll":
            ready = lambda: recorded(cache) == n_batches and server.batch_calls.count("retrieve") >= n_batches  # noqa: E731
        else:
            ready = lambda: server.batches_created >= 1  # noqa: E731
        while not ready():
            if proc.poll() is not None:
                raise SystemExit(f"the labeller exited ({proc.returncode}) before the kill point")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = time.perf_counter() - start
        server.batch_polls, server.create_delay = 3, 0.0
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        rerun = time.perf_counter() - start
        labelled = len(read_sets(out, require_labels=True).sets) if out.exists() else 0
        return {"bench": "label_batches", "kill": kill, "sets": n, "batch_size": batch_size,
                "requests_submitted": server.batch_submitted, "duplicates": server.batch_submitted - n,
                "batches": server.batches_created, "labelled": labelled, "rerun_exit": code,
                "first_run_s": round(first, 2), "rerun_s": round(rerun, 2), "wall_s": round(first + rerun, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--kills", default="mid_poll,mid_create", help="comma-separated kill points")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for kill in args.kills.split(","):
        with tempfile.TemporaryDirectory(prefix="cactus-bench-label-") as folder:
            print(json.dumps(run_once(kill, args.sets, args.batch_size, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
