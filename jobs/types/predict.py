"""The ``predict`` job: a registered model clusters a dataset's sets; results are stored as ``model`` clusterings.

Parameters (JSON):

==============  ===========================================================================
``dataset_id``  the dataset (required)
``model_id``    the registered model (default: the active one)
``sets``        ``"missing"`` (default: sets without a clustering by this model) or ``"all"``
``set_ids``     only these sets of the dataset
``batch_size``  sets per encoder batch (default 16)
==============  ===========================================================================

Clusterings are stored in chunks as they are computed, so a job run again after its worker died
(with ``sets: "missing"``) only predicts the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.base import JobContext, JobError, JobParamsError, JobType
from jobs.params import ids, integer, refuse_unknown

CHUNK = 64


@dataclass(frozen=True)
class PredictParams:
    dataset_id: int
    model_id: int | None = None
    sets: str = "missing"
    set_ids: tuple[int, ...] | None = None
    batch_size: int = 16


def parse_params(raw: Mapping[str, Any]) -> PredictParams:
    known = {"dataset_id", "model_id", "sets", "set_ids", "batch_size"}
    refuse_unknown("predict", raw, known)
    dataset_id = integer("predict", raw, "dataset_id", required=True)
    which = raw.get("sets", "missing")
    if which not in ("missing", "all"):
        raise JobParamsError(f"predict: sets must be 'missing' or 'all', got {which!r}")
    set_ids = ids("predict", raw, "set_ids", what="set")
    return PredictParams(dataset_id, integer("predict", raw, "model_id"), which, set_ids,
                         integer("predict", raw, "batch_size", default=16))


def run(ctx: JobContext, params: PredictParams) -> dict[str, Any]:
    from sqlalchemy import select

    from cactus.inference.model import ClusteringModel
    from db.clusterings import add_clustering, latest_clusterings
    from db.datasets import get_dataset
    from db.models import SetRow
    from db.registry import active_model, get_model, refresh_threshold
    from db.sets import load_entity_sets

    with ctx.session() as session:
        dataset = get_dataset(session, params.dataset_id)
        model = get_model(session, params.model_id) if params.model_id else active_model(session)
        if model is None:
            raise JobError("predict: no model is active; train one (finetune job) or activate one on the Models page")
        query = select(SetRow.id).where(SetRow.dataset_id == dataset.id).order_by(SetRow.position)
        if params.set_ids is not None:
            query = query.where(SetRow.id.in_(params.set_ids))
        chosen = list(session.scalars(query))
        if params.set_ids is not None and len(chosen) != len(params.set_ids):
            missing = sorted(set(params.set_ids) - set(chosen))
            raise JobParamsError(f"predict: dataset {dataset.name!r} has no sets with ids {missing[:10]}")
        if params.sets == "missing":
            done = latest_clusterings(session, chosen, "model", model_id=model.id)
            chosen = [i for i in chosen if i not in done]
        entity_sets = load_entity_sets(session, chosen)
    if not chosen:
        ctx.progress(1.0, "every set already has this model's clustering")
        return {"sets": 0, "model_id": model.id}
    ctx.log(f"model {model.name!r} clusters {len(chosen)} set(s) of {dataset.name!r}")
    clustering_model = ClusteringModel.load(model.checkpoint)
    threshold = clustering_model.threshold  # the card's: the registry's copy is only for listing
    if threshold != model.threshold:
        ctx.log(f"the card of {model.name!r} says threshold {threshold:+.3f}, the registry {model.threshold:+.3f}; "
                "the card wins and the registry copy is refreshed")
        with ctx.session() as session:
            refresh_threshold(session, model.id, threshold)
    for start in range(0, len(chosen), CHUNK):
        ids = chosen[start:start + CHUNK]
        predicted = clustering_model.predict([entity_sets[i] for i in ids], batch_size=params.batch_size)
        with ctx.session() as session:
            for set_id, result in zip(ids, predicted, strict=True):
                add_clustering(session, set_id, "model", result.clusters, model_id=model.id, job_id=ctx.job_id,
                               producer=model.name, details={"threshold": threshold})
        done = start + len(ids)
        ctx.progress(done / len(chosen), f"{done}/{len(chosen)} sets")
    return {"sets": len(chosen), "model_id": model.id, "threshold": threshold}


JOB_TYPE = JobType(name="predict", summary="a model clusters a dataset's sets", run=run, parse_params=parse_params)
