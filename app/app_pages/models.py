"""Models: the registry of trained models with their scores, threshold (and the validation sweep that chose it) and
training data; make one active, re-choose its threshold on another dataset, let it cluster a dataset, and compare
two models on a dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app import actions, charts, chrome, job_monitor, score_tables, state
from app.compare import agreement
from app.text import count
from cactus.errors import CactusError
from cactus.evaluation.metrics import METRICS
from cactus.inference.threshold import describe_cut
from db import (
    ModelInfo,
    activate_model,
    clear_dataset_threshold,
    latest_clusterings,
    set_dataset_threshold,
    set_sizes,
)
from db.errors import AccessError, StoreError
from jobs.queue import enqueue


def registry_table(found: list[ModelInfo]) -> None:
    names = {d.id: d.name for d in state.datasets()}
    rows = []
    for m in found:
        test = m.metrics.get("test") or {}
        rows.append({"active": "●" if m.active else "", "model": m.name, "mode": m.mode, "loss": m.loss,
                     "threshold": round(m.threshold, 3), **{f"test {k}": test.get(k) for k in METRICS},
                     "train sets": m.training.get("train_sets"), "dataset": names.get(m.dataset_id, ""),
                     "created": m.created_at.astimezone().strftime("%Y-%m-%d %H:%M"), "by": m.created_by or ""})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={f"test {k}": st.column_config.NumberColumn(f"test {k}", format="%.3f")
                                for k in METRICS})


def model_details(model: ModelInfo) -> None:
    st.markdown(f"**{model.name}** · {model.mode.upper()} · {model.loss} · backbone `{model.backbone}`")
    if model.active:
        st.success("This is the active model: Review shows its clusterings and similarities.", icon=":material/star:")
    elif st.button("Make it the active model", type="primary", key="models_activate", icon=":material/star:"):
        try:
            with state.writing("admin", "Activating models") as session:
                activate_model(session, model.id)
        except StoreError as exc:
            st.error(str(exc))
        else:
            st.toast(f"{model.name} is now the active model")
            st.rerun()
    test, validation = model.metrics.get("test") or {}, model.metrics.get("validation") or {}
    columns = st.columns(len(METRICS) + 1)
    columns[0].metric("Threshold", f"{model.threshold:+.2f}", border=True,
                      help="Average-link clustering joins entities above this cosine similarity (chosen on "
                           "validation).")
    for column, metric in zip(columns[1:], METRICS, strict=True):
        value, val = test.get(metric), validation.get(metric)
        column.metric(f"test {metric}", f"{value:.3f}" if value is not None else "–",
                      delta=f"validation {val:.3f}" if val is not None else None, delta_color="off",
                      delta_arrow="off", border=True)
    cut_caption(model)
    training = model.training
    human = {"reviewed": "people's clusterings of reviewed sets", "any": "people's clusterings of any corrected set"}
    sources = human.get(training.get("label_human", ""))
    facts = [f"{training[k]} {k.replace('_', ' ')}" for k in ("train_sets", "val_sets", "test_sets") if k in training]
    if training.get("epochs"):
        facts.append(f"{count(training['epochs'], 'epoch')} (best: {training.get('best_epoch', '?')})")
    labels = f"; labels: {sources}, else the teacher's, else reference" if sources else ""
    st.caption("Trained on " + (", ".join(facts) or "unrecorded data") + labels + f" · checkpoint `{model.checkpoint}`")
    history = training.get("history") or []
    chart = charts.validation_chart([{"phase": "validate", "epoch": row["epoch"], **(row.get("validation") or {})}
                                      for row in history if "epoch" in row])
    if chart is not None:
        st.plotly_chart(chart, key=f"models_history_{model.id}")
    sweep_curve(model)
    with st.expander("Training configuration"):
        st.json(training.get("config") or training, expanded=False)


def cut_caption(model: ModelInfo) -> None:
    """Which cut the model's validation chose, with both cuts' validation AMI (when its card recorded them)."""
    cut, scores = state.model_cut(model)
    if not scores:
        return
    at = {c: f"AMI {scores[c]['AMI']:.3f}" for c in ("threshold", "silhouette") if "AMI" in scores.get(c, {})}
    if cut == "silhouette":
        st.caption(f"Sets of 3 or more entities are cut **per set**, where their clusters have the highest silhouette "
                   f"(2 to 10 clusters): validation chose it ({at.get('silhouette', '?')}, against "
                   f"{at.get('threshold', '?')} at the threshold {model.threshold:+.2f} for every set).")
    else:
        st.caption(f"Every set is cut at the threshold: validation chose it ({at.get('threshold', '?')}, against "
                   f"{at.get('silhouette', '?')} cut per set where the silhouette is highest).")


FEW_SETS = 30
"""Below this many labelled sets a chosen threshold rests on a handful of sets, and the page says so."""


def sweep_curve(model: ModelInfo) -> None:
    """The validation score against the threshold, from the sweep that chose the card's threshold."""
    curve = state.sweep_curve(model)
    if curve is None:
        st.caption("Threshold sweep: not recorded (this model was trained before cactus kept the validation scores "
                   "at every threshold).")
        return
    st.plotly_chart(charts.sweep_chart(curve, model.threshold, "Validation score against the threshold"),
                    key=f"models_sweep_{model.id}")


