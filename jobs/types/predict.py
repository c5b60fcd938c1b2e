"""The ``predict`` job: a registered model clusters a dataset's sets; results are stored as ``model`` clusterings.

Parameters (JSON):

======================  ====================================================================
``dataset_id``          the dataset (required)
``model_id``            the registered model (default: the active one)
``sets``                ``"missing"`` (default: sets without a clustering by this model) or ``"all"``
``set_ids``             only these sets of the dataset
``max_batch_tokens``    tokens per encoder batch, padding included (default 8192)
======================  ====================================================================

The sets stream through the same pipeline as ``cactus predict`` (:mod:`cactus.inference.streaming`): they are
read from the store a window at a time and their clusterings stored in transactions of a window as they are
computed, so a dataset of any size is clustered in bounded memory, and a job run again after its worker died
(with ``sets: "missing"``) only predicts the rest.

Every predicted cluster is named (:mod:`cactus.inference.names`): the set's own named cluster (human, reference or
teacher) that overlaps it enough, else the nearest named cluster of the dataset (up to ``NAME_BOOK_SETS`` labelled
sets embedded by the model), else its distinctive keywords; the names are stored with the clustering and marked
``details["names_generated"]``, next to ``details["uncertainty"]`` that the review queue reads.

The threshold and cut (one threshold, or a per-set cut: :mod:`cactus.inference.per_set_cut`) are the model card's,
unless they were re-chosen for the model on this dataset (:mod:`db.thresholds`): then those, said in the log and
recorded in each clustering's details (with each set's own threshold under a per-set cut).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cactus.inference.streaming_defaults import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_WINDOW
from jobs.base import JobContext, JobError, JobParamsError, JobType
from jobs.params import ids, integer, refuse_unknown

NAME_BOOK_SETS = 300


@dataclass(frozen=True)
class PredictParams:
    dataset_id: int
    model_id: int | None = None
    sets: str = "missing"
    set_ids: tuple[int, ...] | None = None
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS


def parse_params(raw: Mapping[str, Any]) -> PredictParams:
    known = {"dataset_id", "model_id", "sets", "set_ids", "max_batch_tokens"}
    refuse_unknown("predict", raw, known)
    dataset_id = integer("predict", raw, "dataset_id", required=True)
    which = raw.get("sets", "missing")
    if which not in ("missing", "all"):
        raise JobParamsError(f"predict: sets must be 'missing' or 'all', got {which!r}")
    set_ids = ids("predict", raw, "set_ids", what="set")
    return PredictParams(dataset_id, integer("predict", raw, "model_id"), which, set_ids,
                         integer("predict", raw, "max_batch_tokens", default=DEFAULT_MAX_BATCH_TOKENS))


def run(ctx: JobContext, params: PredictParams) -> dict[str, Any]:
    from collections.abc import Iterator

    from sqlalchemy import select

    from cactus.data.sets import EntitySet
    from cactus.inference.model import ClusteringModel
    from cactus.inference.names import set_namer
    from cactus.inference.streaming import StreamOptions, name_book, predict_stream
    from cactus.inference.threshold import describe_cut
    from db.clusterings import add_clustering, latest_clusterings, named_clusterings
    from db.datasets import get_dataset
    from db.models import SetRow
    from db.registry import active_model, get_model, refresh_threshold
    from db.sets import dataset_set_ids, load_entity_sets
    from db.thresholds import applied_cut, dataset_threshold

    with ctx.session() as session:
        dataset = get_dataset(session, params.dataset_id)
        model = get_model(session, params.model_id) if params.model_id else active_model(session)
        if model is None:
            raise JobError("predict: no model is active; train one (finetune job) or activate one on the Models page")
        chosen = dataset_set_ids(session, dataset.id, params.set_ids)
        if params.set_ids is not None and len(chosen) != len(params.set_ids):
            missing = sorted(set(params.set_ids) - set(chosen))
            raise JobParamsError(f"predict: dataset {dataset.name!r} has no sets with ids {missing[:10]}")
        if params.sets == "missing":
            done = latest_clusterings(session, chosen, "model", model_id=model.id)
            chosen = [i for i in chosen if i not in done]
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
    with ctx.session() as session:
        override = dataset_threshold(session, model.id, dataset.id)
    applied = applied_cut(threshold, clustering_model.cut, override)
    if override is not None:
        ctx.log(f"{applied.describe()}, re-chosen for {model.name!r} {override.chosen_how()} of "
                f"{dataset.name!r} (the card's: {describe_cut(threshold, clustering_model.cut)})")
    elif applied.cut != "threshold":
        ctx.log(f"{model.name!r} cuts {applied.describe()}, as its validation chose")
    threshold, source = applied.threshold, applied.source

    def with_names(set_id: int, entity_set: EntitySet, clustering) -> EntitySet:
        """The set labelled by its named clustering (or unlabelled without one); its id is its store id."""
        if clustering is None:
            return EntitySet(str(set_id), entity_set.entities)
        return EntitySet(str(set_id), entity_set.entities, [list(c) for c in clustering.clusters],
                         list(clustering.names))

    with ctx.session() as session:
        labelled = named_clusterings(session, select(SetRow.id).where(SetRow.dataset_id == dataset.id))
        book_ids = list(labelled)[:NAME_BOOK_SETS]
        book_sets = load_entity_sets(session, book_ids)
    book = None
    if book_ids:
        book = name_book(clustering_model.encoder, (with_names(i, book_sets[i], labelled[i]) for i in book_ids),
                         max_batch_tokens=params.max_batch_tokens)
        ctx.log(f"{len(book)} cluster names from {len(book_ids)} named set(s) of the dataset")

    warning = domain_warning(ctx, clustering_model, chosen)

    def stored_sets() -> Iterator[EntitySet]:
        """The chosen sets, read from the store a window at a time; a set's id is its store id."""
        for start in range(0, len(chosen), DEFAULT_WINDOW):
            window = chosen[start:start + DEFAULT_WINDOW]
            with ctx.session() as session:
                loaded = load_entity_sets(session, window)
                named = named_clusterings(session, window)
            for set_id in window:
                yield with_names(set_id, loaded[set_id], named.get(set_id))

    pending: list[EntitySet] = []
    stored = 0

    def store_window(count: int) -> None:
        nonlocal stored
        with ctx.session() as session:
            for result in pending:
                details = {"threshold": threshold, "threshold_source": source, "cut": applied.cut,
                           **({"set_threshold": result.extra["set_threshold"]} if "set_threshold" in result.extra
                              else {}),
                           "names_generated": True, "uncertainty": result.extra.get("uncertainty", 0.0)}
                add_clustering(session, int(result.id), "model", result.clusters, result.cluster_names,
                               model_id=model.id, job_id=ctx.job_id, producer=model.name, details=details)
        stored += len(pending)
        pending.clear()
        ctx.progress(stored / len(chosen), f"{stored}/{len(chosen)} sets")

    options = StreamOptions(threshold=threshold, cut=applied.cut, max_batch_tokens=params.max_batch_tokens,
                            namer=set_namer(book), with_uncertainty=True)
    predict_stream(clustering_model.encoder, stored_sets(), pending.append, options, progress=store_window)
    return {"sets": stored, "model_id": model.id, "threshold": threshold, "threshold_source": source,
            "cut": applied.cut,
            **({"domain_warning": warning} if warning else {})}


def domain_warning(ctx: JobContext, clustering_model, set_ids: list[int]) -> str | None:
    """Compare a sample of the sets with the model's training data; log and return the warning when far."""
    from cactus.inference.domain import check_shift, sample_sets, shift_warning, stored_domains
    from db.sets import load_entity_sets

    if not stored_domains(clustering_model.card.training_data):
        return None
    picked = [ids[0] for ids in sample_sets([[i] for i in set_ids])]
    with ctx.session() as session:
        loaded = load_entity_sets(session, picked)
    texts = [loaded[i].texts for i in picked]
    warning = shift_warning(check_shift(clustering_model.encoder, texts, clustering_model.card.training_data,
                                        device=clustering_model.device))
    if warning:
        ctx.log(f"warning: {warning}")
    return warning


JOB_TYPE = JobType(name="predict", summary="a model clusters a dataset's sets", run=run, parse_params=parse_params)
