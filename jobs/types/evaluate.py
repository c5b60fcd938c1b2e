"""The ``evaluate`` job: Table-2-style scores of registered models (and the baselines) on a dataset's test split.

Parameters (JSON):

==============  =================================================================================
``dataset_id``  the dataset (required)
``model_ids``   registered models to score (default: the active one)
``split``       the split to score on (default ``"test"``)
``baselines``   also score K-Means, Spectral and Agglomerative on frozen embeddings (default true)
``backbone``    the frozen encoder of the baselines (default ``"minilm"``)
``human``       ``"reviewed"`` (default) or ``"any"``: which human labels count as truth
==============  =================================================================================

The truth is each set's best label (human over teacher over reference), exported as in ``finetune``.
A model whose threshold was re-chosen on this dataset (:mod:`db.thresholds`) is scored at that threshold, and its
row says so (``"threshold_source": "dataset"``, the method named with it); else at its card's.
Result: ``{"rows": [{"method", "NMI", "AMI", "RI", "ARI", "F1", "model_id"?, "threshold"?, "threshold_source"?}],
"sets": n, "split": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.base import JobContext, JobError, JobParamsError, JobType
from jobs.params import boolean, ids, integer, refuse_unknown

METRICS = ("NMI", "AMI", "RI", "ARI", "F1")


@dataclass(frozen=True)
class EvaluateParams:
    dataset_id: int
    model_ids: tuple[int, ...] | None = None
    split: str = "test"
    baselines: bool = True
    backbone: str = "minilm"
    human: str = "reviewed"


def parse_params(raw: Mapping[str, Any]) -> EvaluateParams:
    known = {"dataset_id", "model_ids", "split", "baselines", "backbone", "human"}
    refuse_unknown("evaluate", raw, known)
    dataset_id = integer("evaluate", raw, "dataset_id", required=True)
    model_ids = ids("evaluate", raw, "model_ids", what="model", allow_empty=True)
    split = raw.get("split", "test")
    if split not in ("train", "val", "test"):
        raise JobParamsError(f"evaluate: split must be train, val or test, got {split!r}")
    baselines = boolean("evaluate", raw, "baselines", True)
    backbone = raw.get("backbone", "minilm")
    if not isinstance(backbone, str) or not backbone.strip():
        raise JobParamsError(f"evaluate: backbone must be 'minilm' or a folder, got {backbone!r}")
    human = raw.get("human", "reviewed")
    if human not in ("reviewed", "any"):
        raise JobParamsError(f"evaluate: human must be 'reviewed' or 'any', got {human!r}")
    if not baselines and model_ids == ():
        raise JobParamsError("evaluate: nothing to score: give model_ids or set baselines to true")
    return EvaluateParams(dataset_id, model_ids, split, baselines, backbone, human)


def run(ctx: JobContext, params: EvaluateParams) -> dict[str, Any]:
    from cactus.data import read_dataset
    from cactus.evaluation.intervals import bootstrap_intervals
    from cactus.evaluation.scoring import evaluate_model
    from db.datasets import get_dataset
    from db.export import export_labels
    from db.registry import active_model, get_model
    from db.thresholds import dataset_threshold

    data_dir = ctx.work_dir / "data"
    with ctx.session() as session:
        dataset = get_dataset(session, params.dataset_id)
        if params.model_ids is None:
            active = active_model(session)
            models = [active] if active is not None else []
        else:
            models = [get_model(session, i) for i in params.model_ids]
        exported = export_labels(session, dataset.id, data_dir, human=params.human)
        overrides = {m.id: dataset_threshold(session, m.id, dataset.id) for m in models}
    if not models and not params.baselines:
        raise JobError("evaluate: no model is active and baselines are off: nothing to score")
    data = read_dataset(data_dir)
    sets = data[params.split]
    notes = split_notes(exported.newly_assigned, len(data["val"]), len(sets), params.split)
    for note in notes:
        ctx.log(note)
    rows: list[dict[str, Any]] = []
    steps = len(models) + (1 if params.baselines else 0)
    for index, model in enumerate(models):
        ctx.progress(index / steps, f"scoring {model.name}")
        override = overrides[model.id]
        scored = evaluate_model(model.checkpoint, sets, threshold=override.threshold if override else None,
                                cut=override.cut if override else None)
        method = f"{model.name} ({override.describe()}, re-chosen here)" if override else model.name
        row = {"method": method, "model_id": model.id, **{k: scored.average[k] for k in METRICS},
               "ci95": bootstrap_intervals(scored.per_set)}
        if override is not None:
            row.update(threshold=override.threshold, threshold_source="dataset",
                       threshold_chosen_on_sets=override.chosen_on_sets, threshold_labelled=override.labelled,
                       cut=override.cut)
        rows.append(row)
        ctx.log(f"{model.name}: " + ", ".join(f"{k} {row[k]:.3f}" for k in METRICS))
    if params.baselines:
        from cactus.evaluation.baselines import run_baselines
        from cactus.inference.embedding import frozen_embedder

        ctx.progress(len(models) / steps, "scoring the unsupervised baselines")
        scored = data if params.split == "test" else type(data)(data.root, {**data.splits, "test": sets})
        report = run_baselines(scored, frozen_embedder(params.backbone, show_progress=False), progress=ctx.log)
        rows.extend(report["rows"])
    ctx.metrics(rows=rows)
    ctx.progress(1.0, f"scored {len(rows)} methods on {len(sets)} {params.split} sets")
    return {"rows": rows, "sets": len(sets), "split": params.split, "dataset": dataset.name, "notes": notes}


def split_notes(newly_assigned: Mapping[str, int], val_sets: int, scored_sets: int, split: str) -> list[str]:
    """What an evaluation must say about its splits: sets given a split now, and splits too small to lean on."""
    from cactus.evaluation.intervals import few_sets_warning

    notes = []
    if any(newly_assigned.values()):
        counts = ", ".join(f"{n} to {name}" for name, n in newly_assigned.items() if n)
        notes.append(f"{sum(newly_assigned.values())} labelled set(s) had no split and were given one now ({counts}); "
                     "the dataset keeps these splits, so later evaluations and trainings use the same ones")
    for what, count in ((f"the {split} split", scored_sets), ("the validation split", val_sets)):
        if what == "the validation split" and split == "val":
            continue
        warning = few_sets_warning(count, what)
        if warning:
            notes.append(warning)
    return notes


JOB_TYPE = JobType(name="evaluate", summary="score models and baselines on a dataset's test split", run=run,
                   parse_params=parse_params)
