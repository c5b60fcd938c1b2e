"""The ``label`` job: the teacher (Claude, :mod:`cactus.teacher`) clusters a dataset's sets.

Parameters (JSON):

=================  ==========================================================================
``dataset_id``     the dataset (required)
``sets``           which sets: ``"missing"`` (no teacher clustering yet; the default),
                   ``"unlabelled"`` (no teacher, human or reference clustering) or ``"all"``
``set_ids``        only these sets of the dataset (e.g. the one on the review page)
``model``          Claude model id (default: ``CACTUS_TEACHER_MODEL`` or the teacher's default)
``concurrency``    requests in flight (default 4)
``budget_usd``     stop sending once about this much was spent in this job
``budget_tokens``  stop sending once this many tokens were used
``max_set_size``   refuse larger sets (default: the teacher's)
``cache``          keep replies in the teacher cache (default true: a retry never pays twice)
``batch``          send the sets through the Message Batches API (half price, results within
                   24 hours; default false); needs the cache and no budget
``poll_interval``  with ``batch``: seconds between polls of the batches at first (default 30;
                   it grows 1.5x up to 300)
=================  ==========================================================================

With ``batch``, the batches are recorded in the teacher cache before they are created, so a job run
again after its worker died polls the same batches instead of sending the sets again; its progress
follows the batches' request counts.

Each labelled set is stored at once as a "teacher" clustering, so a job that dies part-way and is run
again (with ``sets: "missing"``) only asks for the rest. Entities the reply left out stay in the
stored clustering as singletons and are listed in its ``details["unplaced"]`` (the export leaves them
out of training data). The API key comes from the worker's ``ANTHROPIC_API_KEY`` (and the endpoint
from ``ANTHROPIC_BASE_URL``), never from the job's parameters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.base import JobContext, JobError, JobParamsError, JobType
from jobs.params import boolean, ids, integer, refuse_unknown

WHICH = ("missing", "unlabelled", "all")


@dataclass(frozen=True)
class LabelParams:
    dataset_id: int
    sets: str = "missing"
    set_ids: tuple[int, ...] | None = None
    model: str | None = None
    concurrency: int = 4
    budget_usd: float | None = None
    budget_tokens: int | None = None
    max_set_size: int | None = None
    cache: bool = True
    batch: bool = False
    poll_interval: float = 30.0


def parse_params(raw: Mapping[str, Any]) -> LabelParams:
    """Check the label job's parameters (see the module doc)."""
    known = {"dataset_id", "sets", "set_ids", "model", "concurrency", "budget_usd", "budget_tokens",
             "max_set_size", "cache", "batch", "poll_interval"}
    refuse_unknown("label", raw, known)
    dataset_id = integer("label", raw, "dataset_id", required=True)
    assert dataset_id is not None
    which = raw.get("sets", "missing")
    if which not in WHICH:
        raise JobParamsError(f"label: sets must be one of {', '.join(WHICH)}, got {which!r}")
    set_ids = ids("label", raw, "set_ids", what="set")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise JobParamsError(f"label: model must be a Claude model id, got {model!r}")
    budget_usd = raw.get("budget_usd")
    if budget_usd is not None and (isinstance(budget_usd, bool) or not isinstance(budget_usd, (int, float))
                                   or budget_usd < 0):
        raise JobParamsError(f"label: budget_usd must be a number of dollars, got {budget_usd!r}")
    cache = boolean("label", raw, "cache", True)
    batch = boolean("label", raw, "batch", False)
    poll_interval = raw.get("poll_interval", 30.0)
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not 0 <= poll_interval <= 300:
        raise JobParamsError(f"label: poll_interval must be a number of seconds in [0, 300], got {poll_interval!r}")
    if batch and not cache:
        raise JobParamsError("label: batch needs the cache (it records the batches); leave cache true")
    if batch and (budget_usd is not None or raw.get("budget_tokens") is not None):
        raise JobParamsError("label: budgets apply to requests sent one by one, not to batch (billed when it ends)")
    return LabelParams(
        dataset_id=dataset_id, sets=which, set_ids=set_ids, model=model,
        concurrency=integer("label", raw, "concurrency", default=4),
        budget_usd=float(budget_usd) if budget_usd is not None else None,
        budget_tokens=integer("label", raw, "budget_tokens", minimum=0),
        max_set_size=integer("label", raw, "max_set_size", minimum=2), cache=cache, batch=batch,
        poll_interval=float(poll_interval),
    )


def teacher_clustering(stored_positions: dict[str, int], size: int, labelled: Any) -> tuple[list[list[int]],
                                                                                         list[str], list[int]]:
    """The teacher's clusters as positions of the stored set; entities it left out become singletons.

    Returns:
        (clusters, names, unplaced positions).
    """
    clusters: list[list[int]] = []
    for members in labelled.clusters:
        clusters.append(sorted(stored_positions[labelled.entities[i].id] for i in members))
    names = list(labelled.cluster_names or [""] * len(clusters))
    placed = {p for c in clusters for p in c}
    unplaced = [p for p in range(size) if p not in placed]
    return clusters + [[p] for p in unplaced], names + [""] * len(unplaced), unplaced


