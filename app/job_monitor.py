"""Background jobs on a page: a live monitor with cancel and log, the recent jobs table, and the running-jobs banner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import streamlit as st

from app import access, state
from app.charts import loss_chart, validation_chart
from cactus.evaluation.metrics import METRICS
from db.errors import AccessError, ConflictError
from jobs.queue import JobInfo, cancel

POLL_S = 2.0
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "succeeded":
                ":green[:material/check_circle:]", "failed": ":red[:material/error:]", "cancelled": ":material/block:"}


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def worker_hint(info: JobInfo) -> None:
    """Warn when a job has waited a while and no job is running: probably no worker is started."""
    if info.status != "queued" or info.created_at is None:
        return
    waited = (datetime.now(UTC) - info.created_at).total_seconds()
    if waited > 15 and not state.jobs(status="running", limit=1):
        st.warning(f"Job {info.id} has waited {_ago(info.created_at)} and no job is running: is a worker started? "
                   "`cactus app` starts one; otherwise run `cactus worker` beside the app.",
                   icon=":material/hourglass_empty:")


def _render_job(info: JobInfo, key: str, charts: bool) -> None:
    icon = STATUS_ICONS.get(info.status, "")
    took = f" · {info.seconds:.0f} s" if info.seconds is not None else ""
    st.markdown(f"**{info.type} job {info.id}** · {icon} {info.status}{took}")
    if not info.finished:
        st.progress(min(1.0, max(0.0, info.progress)), text=info.message or info.status)
        worker_hint(info)
    elif info.status == "succeeded":
        st.progress(1.0, text=info.message or "done")
    elif info.status == "failed":
        st.error(f"Job {info.id} failed: {info.error or 'no reason recorded'}")
        if info.traceback:
            with st.expander("Traceback"):
                st.code(info.traceback, language="text")
    else:
        detail = info.message.removeprefix("cancelled").strip(" ;:")
        st.info(f"Job {info.id} was cancelled" + (f": {detail}" if detail else "."))
    if charts:
        history = info.metrics.get("history") or []
        left, right = st.columns(2)
        loss, validation = loss_chart(history), validation_chart(history)
        if loss is not None:
            left.plotly_chart(loss, key=f"{key}_loss_{info.id}")
        if validation is not None:
            right.plotly_chart(validation, key=f"{key}_val_{info.id}")
        scores = {k: v for k, v in info.metrics.items() if isinstance(v, (int, float)) and k.startswith(("val_",
                                                                                                          "test_"))}
        if scores:
            st.dataframe([{"scores": split, **{m: scores.get(f"{split}_{m}") for m in METRICS}}
                          for split in ("val", "test") if any(k.startswith(split) for k in scores)],
                         hide_index=True)
    if not info.finished and st.button("Cancel", key=f"{key}_cancel_{info.id}", icon=":material/stop_circle:"):
        try:
            who = access.identity()
            needs = "annotator" if info.created_by and info.created_by == who.name else "admin"
            with state.writing(needs, "Cancelling other people's jobs" if needs == "admin" else "Cancelling jobs"
                               ) as session:
                cancel(session, info.id)
            st.toast(f"Cancelling job {info.id}…")
        except (ConflictError, AccessError) as exc:
            st.warning(str(exc))
    if info.log_tail:
        with st.expander("Log"):
            st.code(info.log_tail[-6000:], language="text")


@st.fragment(run_every=POLL_S)
def _live_job(job_id: int, key: str, charts: bool) -> None:
    info = state.job(job_id)
    _render_job(info, key, charts)
    if info.finished:  # show the outcome everywhere on the page: a new model, a new clustering
        state.refresh()
        st.rerun()


def job_monitor(job_id: int, *, key: str, charts: bool = False) -> JobInfo:
    """A job's progress, live (polled every :data:`POLL_S` s) while it runs, with cancel and log."""
    info = state.job(job_id)
    if info.finished:
        _render_job(info, key, charts)
    else:
        _live_job(job_id, key, charts)
    return info


def jobs_table(found: Sequence[JobInfo]) -> None:
    """Recent jobs as a table."""
    if not found:
        st.caption("No jobs yet.")
        return
    st.dataframe(
        [{"job": j.id, "type": j.type, "status": j.status,
          "progress": round(100 * j.progress), "message": j.error if j.status == "failed" else j.message,
          "dataset": j.dataset_id, "queued": j.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
          "by": j.created_by or "",
          "took": f"{j.seconds:.0f} s" if j.seconds is not None else ""} for j in found],
        hide_index=True, width="stretch",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100,
                                                                   format="%d%%")},
    )


@st.fragment(run_every=POLL_S * 2)
def _active_jobs_live() -> None:
    running = state.jobs(status=["queued", "running"], limit=5)
    for info in running:
        label = "waiting in the queue" if info.status == "queued" else (info.message or info.status)
        st.progress(min(1.0, max(0.0, info.progress)), text=f"{info.type} job {info.id}: {label}")
    if not running and st.session_state.get("jobs_banner_seen"):
        st.session_state["jobs_banner_seen"] = False
        state.refresh()
        st.rerun()
    st.session_state["jobs_banner_seen"] = bool(running)


def model_in_training() -> str:
    """A sentence about a fine-tune that will make its model active when done ("" when there is none)."""
    pending = [j for j in state.jobs(type="finetune", status=["queued", "running"], limit=5)
               if j.params.get("activate", True)]
    if not pending:
        return ""
    return (f" A model is being trained (finetune job {pending[0].id}, {round(100 * pending[0].progress)}%); it "
            "becomes the active model when done.")


def active_jobs_banner() -> None:
    """Progress bars of the queued and running jobs (e.g. the demo model training on first start)."""
    if state.jobs(status=["queued", "running"], limit=1):
        with st.container(border=True):
            st.caption("Background jobs (details on the Train page)")
            _active_jobs_live()
