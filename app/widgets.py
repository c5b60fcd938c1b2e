"""Pieces of UI that several pages share: pickers, cluster cards, job monitors, charts and empty states.

Pages call these and stay a readable description of their layout. Session-state keys used here start with
the widget's purpose (``sets_``, ``dataset_``, ``job_``); page-only keys start with the page's name.
"""

from __future__ import annotations

import getpass
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import plotly.graph_objects as go
import streamlit as st

from app import state
from app.compare import assign_colors, cluster_label
from app.palette import color, tint
from cactus.evaluation.metrics import METRICS
from db import ClusteringView, DatasetInfo, ModelInfo, SetDetail, SetSummary
from db.errors import ConflictError
from jobs.queue import JobInfo, cancel

PAGES = {
    "review": "app_pages/review.py",
    "correct": "app_pages/correct.py",
    "data": "app_pages/data.py",
    "train": "app_pages/train.py",
    "models": "app_pages/models.py",
    "evaluate": "app_pages/evaluate.py",
}
POLL_S = 2.0
SET_LIST_LIMIT = 500
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "succeeded":
                ":green[:material/check_circle:]", "failed": ":red[:material/error:]", "cancelled": ":material/block:"}
SOURCE_TITLES = {"teacher": "Teacher (LLM)", "model": "CACTUS model", "reference": "Reference labels",
                 "human": "Corrected"}
#: Which clustering gives its colours to the others (the first one present), and the order of the cards.
COLOR_ANCHORS = ("teacher", "reference", "human", "model")
CARD_ORDER = ("teacher", "model", "reference", "human")


def page_intro(title: str, purpose: str, icon: str) -> None:
    """The page's configuration, title and purpose in a sentence; stops with the fix when the store is out of reach."""
    st.set_page_config(page_title=f"{title} · cactus", page_icon=icon, layout="wide")
    st.title(title)
    st.caption(purpose)
    problem = state.store_problem()
    if problem:
        st.error(problem, icon=":material/database:")
        st.stop()