def threshold_panel(model: ModelInfo) -> None:
    """The model's threshold on a chosen dataset: the card's, or one re-chosen on that dataset's labelled sets."""
    found = state.datasets()
    if not found:
        return
    st.subheader("Threshold on a dataset")
    by_id = {d.id: d for d in found}
    others = [d.id for d in found if d.id != model.dataset_id]
    if st.session_state.get("models_threshold_dataset") not in by_id:
        st.session_state["models_threshold_dataset"] = (others or list(by_id))[0]
    chosen = st.selectbox("Dataset", list(by_id), key="models_threshold_dataset",
                          format_func=lambda i: by_id[i].name + (" (trained on it)" if i == model.dataset_id else ""))
    name = by_id[chosen].name
    override = state.threshold_override(model.id, chosen)
    card_cut = describe_cut(model.threshold, state.model_cut(model)[0])
    if override is not None:
        st.info(f"On {name}, {model.name} uses **{override.describe()}**, re-chosen "
                f"{override.chosen_how()} of {name} "
                f"({override.created_at.astimezone():%Y-%m-%d %H:%M}); its card's ({card_cut}) applies on "
                "other datasets. Review, the predict job and Evaluate use it on this dataset.",
                icon=":material/tune:")
        if st.button("Use the card's threshold again", key="models_threshold_clear", icon=":material/undo:"):
            try:
                with state.writing("admin", "Changing a model's threshold") as session:
                    clear_dataset_threshold(session, model.id, chosen)
            except AccessError as exc:
                st.error(str(exc))
                return
            st.session_state.pop("models_rechosen", None)
            st.rerun()
    else:
        st.caption(f"On {name}, the card's {card_cut} applies (chosen on the validation sets the model was trained "
                   "with).")
    if st.button(f"Re-choose the threshold on {name}'s labelled sets", key="models_threshold_rechoose",
                 icon=":material/tune:",
                 help="Sweeps the threshold of average-link clustering on the dataset's labelled sets (people's "
                      f"clusterings of reviewed sets, else reference labels; the first {actions.RECHOOSE_MAX_SETS}) "
                      "with this model's similarities, compares the best threshold with a per-set cut (each set cut "
                      "where its silhouette is highest), and keeps the better for this model on this dataset."):
        sets = state.read(lambda session: actions.threshold_sets(session, chosen))
        if not sets:
            st.warning(f"{name} has no labelled sets to choose a threshold on: review some sets, or import sets "
                       "with reference clusters.")
            return
        try:
            loaded = state.loaded_model(model)
            with st.spinner(f"Scoring {count(len(sets), 'labelled set')} at every threshold…"), state.model_in_use():
                result = actions.rechoose_threshold(loaded, sets)
        except (CactusError, OSError) as exc:
            st.error(f"The model {model.name!r} could not be loaded: {exc}")
            return
        if not store_threshold(model, chosen, result.sweep.best_threshold, result.sets, labelled=True,
                               cut=result.cut.cut):
            return
        st.session_state["models_rechosen"] = (model.id, chosen, result)
        st.rerun()
    if st.button(f"Cut {name}'s sets without labels", key="models_threshold_unlabelled",
                 icon=":material/auto_fix_high:",
                 help="For a dataset with no labelled sets yet, far from the model's training data: cuts each set "
                      "of 3 or more entities where its clusters have the highest silhouette under this model (how "
                      "well each entity sits in its cluster against the nearest other; 2 to 10 clusters), and "
                      "smaller sets at the threshold whose clusterings of up to 64 of the dataset's sets have the "
                      "highest mean silhouette; keeps this for the model on this dataset. Off the home domain this "
                      "did better than one label-free threshold (docs/benchmarks.md); labelled sets choose better "
                      "when there are some."):
        unlabelled_threshold_chosen(model, chosen, name)
    rechosen = st.session_state.get("models_rechosen")
    if rechosen and rechosen[:2] == (model.id, chosen) and override is not None:
        result = rechosen[2]
        best, card = result.best, result.at_card
        other = "silhouette" if result.cut.cut == "threshold" else "threshold"
        st.caption(f"On these {count(result.sets, 'set')}: AMI {best['AMI']:.3f} with "
                   f"{describe_cut(result.sweep.best_threshold, result.cut.cut)}, "
                   f"{result.cut.scores[other]['AMI']:.3f} with {describe_cut(result.sweep.best_threshold, other)}, "
                   f"against {card['AMI']:.3f} with the card's {describe_cut(result.card_threshold, result.card_cut)} "
                   "(an upper bound: chosen and scored on the same sets).")
        if result.sets < FEW_SETS:
            st.warning(f"Only {count(result.sets, 'labelled set')}: the threshold rests on a handful of sets.")
        st.plotly_chart(charts.sweep_chart(result.sweep.as_rows(), result.sweep.best_threshold,
                                           f"Score against the threshold on {name}",
                                           marks=[(result.card_threshold, "card")]),
                        key=f"models_rechosen_{model.id}")


