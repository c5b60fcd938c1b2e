"""How long the first start takes until the demo is ready, and whether the demo model beats the baselines (issue 13).

What ``cactus app`` does on an empty store, timed from the user's side: import the bundled demo into a fresh
SQLite store and queue the demo fine-tune and the prediction of every demo set (:func:`app.bootstrap.bootstrap`),
then one ``cactus worker --exit-when-idle`` process runs both jobs. "ready" is when the last demo set has the
model's clustering. Streamlit's own start-up is not counted: it runs beside the worker.

Then, not timed, ``cactus baseline`` on the same demo folder (frozen MiniLM: K-Means, Spectral, Agglomerative) and
the demo model's test scores from its fine-tune job, on the same 60 test sets.

    python bench/demo_ready.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from app.bootstrap import DEMO_TRAIN, bootstrap
    from cactus.demo import TOYS
    from db.models import JobRow
    from db.session import session_scope

    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "load_average_at_start": round(os.getloadavg()[0], 2)}
    cactus = Path(sys.executable).with_name("cactus")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.db"
        env = {**os.environ, "CACTUS_DB_URL": url, "CACTUS_JOBS_DIR": f"{tmp}/jobs"}
        start = time.perf_counter()
        setup = bootstrap(url)
        assert setup is not None and len(setup.job_ids) == 2, setup
        imported = time.perf_counter() - start
        subprocess.run([str(cactus), "worker", "--exit-when-idle", "--quiet", "--poll-interval", "0.2"],
                       env=env, check=True)
        ready = time.perf_counter() - start
        with session_scope(url) as session:
            jobs = {job.type: job for job in session.query(JobRow).filter(JobRow.id.in_(setup.job_ids))}
            statuses = {kind: job.status for kind, job in jobs.items()}
            spans = {kind: round((job.finished_at - job.started_at).total_seconds(), 1) for kind, job in
                     jobs.items() if job.finished_at and job.started_at}
            finetune_result = dict(jobs["finetune"].result or {})
        print(json.dumps({"row": "first start", "demo_train": DEMO_TRAIN, "import_s": round(imported, 1),
                          "job_seconds": spans, "statuses": statuses, "ready_s": round(ready, 1),
                          "ready_min": round(ready / 60, 2)} | machine), flush=True)
        out = Path(tmp) / "baselines.json"
        subprocess.run([str(cactus), "baseline", str(TOYS), "--out", str(out)], env=env, check=True,
                       capture_output=True)
        baselines = json.loads(out.read_text())["rows"]
    test = finetune_result.get("test") or {}
    print(json.dumps({"row": "demo model, test split", **test}))
    best: dict[str, tuple[float, str]] = {}
    for row in baselines:
        for metric in ("AMI", "ARI", "NMI"):
            value = row.get(metric)
            if isinstance(value, (int, float)) and value > best.get(metric, (-2.0, ""))[0]:
                best[metric] = (float(value), str(row.get("method")))
        print(json.dumps({"row": "baseline, test split", **{k: v for k, v in row.items() if k != "ci95"}}))
    for metric, (value, method) in best.items():
        if metric in test:
            print(json.dumps({"metric": metric, "demo_model": round(test[metric], 4), "best_baseline": round(value, 4),
                              "best_baseline_method": method, "margin": round(test[metric] - value, 4)}))


if __name__ == "__main__":
    main()
