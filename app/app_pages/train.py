"""Train: fine-tune a CACTUS model on a dataset's best labels (reviewed sets, then the teacher's, then reference
labels) as a background job, and follow it live: progress, loss, validation scores, log; the list of jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app import chrome, job_monitor, pickers, state
from cactus.encoders.config import ATTENTION_MODES, MODES
from cactus.inference.per_set_cut import SILHOUETTE_KMAX
from cactus.losses.registry import LOSS_NAMES, LOSSES
from cactus.training.config import TRAIN_CUTS
from db import DatasetInfo, LabelSummary, ModelInfo
from jobs.queue import enqueue

MODE_HELP = {name: mode.help for name, mode in ATTENTION_MODES.items()}
LOSS_HELP = {name: loss.label for name, loss in LOSSES.items()}
BACKBONE_LR_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0)
LEARNING_RATES = (1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3)
CUT_HELP = {"auto": "the better of the two on the validation split", "threshold": "one threshold for every set",
            "silhouette": f"per set, at its highest silhouette (2 to {SILHOUETTE_KMAX} clusters)"}
SOURCES = {"human": "reviewed by people", "teacher": "the teacher's", "reference": "reference labels",
           "unlabelled": "no label"}


def label_counts(dataset: DatasetInfo) -> tuple[str, LabelSummary]:
    human = st.radio("People's clusterings", ["reviewed", "any"], horizontal=True, key="train_human",
                     format_func={"reviewed": "only of sets marked reviewed", "any": "of every corrected set"}.get)
    summary = state.labels_for_training(dataset.id, human)
    rows = [{"split": split, **{SOURCES[s]: n for s, n in counts.items()}} for split, counts in summary.counts.items()]
    st.dataframe(rows, hide_index=True, width="stretch")
    per_source = {s: sum(c[s] for c in summary.counts.values()) for s in ("human", "teacher", "reference")}
    st.caption(f"Training will use {summary.labelled} labelled sets: {per_source['human']} reviewed by people, "
               f"{per_source['teacher']} labelled by the teacher, {per_source['reference']} with reference labels "
               "(in that order of preference). Unassigned sets are dealt into train/val/test (80/10/10) when the job "
               "starts, and keep that split.")
    return human, summary


def start_from() -> tuple[ModelInfo | None, bool, int]:
    """The model to continue from (None: the backbone), whether to adapt it first, and the adaptation's steps."""
    models = {m.id: m for m in state.models()}
    chosen = st.selectbox("Start from", [0, *models], key="train_init",
                          format_func=lambda i: "the backbone below" if i == 0 else
                          f"model {i}: {models[i].name} ({models[i].mode.upper()})",
                          help="Continue from a registered model (its backbone, attention mode and loss) instead "
                               "of the backbone's pretrained weights.")
    model = models.get(chosen)
    adapt = st.toggle("Adapt it to this dataset's texts first, when they are far from its training data",
                      key="train_adapt", disabled=model is None,
                      help="cactus adapt: self-supervised steps on this dataset's training texts with the model's "
                           "own training sets replayed, so it does not forget them.")
    steps = st.number_input("Adaptation steps", 1, 100_000, 200, key="train_adapt_steps",
                            disabled=model is None or not adapt)
    return model, adapt and model is not None, int(steps)


def robustness_options() -> dict[str, Any]:
    """TrainConfig options that keep a model's advantage off its home domain (the defaults change nothing)."""
    with st.expander("Off the home domain (robustness)"):
        st.caption("For models that will meet new categories: see docs/benchmarks.md (issue 14) for what each did.")
        auto = st.toggle("Choose the WiSE-FT weight on validation", key="train_wise_ft_auto",
                         help="After training, try 1, 0.75, 0.5 and 0.25 and keep the weight (with its threshold "
                              "and cut) that scores best on the validation split.")
        alpha = st.slider("Weight of the fine-tuned backbone (WiSE-FT; 1: off)", 0.0, 1.0, 1.0, 0.05,
                          key="train_wise_ft", disabled=auto,
                          help="After training, average the fine-tuned and the starting backbone's weights: "
                               "ALPHA x fine-tuned + (1 - ALPHA) x start.")
        cut = st.radio("Where each set is cut", TRAIN_CUTS, format_func=CUT_HELP.get, key="train_cut",
                       help="A per-set cut needs no threshold, so it travels to new domains; it never gives one "
                            f"cluster for 3 or more entities, nor more than {SILHOUETTE_KMAX}. With the weight 0.5 "
                            "it also scored best on the training domain in docs/benchmarks.md.")
        frozen = st.number_input("Freeze the embeddings and the lowest layers (0: none)", 0, 48, 0,
                                 key="train_freeze_layers")
        scale = st.select_slider("Backbone learning rate, relative to the rest", BACKBONE_LR_SCALES, value=1.0,
                                 key="train_backbone_lr_scale", format_func="{:g}x".format)
        mix = st.slider("Self-supervised steps mixed into training (probability per step)", 0.0, 1.0, 0.0, 0.05,
                        key="train_selfsup_mix")
    options: dict[str, Any] = {}
    if auto:
        options["wise_ft"] = "auto"
    elif alpha < 1.0:
        options["wise_ft"] = float(alpha)
    if cut != "auto":
        options["cut"] = cut
    if frozen:
        options["freeze_layers"] = int(frozen)
    if scale != 1.0:
        options["backbone_lr_scale"] = float(scale)
    if mix > 0.0:
        options["selfsup_mix"] = float(mix)
    return options