def run(ctx: JobContext, params: LabelParams) -> dict[str, Any]:
    """Label the chosen sets with the teacher, storing each clustering as it arrives."""
    from sqlalchemy import select

    from cactus.teacher import TeacherConfig, default_cache_path, label_sets
    from cactus.teacher.batches import BatchOptions, label_sets_batched
    from db.clusterings import add_clustering
    from db.datasets import get_dataset
    from db.models import SetRow
    from db.session import default_database_path
    from db.sets import load_entity_sets, sets_lacking

    with ctx.session() as session:
        dataset = get_dataset(session, params.dataset_id)
        if params.set_ids is not None:
            found = set(session.scalars(select(SetRow.id).where(SetRow.id.in_(params.set_ids),
                                                                SetRow.dataset_id == dataset.id)))
            missing = [i for i in params.set_ids if i not in found]
            if missing:
                raise JobParamsError(f"label: dataset {dataset.name!r} has no sets with ids {missing[:10]}")
            candidates = list(params.set_ids)
        elif params.sets == "all":
            candidates = list(session.scalars(select(SetRow.id).where(SetRow.dataset_id == dataset.id)
                                              .order_by(SetRow.position)))
        else:
            candidates = None
        lacking = sets_lacking(session, dataset.id,
                               ["teacher"] if params.sets == "missing" else ["teacher", "human", "reference"])
        if candidates is None:
            chosen = lacking
        elif params.sets == "all":
            chosen = candidates
        else:
            chosen = [i for i in candidates if i in set(lacking)]
        entity_sets = load_entity_sets(session, chosen)
    if ctx.resumed:
        ctx.log(f"attempt {ctx.attempt}: resuming; sets labelled by the earlier attempt are not asked again")
    if not chosen:
        ctx.log(f"dataset {dataset.name!r}: no sets to label ({params.sets})")
        ctx.progress(1.0, "nothing to label")
        return {"sets": 0, "labelled": 0}

    options: dict[str, Any] = {"noun": dataset.noun, "concurrency": params.concurrency,
                               "budget_usd": params.budget_usd, "budget_tokens": params.budget_tokens,
                               "cache_path": default_cache_path(default_database_path()) if params.cache else None}
    if params.model:
        options["model"] = params.model
    if params.max_set_size:
        options["max_set_size"] = params.max_set_size
    config = TeacherConfig(**options)
    ids = list(entity_sets)
    by_name = {entity_sets[i].id: i for i in ids}
    counts: Counter[str] = Counter()
    spent = 0.0
    how = " through the Message Batches API" if params.batch else ""
    ctx.log(f"labelling {len(ids)} set(s) of {dataset.name!r} with {config.model}{how}")
    ctx.progress(0.0, f"0/{len(ids)} sets")

    def on_progress(done: int, total: int, result: Any) -> None:
        nonlocal spent
        counts[result.status] += 1
        if result.billed and result.cost_usd:
            spent += result.cost_usd
        set_id = by_name[result.set_id]
        if result.status == "labelled":
            original = entity_sets[set_id]
            positions = {e.id: p for p, e in enumerate(original.entities)}
            clusters, names, unplaced = teacher_clustering(positions, len(original), result.labelled)
            details = {"unplaced": unplaced, "input_tokens": result.input_tokens,
                       "output_tokens": result.output_tokens, "cost_usd": result.cost_usd, "cached": result.cached}
            if result.error:
                details["warning"] = result.error
            with ctx.session() as session:
                add_clustering(session, set_id, "teacher", clusters, names, job_id=ctx.job_id,
                               producer=result.model or config.model, details=details)
        else:
            ctx.log(f"set {result.set_id}: {result.status}: {result.error}")
        ctx.progress(done / total, f"{done}/{total} sets, {counts['labelled']} labelled")
        ctx.metrics(labelled=counts["labelled"], not_labelled=done - counts["labelled"], cost_usd=round(spent, 6))

    def on_batch_progress(counts: Any) -> None:
        ctx.progress(counts.done / max(1, counts.total), counts.line())
        ctx.metrics(batch_requests_done=counts.done, batch_requests=counts.total, batch_errored=counts.errored,
                    batch_expired=counts.expired)

    chosen_sets = [entity_sets[i] for i in ids]
    if params.batch:
        options = BatchOptions(output=f"store dataset {dataset.id}", poll_interval=params.poll_interval,
                               max_poll_interval=max(params.poll_interval, 300.0))
        results = label_sets_batched(chosen_sets, config, options, on_progress=on_progress,
                                     on_batch_progress=on_batch_progress)
    else:
        results = label_sets(chosen_sets, config, on_progress=on_progress)
    summary = {"sets": len(results), **{status: counts[status] for status in sorted(counts)},
               "cost_usd": round(spent, 6)}
    if params.batch:
        summary["batched"] = sum(r.batch for r in results)
    if counts["labelled"] == 0:
        first = next((r.error for r in results if r.error), "no reason given")
        raise JobError(f"the teacher labelled none of the {len(results)} set(s); the first problem: {first}")
    ctx.log(f"done: {summary}")
    return summary


JOB_TYPE = JobType(name="label", summary="the teacher (Claude) clusters a dataset's sets", run=run,
                   parse_params=parse_params)