def keep(*keys: str) -> None:
    """Keep these widgets' values when the user goes to another page and back (Streamlit drops them otherwise)."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def author() -> str:
    """Who makes the edits (the edit log records it): the name in the sidebar, default the login name."""
    if "author" not in st.session_state:
        st.session_state["author"] = os.environ.get("CACTUS_AUTHOR") or getpass.getuser() or "reviewer"
    keep("author")
    name = st.sidebar.text_input("Your name (kept in the edit log)", key="author").strip()
    return name or "reviewer"


# --- dataset and set pickers -----------------------------------------------------------------------------------


def _int_param(name: str) -> int | None:
    value = st.query_params.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def choose_dataset(where: st.delta_generator.DeltaGenerator | None = None, *, label: str = "Dataset"
                   ) -> DatasetInfo | None:
    """A dataset picker that remembers the choice across pages and reloads; an empty state when there is none."""
    target = where if where is not None else st.sidebar
    found = state.datasets()
    if not found:
        target.info("The store has no datasets yet.")
        target.page_link(PAGES["data"], label="Upload sets or load the demo", icon=":material/upload_file:")
        return None
    by_id = {d.id: d for d in found}
    remembered = st.session_state.get("dataset_current") or _int_param("dataset")
    current = st.session_state.get("dataset_choice")
    st.session_state["dataset_choice"] = current if current in by_id else (
        remembered if remembered in by_id else found[0].id)
    choice = target.selectbox(label, list(by_id), key="dataset_choice",
                              format_func=lambda i: f"{by_id[i].name} ({by_id[i].sets} sets, {by_id[i].reviewed} "
                                                    "reviewed)")
    if st.session_state.get("dataset_current") != choice:
        st.session_state.pop("sets_current", None)
    st.session_state["dataset_current"] = choice
    st.query_params["dataset"] = str(choice)
    return by_id[choice]


@dataclass(frozen=True)
class SetFilters:
    """What the set list is narrowed to (the arguments of :func:`db.list_sets`)."""

    search: str = ""
    reviewed: bool | None = None
    split: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    min_disagreement: float | None = None
    order: str = "position"

    def query(self) -> dict[str, object]:
        return {"search": self.search or None, "reviewed": self.reviewed, "split": self.split,
                "min_size": self.min_size, "max_size": self.max_size, "min_disagreement": self.min_disagreement,
                "order": self.order}


ORDERS = {"position": "import order", "size": "largest first", "disagreement": "most disagreement first"}


FILTER_DEFAULTS = {"sets_search": "", "sets_status": "All", "sets_disagree": 0, "sets_split": "any",
                   "sets_order": "position"}


def set_filters(dataset: DatasetInfo) -> SetFilters:
    """The filter widgets of the set list (sidebar); they keep their values from page to page."""
    low, high = state.size_range(dataset.id)
    for key, default in FILTER_DEFAULTS.items():
        st.session_state.setdefault(key, default)
    size_now = st.session_state.get("sets_size")
    if not (isinstance(size_now, (tuple, list)) and low <= size_now[0] <= size_now[1] <= high):
        st.session_state["sets_size"] = (low, high)
    keep(*FILTER_DEFAULTS, "sets_size")
    bar = st.sidebar
    search = bar.text_input("Search", key="sets_search", placeholder="set id or entity text")
    status = bar.segmented_control("Review status", ["All", "Not reviewed", "Reviewed"], key="sets_status") or "All"
    with bar.expander("More filters", expanded=False):
        disagree = st.slider("Teacher and model disagree on at least this share of entity pairs (%)", 0, 100,
                             step=5, key="sets_disagree",
                             help="0 turns the filter off. Sets lacking a teacher or a model clustering are left "
                                  "out when it is on.")
        split = st.selectbox("Split", ["any", "train", "val", "test", "unassigned"], key="sets_split")
        size = st.slider("Entities in the set", low, high, key="sets_size") if high > low else (low, high)
        order = st.selectbox("Order", list(ORDERS), format_func=ORDERS.__getitem__, key="sets_order")
    return SetFilters(search=search.strip(), reviewed={"All": None, "Not reviewed": False, "Reviewed": True}[status],
                      split=None if split == "any" else split,
                      min_size=size[0] if size[0] > low else None, max_size=size[1] if size[1] < high else None,
                      min_disagreement=disagree / 100 if disagree else None, order=order)


def _set_label(summary: SetSummary) -> str:
    parts = [summary.name, f"{summary.size} entities"]
    if summary.reviewed:
        parts.append("✓ reviewed")
    if summary.disagreement is not None:
        parts.append(f"{summary.disagreement:.0%} pairs apart")
    return " · ".join(parts)


def _step(ids: Sequence[int], delta: int) -> None:
    current = st.session_state.get("sets_choice")
    index = ids.index(current) if current in ids else 0
    chosen = ids[max(0, min(len(ids) - 1, index + delta))]
    st.session_state["sets_choice"] = chosen
    st.session_state["sets_current"] = chosen


def choose_set(dataset: DatasetInfo) -> SetSummary | None:
    """The filtered set list in the sidebar with previous/next (keys P and N); None when nothing matches."""
    filters = set_filters(dataset)
    page = state.set_page(dataset.id, **filters.query(), limit=SET_LIST_LIMIT)
    if not page.items:
        st.sidebar.info("No set matches these filters: clear the search or widen the filters.")
        return None
    by_id = {s.id: s for s in page.items}
    ids = list(by_id)
    remembered = st.session_state.get("sets_current") or _int_param("set")
    current = st.session_state.get("sets_choice")
    # assigned on every run: a widget of the same key on another page would otherwise start from its default
    st.session_state["sets_choice"] = current if current in by_id else (remembered if remembered in by_id else ids[0])
    shown = f"{page.total} sets match" if page.total <= SET_LIST_LIMIT else (
        f"showing {SET_LIST_LIMIT} of {page.total} matching sets; narrow the search")
    choice = st.sidebar.selectbox(f"Set ({shown})", ids, key="sets_choice", format_func=lambda i: _set_label(by_id[i]))
    left, right = st.sidebar.columns(2)
    position = ids.index(choice)
    left.button("Previous", key="sets_prev", on_click=_step, args=(ids, -1), disabled=position == 0,
                shortcut="P", width="stretch")
    right.button("Next", key="sets_next", on_click=_step, args=(ids, 1), disabled=position == len(ids) - 1,
                 shortcut="N", width="stretch")
    st.session_state["sets_current"] = choice
    st.session_state["sets_ids"] = ids
    st.query_params["set"] = str(choice)
    return by_id[choice]


def advance_set() -> None:
    """Move the set picker to the next set of the list it shows (call from a button's ``on_click``)."""
    ids = st.session_state.get("sets_ids") or []
    if ids:
        _step(ids, 1)


# --- clusterings and cards ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A clustering as shown on a page: where it comes from, its title and the colour of each cluster."""

    source: str
    title: str
    clustering: ClusteringView
    colors: list[int]

    @property
    def clusters(self) -> tuple[tuple[int, ...], ...]:
        return self.clustering.clusters

    @property
    def names(self) -> tuple[str, ...]:
        return self.clustering.names


def shown_clusterings(detail: SetDetail, model: ModelInfo | None) -> dict[str, Shown]:
    """The set's newest teacher, active-model, reference and human clusterings, coloured consistently."""
    found: dict[str, ClusteringView] = {}
    for source in CARD_ORDER:
        if source == "model":
            clustering = detail.latest("model", model.id) if model is not None else None
        else:
            clustering = detail.latest(source)
        if clustering is not None:
            found[source] = clustering
    anchors = [s for s in COLOR_ANCHORS if s in found]
    palette = dict(zip(anchors, assign_colors([found[s].clusters for s in anchors]), strict=True))
    out: dict[str, Shown] = {}
    for source in CARD_ORDER:
        if source in found:
            out[source] = Shown(source, _title(source, found[source]), found[source], palette[source])
    return out


def _title(source: str, clustering: ClusteringView) -> str:
    who = clustering.producer
    if source == "reference":
        return SOURCE_TITLES[source]
    return f"{SOURCE_TITLES[source]}: {who}" if who else SOURCE_TITLES[source]


def cluster_cards(shown: Shown, texts: Sequence[str], *, flagged: frozenset[int] = frozenset(),
                  numbered: bool = False) -> None:
    """Coloured cards, one per cluster, with the entities ``flagged`` as placed differently marked ⚑."""
    unplaced = set(shown.clustering.details.get("unplaced") or [])
    cards = []
    for c, members in enumerate(shown.clusters):
        hue = color(shown.colors[c])
        label = html.escape(cluster_label(shown.names, c))
        number = f"#{c + 1} " if numbered else ""
        items = []
        for i in members:
            text = html.escape(texts[i])
            style = "margin:1px 0;"
            if i in flagged:
                style += "background:#fff1b8;border-radius:4px;padding:0 4px;font-weight:600;"
                text = f"⚑ {text}"
            if i in unplaced:
                text += " <span style='color:#8a8a8a;font-style:italic'>(left out by the teacher)</span>"
            items.append(f"<li style='{style}'>{text}</li>")
        cards.append(
            f"<div class='cactus-card' style='border-left:6px solid {hue};background:{tint(hue)};border-radius:8px;"
            f"padding:8px 12px;margin:0 0 8px 0'><div style='font-weight:650;color:#1f2933'>"
            f"<span style='color:{hue}'>●</span> {number}{label} <span style='color:#6b7280;font-weight:400'>"
            f"· {len(members)}</span></div><ul style='margin:4px 0 0 0;padding-left:18px'>{''.join(items)}</ul></div>"
        )
    st.markdown("".join(cards), unsafe_allow_html=True)


def clustering_caption(clustering: ClusteringView) -> str:
    """When a clustering was made, and by what."""
    when = clustering.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    extra = ""
    if clustering.source == "model" and "threshold" in clustering.details:
        extra = f" · threshold {clustering.details['threshold']:+.2f}"
    return f"{len(clustering.clusters)} clusters · {when}{extra}"


# --- jobs --------------------------------------------------------------------------------------------------------


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


def loss_chart(history: Sequence[dict]) -> go.Figure | None:
    """The training (and pretraining) loss against optimizer steps, from a job's ``metrics["history"]``."""
    figure = go.Figure()
    for phase, name in (("pretrain", "pretraining loss"), ("train", "training loss")):
        points = [p for p in history if p.get("phase") == phase and p.get("loss") is not None]
        if points:
            figure.add_scatter(x=[p.get("step") for p in points], y=[p["loss"] for p in points], mode="lines",
                               name=name)
    if not figure.data:
        return None
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Loss",
                         xaxis_title="step", legend={"orientation": "h", "y": -0.25})
    return figure