def options_form(dataset: DatasetInfo, human: str) -> dict[str, Any] | None:
    """The training options; the finetune job's parameters when Launch is pressed, else None."""
    left, right = st.columns(2)
    with left:
        model, adapt, adapt_steps = start_from()
        fixed = model is not None  # a model brings its own backbone, mode and loss
        backbone_kind = st.radio("Backbone", ["minilm", "folder"], horizontal=True, key="train_backbone_kind",
                                 disabled=fixed, format_func={"minilm": "all-MiniLM-L6-v2 (packaged)",
                                                              "folder": "a local Hugging Face folder"}.get)
        folder = st.text_input("Folder of a BERT-family or T5 encoder", key="train_backbone_folder",
                               disabled=fixed or backbone_kind != "folder", placeholder="/models/flan-t5-base")
        mode = st.selectbox("Inter-entity attention", MODES, index=MODES.index("sia"), format_func=MODE_HELP.get,
                            key="train_mode", disabled=fixed)
        loss = st.selectbox("Loss", LOSS_NAMES, format_func=LOSS_HELP.get, key="train_loss", disabled=fixed)
    with right:
        epochs = st.number_input("Epochs", 1, 200, 4, key="train_epochs")
        limit = st.number_input("Use at most this many training sets (0: all)", 0, 1_000_000, 0, key="train_limit")
        pretrain = st.toggle("Self-supervised pretraining first", key="train_pretrain", disabled=fixed,
                             help="Synthetic sets of word-dropped copies of the training entities (paper §3.3).")
        steps = st.number_input("Pretraining steps", 1, 100_000, 300, key="train_steps",
                                disabled=fixed or not pretrain)
        robust = robustness_options()
        with st.expander("More options"):
            batch = st.number_input("Sets per step", 1, 256, 4, key="train_batch")
            lr = st.select_slider("Learning rate", LEARNING_RATES, value=1e-4, key="train_lr",
                                  format_func="{:.0e}".format)
            seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
            name = st.text_input("Model name (default: dataset, mode, loss and job)", key="train_name")
        activate = st.checkbox("Make it the active model when done", value=True, key="train_activate")
    if not st.button("Launch training", type="primary", icon=":material/rocket_launch:", key="train_launch"):
        return None
    backbone = "minilm"
    if model is not None:
        backbone, mode, loss = model.backbone, model.mode, model.loss
    elif backbone_kind == "folder":
        path = Path(folder.strip()).expanduser()
        if not folder.strip() or not (path / "config.json").is_file():
            st.error(f"{folder.strip() or 'No folder'} is not a Hugging Face model folder (it needs a config.json); "
                     "give the folder of a BERT-family or T5 encoder, or pick the packaged MiniLM.")
            return None
        backbone = str(path.resolve())
    train = {"backbone": backbone, "mode": mode, "loss": loss, "epochs": int(epochs), "batch_size": int(batch),
             "lr": float(lr), "seed": int(seed), **robust}
    if limit:
        train["limit_train"] = int(limit)
    params: dict[str, Any] = {"dataset_id": dataset.id, "train": train, "activate": activate,
                              "human": human}
    if model is not None:
        params["init_model_id"] = model.id
        if adapt:
            params |= {"adapt": True, "adapt_steps": adapt_steps}
    elif pretrain:
        params["pretrain"] = {"steps": int(steps)}
    if name.strip():
        params["name"] = name.strip()
    return params


def launch(params: dict[str, Any], summary: LabelSummary) -> None:
    if summary.labelled == 0:
        st.error("This dataset has no labelled sets yet: ask the teacher to cluster some (Review page), correct and "
                 "save some (Correct page), or upload sets with clusters.")
        return
    job = state.queue_job(lambda session: enqueue(session, "finetune", params), "The job was not queued",
                          needs="admin", action="Training models")
    if job is None:
        return
    st.session_state["train_job"] = job.id
    st.session_state["train_watch"] = job.id  # follow the job just launched, not the one followed before
    st.toast(f"Queued finetune job {job.id}")


def watched_job() -> int | None:
    """The finetune job to follow: the one launched here, else the newest."""
    recent = state.jobs(type="finetune", limit=20)
    if not recent:
        return None
    ids = [j.id for j in recent]
    launched = st.session_state.get("train_job")
    if st.session_state.get("train_watch") not in ids:
        st.session_state["train_watch"] = launched if launched in ids else ids[0]
    by_id = {j.id: j for j in recent}
    return st.selectbox("Follow", ids, key="train_watch",
                        format_func=lambda i: f"job {i} · {by_id[i].status} · {by_id[i].params.get('name') or ''}")


chrome.page_intro("train", "Fine-tune a CACTUS model on the labels of a dataset; the job runs in the background "
                  "and this page follows it.")
chrome.role_note("admin", "training")
dataset = pickers.choose_dataset()
if dataset is None:
    st.info("Add a dataset on the Data page first.")
    st.stop()

st.subheader(f"Labels of {dataset.name}")
human, summary = label_counts(dataset)
st.subheader("Options")
params = options_form(dataset, human)
if params is not None:
    launch(params, summary)

st.subheader("Progress")
job_id = watched_job()
if job_id is None:
    st.caption("No training job yet.")
else:
    job_monitor.job_monitor(job_id, key="train_monitor", charts=True)

st.subheader("Jobs")
job_monitor.jobs_table(state.jobs(limit=30))
