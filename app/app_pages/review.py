"""Review: one set's clusterings side by side (teacher, active model, reference), their agreement, and the model's
similarity heatmap with the SIA vs NIA comparison of the paper's case study."""

from __future__ import annotations

import itertools

import streamlit as st

from app import actions, chrome, cluster_cards, job_monitor, pickers, state
from app.compare import agreement, differences
from app.heatmap import similarity_figure
from cactus.encoders.config import ATTENTION_MODES
from cactus.errors import CactusError
from cactus.inference.threshold import describe_cut
from db import ModelInfo, SetDetail, applied_cut
from db.errors import AccessError

MODE_NAMES = {name: mode.label for name, mode in ATTENTION_MODES.items()}
#: Which two clusterings the disagreement marks compare, the first pair present.
PAIRS = (("teacher", "model"), ("reference", "model"), ("teacher", "reference"), ("human", "model"),
         ("human", "teacher"), ("human", "reference"))
TEACHER_HOWTO = ("To ask the teacher (Claude), set `ANTHROPIC_API_KEY` where you start the app and restart it: "
                 "`export ANTHROPIC_API_KEY=sk-ant-...` then `cactus app`. The key is read from the environment "
                 "only and never stored; everything else works without it.")


def set_header(detail: SetDetail) -> None:
    status = f"✓ reviewed by {detail.reviewed_by}" if detail.reviewed else "not reviewed yet"
    st.subheader(f"Set {detail.name}")
    st.caption(f"{len(detail.entities)} {detail.noun} · split {detail.split} · {status} · dataset "
               f"{detail.dataset_name}")


def pending_job(kind: str, detail: SetDetail) -> None:
    """The job this page started for this set (teacher), live until it ends."""
    pending: dict = st.session_state.setdefault("review_jobs", {})
    job_id = pending.get((kind, detail.id))
    if job_id is None:
        return
    info = job_monitor.job_monitor(job_id, key=f"review_{kind}")
    if info.finished:
        pending.pop((kind, detail.id), None)


def teacher_button(detail: SetDetail) -> None:
    if not state.teacher_key_set():
        st.button("Ask the teacher for this set", icon=":material/psychology:", disabled=True,
                  help="ANTHROPIC_API_KEY is not set: " + TEACHER_HOWTO)
        return
    if st.button("Ask the teacher for this set", icon=":material/psychology:",
                 help="Queue a label job: Claude clusters this set (needs a worker; `cactus app` starts one)."):
        job = state.queue_job(lambda session: actions.ask_teacher(session, detail), "Could not queue the teacher",
                              needs="admin", action="Asking the teacher")
        if job is not None:
            st.session_state.setdefault("review_jobs", {})[("teacher", detail.id)] = job.id


def predict_button(detail: SetDetail, model: ModelInfo | None) -> None:
    if model is None:
        st.button("Predict with the model", icon=":material/hub:", disabled=True,
                  help="No model is active: train one on the Train page or activate one on the Models page.")
        return
    override = state.threshold_override(model.id, detail.dataset_id)
    where = "re-chosen for this dataset" if override is not None else "of its card"
    if st.button("Predict with the model", icon=":material/hub:",
                 help=f"Cluster this set with the active model {model.name!r} at the threshold (or per-set cut) "
                      f"{where} (given under the heatmap) and store the result."):
        try:
            loaded = state.loaded_model(model)
            with (st.spinner(f"Clustering with {model.name}…"), state.model_in_use(),
                  state.writing("annotator", "Clustering sets with the model") as session):
                actions.predict_set(session, detail, model, loaded, override)
            st.rerun()
        except AccessError as exc:
            st.error(str(exc))
        except (CactusError, OSError) as exc:
            st.error(f"The model {model.name!r} could not cluster this set: {exc}. Activate another model on the "
                     "Models page, or train one.")


def domain_banner(model: ModelInfo | None, dataset_id: int, sets: int) -> None:
    """Warn when this dataset's texts are far from the data the active model was trained on."""
    if model is None:
        return
    try:
        warning = state.domain_warning(model, dataset_id, sets)
    except (CactusError, OSError):
        return  # the heatmap below says the model cannot be loaded
    if warning:
        st.warning(f"The active model {model.name!r}: {warning[0].upper()}{warning[1:]}",
                   icon=":material/travel_explore:")