def validation_chart(history: Sequence[dict]) -> go.Figure | None:
    """Validation scores after each epoch."""
    points = [p for p in history if p.get("phase") == "validate"]
    if not points:
        return None
    figure = go.Figure()
    for k, metric in enumerate(METRICS):
        if any(metric in p for p in points):
            figure.add_scatter(x=[p.get("epoch") for p in points], y=[p.get(metric) for p in points],
                               mode="lines+markers", name=metric, line={"color": color(k)})
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Validation",
                         xaxis={"title": "epoch", "dtick": 1}, yaxis_range=[0, 1.02],
                         legend={"orientation": "h", "y": -0.25})
    return figure


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
        st.info(f"Job {info.id} was cancelled. {info.message}")
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
            with state.writing() as session:
                cancel(session, info.id)
            st.toast(f"Cancelling job {info.id}…")
        except ConflictError as exc:
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


def score_table(rows: Sequence[dict]) -> None:
    """A Table-2-style table: one row per method, the best score of each metric in bold."""
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    best = {m: max(r[m] for r in rows if r.get(m) is not None) for m in metrics}

    def cell(row: dict, metric: str) -> str:
        value = row.get(metric)
        if value is None:
            return "–"
        text = f"{100 * value:.1f}"
        return f"**{text}**" if abs(value - best[metric]) < 1e-12 else text

    header = "| method | " + " | ".join(metrics) + " |\n|---|" + "---:|" * len(metrics) + "\n"
    body = "".join(f"| {str(r['method']).replace('|', '/')} | " + " | ".join(cell(r, m) for m in metrics) + " |\n"
                   for r in rows)
    st.markdown(header + body)
    st.caption("Scores × 100, averaged over sets; the best of each column in bold.")


def score_bars(rows: Sequence[dict], title: str = "") -> go.Figure:
    """Grouped bars: one group per metric, one bar per method."""
    figure = go.Figure()
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    for k, row in enumerate(rows):
        figure.add_bar(x=metrics, y=[row.get(m) for m in metrics], name=row["method"], marker_color=color(k),
                       hovertemplate="%{x}: %{y:.3f}<extra>" + html.escape(row["method"]) + "</extra>")
    figure.update_layout(barmode="group", height=360, title=title, yaxis_range=[0, 1],
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.15})
    return figure