def unlabelled_threshold_chosen(model: ModelInfo, dataset_id: int, name: str) -> None:
    """Store a per-set cut for the model on a dataset, with the threshold for its small sets chosen on its sets
    without labels (then rerun the page)."""
    texts = state.read(lambda session: actions.sampled_set_texts(session, dataset_id))
    try:
        loaded = state.loaded_model(model)
        with st.spinner(f"Clustering {count(len(texts), 'set')} at every threshold…"), state.model_in_use():
            choice = actions.choose_threshold_unlabelled(loaded, texts)
    except (CactusError, OSError) as exc:
        st.error(f"The model {model.name!r} could not be loaded: {exc}")
        return
    if choice is None:
        st.warning(f"No set of {name} with 3 or more entities shows cluster structure at any threshold under "
                   f"{model.name}: nothing to choose from, the threshold stays as it is.")
        return
    if store_threshold(model, dataset_id, choice.threshold, choice.sets, labelled=False, cut="silhouette"):
        st.session_state.pop("models_rechosen", None)
        st.rerun()


def store_threshold(model: ModelInfo, dataset_id: int, threshold: float, sets: int, *, labelled: bool,
                    cut: str = "threshold") -> bool:
    """Keep a re-chosen threshold (and cut) for the model on the dataset (admins only); False, with the reason shown,
    if not."""
    try:
        with state.writing("admin", "Changing a model's threshold") as session:
            set_dataset_threshold(session, model.id, dataset_id, threshold, chosen_on_sets=sets, labelled=labelled,
                                  cut=cut)
    except AccessError as exc:
        st.error(str(exc))
        return False
    return True


def predict_panel(model: ModelInfo) -> None:
    found = state.datasets()
    if not found:
        return
    by_id = {d.id: d for d in found}
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    chosen = left.selectbox("Cluster the sets of", list(by_id), format_func=lambda i: by_id[i].name,
                            key="models_predict_dataset")
    if right.button("Cluster the sets it has not clustered yet", key="models_predict", icon=":material/hub:"):
        job = state.queue_job(lambda session: actions.predict_dataset(session, chosen, model.id),
                              needs="annotator", action="Running the model on a dataset")
        if job is not None:
            st.session_state["models_predict_job"] = job.id
    if st.session_state.get("models_predict_job"):
        job_monitor.job_monitor(st.session_state["models_predict_job"], key="models_predict")