def agreement_row(shown: dict[str, cluster_cards.Shown], size: int) -> tuple[str, str] | None:
    """ARI and AMI of every pair of clusterings shown; returns the pair whose differences are marked."""
    present = [s for s in cluster_cards.CARD_ORDER if s in shown]
    pairs = [(a, b) for a, b in itertools.combinations(present, 2)]
    if not pairs:
        return None
    columns = st.columns(len(pairs))
    for column, (a, b) in zip(columns, pairs, strict=True):
        scores = agreement(shown[a].clusters, shown[b].clusters, size)
        column.metric(f"{a.capitalize()} vs {b}: ARI", f"{scores['ARI']:.2f}", delta=f"AMI {scores['AMI']:.2f}",
                      delta_color="off", delta_arrow="off", border=True,
                      help="Adjusted Rand index and adjusted mutual information: 1 for the same clustering, about 0 "
                           "for chance agreement.")
    return next(((a, b) for a, b in PAIRS if a in shown and b in shown), None)


def clustering_cards(detail: SetDetail, shown: dict[str, cluster_cards.Shown], marked: frozenset[int],
                     model: ModelInfo | None) -> None:
    sources = ["teacher", "model", *[s for s in ("reference", "human") if s in shown]]
    for column, source in zip(st.columns(len(sources)), sources, strict=True):
        with column:
            if source in shown:
                st.markdown(f"**{shown[source].title}**")
                st.caption(cluster_cards.clustering_caption(shown[source].clustering))
                cluster_cards.cluster_cards(shown[source], detail.texts, flagged=marked)
            elif source == "teacher":
                st.markdown(f"**{cluster_cards.SOURCE_TITLES['teacher']}**")
                st.info("The teacher has not clustered this set yet. " + (
                    "Ask it with the button above." if state.teacher_key_set() else TEACHER_HOWTO))
            else:
                st.markdown(f"**{cluster_cards.SOURCE_TITLES['model']}**")
                if model is None:
                    st.info("No model is active yet." + (job_monitor.model_in_training() or " Train one on the Train "
                                                         "page, or activate one on the Models page."))
                else:
                    st.info(f"The active model {model.name!r} has not clustered this set yet: press "
                            "**Predict with the model**.")


def differences_list(detail: SetDetail, shown: dict[str, cluster_cards.Shown], pair: tuple[str, str]) -> frozenset[int]:
    a, b = (shown[s] for s in pair)
    found = differences(a.clusters, a.names, b.clusters, b.names, len(detail.entities))
    if not found:
        st.success(f"The {pair[0]} and the {pair[1]} agree on every entity of this set.")
        return frozenset()
    with st.expander(f"⚑ {len(found)} of {len(detail.entities)} entities are placed differently by the {pair[0]} "
                     f"and the {pair[1]}", expanded=False):
        st.dataframe([{"entity": detail.texts[d.entity], pair[0]: d.left, pair[1]: d.right,
                       "pairs that differ": f"{d.share:.0%}"} for d in found], hide_index=True, width="stretch")
    return frozenset(d.entity for d in found)


