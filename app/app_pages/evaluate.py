"""Evaluate: the paper's Table 2 for a dataset: trained models against the unsupervised baselines (K-Means,
Spectral, Agglomerative on frozen embeddings) on the test split, as a table and a bar chart."""

from __future__ import annotations

import streamlit as st

from app import charts, chrome, job_monitor, pickers, score_tables, state
from db import DatasetInfo
from jobs.queue import JobInfo, enqueue


def run_form(dataset: DatasetInfo) -> None:
    found = state.models()
    by_id = {m.id: m for m in found}
    default = [m.id for m in found if m.active]
    chosen = st.multiselect("Models", list(by_id), default=default, key="evaluate_models",
                            format_func=lambda i: ("● " if by_id[i].active else "") + by_id[i].name)
    left, middle, right = st.columns(3)
    baselines = left.toggle("Unsupervised baselines", value=True, key="evaluate_baselines",
                            help="K-Means, Spectral and Agglomerative clustering of frozen embeddings, with the number "
                                 "of clusters (or threshold) chosen on validation.")
    backbone = middle.text_input("Baselines' encoder", value="minilm", key="evaluate_backbone", disabled=not baselines,
                                 help="'minilm' (packaged) or a local encoder folder.")
    split = right.selectbox("Split", ["test", "val", "train"], key="evaluate_split")
    if not chosen and not baselines:
        st.info("Choose at least one model, or turn the baselines on.")
        return
    if st.button("Run the evaluation", type="primary", icon=":material/leaderboard:", key="evaluate_run"):
        params = {"dataset_id": dataset.id, "model_ids": list(chosen), "split": split, "baselines": baselines,
                  "backbone": backbone.strip() or "minilm"}
        job = state.queue_job(lambda session: enqueue(session, "evaluate", params), "The evaluation was not queued",
                              needs="annotator", action="Running evaluations")
        if job is not None:
            st.session_state["evaluate_job"] = job.id


def report(info: JobInfo) -> None:
    result = info.result or {}
    rows = result.get("rows") or []
    if not rows:
        st.info("This evaluation produced no rows.")
        return
    st.markdown(f"**{result.get('dataset', '')}**: {result.get('sets')} {result.get('split')} sets · job {info.id} · "
                f"{info.finished_at.astimezone().strftime('%Y-%m-%d %H:%M') if info.finished_at else ''}")
    for note in result.get("notes") or []:
        st.warning(note, icon=":material/info:")
    score_tables.score_table(rows)
    rechosen = [r for r in rows if r.get("threshold_source") == "dataset"]
    if rechosen:
        st.caption("Scored at a threshold re-chosen on this dataset (Models page) instead of its card's: "
                   + "; ".join(f"{r['method']} on {r.get('threshold_chosen_on_sets', '?')} "
                               + ("labelled sets" if r.get("threshold_labelled", True) else "sets, without labels")
                               for r in rechosen)
                   + ". Labelled sets may include the ones scored here, which makes those scores an upper bound.")
    st.plotly_chart(charts.score_bars(rows), key=f"evaluate_bars_{info.id}")


chrome.page_intro("evaluate", "Score models and the unsupervised baselines on a dataset's test split (NMI, AMI, "
                  "RI, ARI, F1 averaged over sets, as the paper's Table 2).")
dataset = pickers.choose_dataset()
if dataset is None:
    st.info("Add a dataset on the Data page first.")
    st.stop()

run_form(dataset)
current = st.session_state.get("evaluate_job")
if current:
    info = job_monitor.job_monitor(current, key="evaluate_job")
    if info.status == "succeeded":
        report(info)
        st.session_state.pop("evaluate_job", None)
        st.stop()

past = [j for j in state.jobs(type="evaluate", dataset_id=dataset.id, status="succeeded", limit=20)]
if past:
    st.subheader("Reports")
    by_id = {j.id: j for j in past}
    chosen = st.selectbox("Report", list(by_id), key="evaluate_report",
                          format_func=lambda i: f"job {i} · {by_id[i].result.get('split', '')} · "
                                                + ", ".join(r["method"] for r in by_id[i].result.get("rows", [])))
    report(by_id[chosen])
else:
    st.caption(f"No evaluation of {dataset.name} yet.")