def delete_panel(model: ModelInfo) -> None:
    with st.expander("Delete this model"):
        st.caption("Removes it from the registry with its stored clusterings. Its checkpoint folder is deleted too "
                   "when it lies in the store's artifacts folder (a folder you pointed to yourself is left on disk).")
        sure = st.checkbox(f"Yes, delete {model.name!r} and its files", key=f"models_delete_sure_{model.id}")
        if st.button("Delete", key="models_delete", disabled=not sure, icon=":material/delete:"):
            try:
                with state.writing("admin", "Deleting a model") as session:
                    done = actions.delete_model_files(session, model, state.db_url())
            except AccessError as exc:
                st.error(str(exc))
                return
            st.session_state.pop("models_choice", None)
            st.toast(done)
            st.rerun()


def stored_agreement(dataset_id: int, a: ModelInfo, b: ModelInfo) -> dict[str, Any] | None:
    """Mean ARI/AMI between the two models' stored clusterings of the dataset's sets that both clustered."""
    def load(session):
        sizes = set_sizes(session, dataset_id)
        return (latest_clusterings(session, list(sizes), "model", model_id=a.id),
                latest_clusterings(session, list(sizes), "model", model_id=b.id), sizes)

    left, right, sizes = state.read(load)
    both = sorted(set(left) & set(right))
    if not both:
        return None
    scores = [agreement(left[i].clusters, right[i].clusters, sizes[i]) for i in both]
    return {"sets": len(both), "ARI": float(np.mean([s["ARI"] for s in scores])),
            "AMI": float(np.mean([s["AMI"] for s in scores])),
            "identical": sum(s["ARI"] > 0.999999 for s in scores)}


def compare_panel(found: list[ModelInfo]) -> None:
    st.subheader("Compare two models")
    if len(found) < 2:
        st.caption("Register a second model (Train page) to compare two.")
        return
    datasets = {d.id: d for d in state.datasets()}
    by_id = {m.id: m for m in found}
    ids = list(by_id)
    columns = st.columns(3)
    first = columns[0].selectbox("Model A", ids, format_func=lambda i: by_id[i].name, key="models_a")
    second = columns[1].selectbox("Model B", ids, index=1, format_func=lambda i: by_id[i].name, key="models_b")
    dataset_id = columns[2].selectbox("On the dataset", list(datasets), format_func=lambda i: datasets[i].name,
                                      key="models_compare_dataset")
    if first == second:
        st.info("Choose two different models.")
        return
    together = stored_agreement(dataset_id, by_id[first], by_id[second])
    if together:
        st.caption(f"On the {count(together['sets'], 'set')} both have clustered: mean ARI {together['ARI']:.3f}, "
                   f"mean AMI {together['AMI']:.3f} between them; identical clusterings on "
                   f"{count(together['identical'], 'set')}.")
    if st.button("Score both on the test split", key="models_compare", icon=":material/leaderboard:"):
        job = state.queue_job(lambda session: enqueue(session, "evaluate", {
            "dataset_id": dataset_id, "model_ids": [first, second], "baselines": False}),
            needs="annotator", action="Running evaluations")
        if job is not None:
            st.session_state["models_compare_job"] = job.id
    job_id = st.session_state.get("models_compare_job")
    if job_id:
        info = job_monitor.job_monitor(job_id, key="models_compare")
        if info.status == "succeeded" and info.result:
            rows = info.result["rows"]
            score_tables.score_table(rows)
            st.plotly_chart(charts.score_bars(rows, f"{info.result.get('dataset', '')}, {info.result.get('sets')} "
                                                     f"{info.result.get('split')} sets"), key="models_compare_bars")


chrome.page_intro("models", "Trained models, their scores and threshold; the active one is what Review shows.")
job_monitor.active_jobs_banner()
models = state.models()
if not models:
    st.info("No model is registered yet: train one on the Train page (the demo trains one on first start).")
    chrome.link_to("train", "Train a model")
    st.stop()

registry_table(models)
by_id = {m.id: m for m in models}
active = next((m.id for m in models if m.active), models[0].id)
if st.session_state.get("models_choice") not in by_id:
    st.session_state["models_choice"] = active
chosen = st.selectbox("Model", list(by_id), key="models_choice",
                      format_func=lambda i: ("● " if by_id[i].active else "") + by_id[i].name)
model_details(by_id[chosen])
threshold_panel(by_id[chosen])
predict_panel(by_id[chosen])
delete_panel(by_id[chosen])
st.divider()
compare_panel(models)