def heatmap(detail: SetDetail, shown: dict[str, cluster_cards.Shown], model: ModelInfo | None) -> None:
    st.subheader("Similarities seen by the model")
    if model is None:
        st.info("The heatmap shows the active model's similarities between entities. No model is active yet."
                + job_monitor.model_in_training())
        chrome.link_to("train", "Train a model")
        return
    other = "nia" if model.mode != "nia" else "sia"
    left, right = st.columns(2)
    outline_options = [s for s in cluster_cards.CARD_ORDER if s in shown]
    outline = None
    if outline_options:
        # a clustering that appears (e.g. after "Predict with the model") or a click on the selected option must
        # not leave the control with nothing selected: fall back to the first clustering shown
        if st.session_state.get("review_outline") not in outline_options:
            st.session_state["review_outline"] = outline_options[0]
        outline = left.segmented_control("Order and outline by", outline_options, key="review_outline",
                                         format_func=lambda s: cluster_cards.SOURCE_TITLES[s])
    else:
        left.caption("No clustering of this set yet: the heatmap is ordered and outlined by the model's own clusters "
                     "at its threshold.")
    if st.session_state.get("review_mode") not in (model.mode, other):
        st.session_state["review_mode"] = model.mode
    mode = right.segmented_control("Embeddings of the same model", [model.mode, other], key="review_mode",
                                   format_func=lambda m: m.upper() + (" (as trained)" if m == model.mode else ""),
                                   help=" · ".join(f"{m.upper()}: {MODE_NAMES.get(m, m)}" for m in (model.mode, other))
                                   + ". The paper's case study (Figure 5): the same weights with and without "
                                     "attention between the entities of the set.") or model.mode
    try:
        with st.spinner("Computing similarities…"):
            sims = {m: state.similarity(model.checkpoint, tuple(detail.texts), m) for m in (model.mode, other)}
            loaded = state.loaded_model(model)
            card_threshold, card_cut = loaded.threshold, loaded.cut
    except (CactusError, OSError) as exc:
        st.error(f"The active model {model.name!r} cannot be loaded from {model.checkpoint}: {exc}. Activate another "
                 "model on the Models page.")
        return
    override = state.threshold_override(model.id, detail.dataset_id)
    applied = applied_cut(card_threshold, card_cut, override)
    size = len(detail.entities)
    judge = next((s for s in ("human", "teacher", "reference") if s in shown), None)
    outcomes = {o.mode: o for o in actions.mode_outcomes(sims, applied, shown[judge].clusters if judge else None,
                                                         size)}
    threshold = outcomes[mode].threshold  # under a per-set cut, this set's own
    if outline is not None and outline in shown:
        clusters, names, colors = shown[outline].clusters, shown[outline].names, shown[outline].colors
        title = f"{MODE_NAMES.get(mode, mode)} · outlined by the {outline}'s clusters"
    else:
        clusters = outcomes[mode].clusters
        names, colors = [""] * len(clusters), list(range(len(clusters)))
        title = f"{MODE_NAMES.get(mode, mode)} · outlined by its own clusters at the threshold"
    figure = similarity_figure(sims[mode], detail.texts, clusters, names, colors, threshold=threshold,
                               title=title)
    st.plotly_chart(figure, key="review_heatmap", config={"displaylogo": False})
    if applied.cut == "threshold":
        st.caption(f"At the threshold {threshold:+.2f}, " + "; ".join(
            f"{o.mode.upper()} embeddings give {len(o.clusters)} clusters"
            + (f" (ARI {o.ari:.2f} against the {judge})" if o.ari is not None else "") for o in outcomes.values())
            + ". Warm cells lie above the threshold: average-link clustering tends to join those pairs.")
    else:
        st.caption("Cut per set where the silhouette is highest: " + "; ".join(
            f"{o.mode.upper()} embeddings at {o.threshold:+.2f} give {len(o.clusters)} clusters"
            + (f" (ARI {o.ari:.2f} against the {judge})" if o.ari is not None else "") for o in outcomes.values())
            + ". Warm cells lie above this set's threshold: average-link clustering joins those pairs first.")
    if override is not None:
        st.caption(f"{applied.describe().capitalize()} was re-chosen for {model.name} {override.chosen_how()} of "
                   f"{detail.dataset_name} (Models page); its card's: {describe_cut(card_threshold, card_cut)}.")


chrome.page_intro("review", "Compare how the teacher (an LLM) and the CACTUS model cluster each set, and where "
                  "they disagree.")
job_monitor.active_jobs_banner()
dataset = pickers.choose_dataset()
if dataset is None:
    st.info("Upload entity sets on the Data page (or load the bundled demo) to start reviewing.")
    st.stop()
summary = pickers.choose_set(dataset)
if summary is None:
    st.info("No set matches the filters in the sidebar.")
    st.stop()

detail = state.set_detail(summary.id)
model = state.active()
shown = cluster_cards.shown_clusterings(detail, model)

set_header(detail)
domain_banner(model, dataset.id, dataset.sets)
with st.container(horizontal=True):
    teacher_button(detail)
    predict_button(detail, model)
    chrome.link_to("correct", "Correct this set")
pending_job("teacher", detail)

pair = agreement_row(shown, len(detail.entities))
marked = differences_list(detail, shown, pair) if pair else frozenset()
clustering_cards(detail, shown, marked, model)
if marked:
    st.caption(f"⚑ marks entities that the {pair[0]} and the {pair[1]} place with different companions.")
st.divider()
heatmap(detail, shown, model)
