"""Entity sets: the filtered list of the review page, one set with its clusterings, review and splits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal

from sqlalchemy import Select, and_, exists, func, select, update
from sqlalchemy.orm import Session

from cactus.data import Entity, EntitySet
from db.clusterings import latest_labels, pair_disagreement
from db.edits import edit_stacks
from db.errors import EditError, NotFoundError, StoreError
from db.models import SOURCES, SPLITS, ClusteringRow, DatasetRow, EntityRow, ModelRow, SetRow
from db.types import utcnow
from db.views import ClusteringView, SetDetail, SetPage, SetSummary

SetOrder = Literal["position", "size", "disagreement"]


def _resolve_model(session: Session, model_id: int | None) -> int | None:
    if model_id is not None:
        return model_id
    return session.scalar(select(ModelRow.id).where(ModelRow.active))


def _has_source(source: str, model_id: int | None) -> Any:
    if source not in SOURCES:
        raise StoreError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    condition = and_(ClusteringRow.set_id == SetRow.id, ClusteringRow.source == source)
    if source == "model" and model_id is not None:
        condition = and_(condition, ClusteringRow.model_id == model_id)
    return exists(select(ClusteringRow.id).where(condition))


def _disagreements(session: Session, set_ids: Collection[int] | Select[Any], model_id: int | None
                   ) -> dict[int, float]:
    teacher = latest_labels(session, set_ids, "teacher")
    if not teacher:
        return {}
    model = latest_labels(session, set_ids, "model", model_id=model_id)
    return {set_id: pair_disagreement(teacher[set_id], labels) for set_id, labels in model.items()
            if set_id in teacher}


def list_sets(
    session: Session,
    dataset_id: int,
    *,
    reviewed: bool | None = None,
    split: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    search: str | None = None,
    has: Sequence[str] = (),
    lacks: Sequence[str] = (),
    min_disagreement: float | None = None,
    model_id: int | None = None,
    order: SetOrder = "position",
    limit: int = 50,
    offset: int = 0,
) -> SetPage:
    """A page of a dataset's sets, filtered and ordered, and how many match in all.

    Args:
        reviewed: only sets marked reviewed (True) or not yet (False).
        split: only sets of this split ("train", "val", "test", "unassigned").
        min_size, max_size: bounds on the number of entities.
        search: text that the set id or one of its entities contains (case-insensitive).
        has, lacks: sources the set must have / must not have a clustering of
            ("teacher", "model", "human", "reference").
        min_disagreement: only sets where the teacher and the model disagree on at least this share of
            entity pairs (0..1; see :func:`db.clusterings.pair_disagreement`). Sets lacking either
            clustering are left out.
        model_id: the model that "model" refers to; None for the active model (any model when none is
            active).
        order: "position" (import order), "size" (largest first) or "disagreement" (largest first).
        limit, offset: the page.
    """
    if order not in ("position", "size", "disagreement"):
        raise StoreError(f"order must be position, size or disagreement, got {order!r}")
    if split is not None and split not in SPLITS:
        raise StoreError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    model = _resolve_model(session, model_id)
    query = select(SetRow.id).where(SetRow.dataset_id == dataset_id)
    if reviewed is not None:
        query = query.where(SetRow.reviewed.is_(reviewed))
    if split is not None:
        query = query.where(SetRow.split == split)
    if min_size is not None:
        query = query.where(SetRow.size >= min_size)
    if max_size is not None:
        query = query.where(SetRow.size <= max_size)
    if search and search.strip():
        needle = search.strip()
        in_text = exists(select(EntityRow.id).where(EntityRow.set_id == SetRow.id,
                                                    EntityRow.text.icontains(needle, autoescape=True)))
        query = query.where(SetRow.name.icontains(needle, autoescape=True) | in_text)
    for source in has:
        query = query.where(_has_source(source, model))
    for source in lacks:
        query = query.where(~_has_source(source, model))

    disagreement: dict[int, float] | None = None
    if min_disagreement is not None or order == "disagreement":
        candidates = session.scalars(query.order_by(SetRow.position)).all()
        disagreement = _disagreements(session, query, model)
        if min_disagreement is not None:
            candidates = [i for i in candidates if disagreement.get(i, -1.0) >= min_disagreement]
        if order == "disagreement":
            candidates.sort(key=lambda i: -disagreement.get(i, -1.0))  # stable: ties keep import order
        total = len(candidates)
        page_ids = candidates[offset:offset + limit]
    else:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        ordering = (SetRow.size.desc(), SetRow.position) if order == "size" else (SetRow.position,)
        page_ids = list(session.scalars(query.order_by(*ordering).limit(limit).offset(offset)))

    if not page_ids:
        return SetPage([], total)
    rows = {row.id: row for row in session.scalars(select(SetRow).where(SetRow.id.in_(page_ids)))}
    sources: dict[int, set[str]] = {i: set() for i in page_ids}
    found = session.execute(
        select(ClusteringRow.set_id, ClusteringRow.source, ClusteringRow.model_id).distinct()
        .where(ClusteringRow.set_id.in_(page_ids))
    )
    for set_id, source, clustering_model in found:
        if source != "model" or model is None or clustering_model == model:
            sources[set_id].add(source)
    if disagreement is None:
        disagreement = _disagreements(session, page_ids, model)
    items = [SetSummary(i, rows[i].dataset_id, rows[i].name, rows[i].size, rows[i].split, rows[i].reviewed,
                        frozenset(sources[i]), disagreement.get(i)) for i in page_ids]
    return SetPage(items, total)


def get_set(session: Session, set_id: int) -> SetDetail:
    """A set with its entities, all its clusterings (oldest first) and whether undo/redo can run."""
    row = session.get(SetRow, set_id)
    if row is None:
        raise NotFoundError(f"no set with id {set_id}; it may have been deleted with its dataset")
    dataset = session.get(DatasetRow, row.dataset_id)
    assert dataset is not None
    entities = session.execute(
        select(EntityRow.name, EntityRow.text).where(EntityRow.set_id == set_id).order_by(EntityRow.position)
    ).all()
    # The edit head before the clusterings: should an edit commit between the two reads (READ COMMITTED outside a
    # snapshot), the caller holds an older head with a newer clustering, and its next edit is refused as stale,
    # never applied to a clustering it did not see.
    stacks = edit_stacks(session, set_id)
    clusterings = session.scalars(
        select(ClusteringRow).where(ClusteringRow.set_id == set_id).order_by(ClusteringRow.id)).all()
    return SetDetail(
        id=row.id, dataset_id=row.dataset_id, dataset_name=dataset.name, noun=dataset.noun, name=row.name,
        split=row.split, reviewed=row.reviewed, reviewed_at=row.reviewed_at, reviewed_by=row.reviewed_by,
        entities=tuple(Entity(name, text) for name, text in entities),
        clusterings=tuple(ClusteringView.of(c) for c in clusterings),
        edit_head=stacks.head, can_undo=bool(stacks.undo), can_redo=bool(stacks.redo), extra=dict(row.extra or {}),
    )


def mark_reviewed(session: Session, set_id: int, *, author: str, reviewed: bool = True) -> None:
    """Mark a set reviewed (its human clustering is final) or take the mark back.

    Raises:
        EditError: marking reviewed a set that has no human clustering yet.
    """
    row = session.get(SetRow, set_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"no set with id {set_id}")
    if reviewed:
        human = session.scalar(select(ClusteringRow.id).where(
            ClusteringRow.set_id == set_id, ClusteringRow.source == "human"))
        if human is None:
            raise EditError(f"set {row.name!r} has no human clustering to approve: accept the teacher's or the "
                            "model's clustering (or start one) and correct it first")
    row.reviewed = reviewed
    row.reviewed_at = utcnow() if reviewed else None
    row.reviewed_by = author if reviewed else None
    session.flush()


def set_split(session: Session, set_ids: Collection[int], split: str) -> int:
    """Put sets in a split; returns how many rows changed."""
    if split not in SPLITS:
        raise StoreError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    result = session.execute(update(SetRow).where(SetRow.id.in_(list(set_ids))).values(split=split))
    return result.rowcount


def sets_lacking(session: Session, dataset_id: int, sources: Sequence[str]) -> list[int]:
    """Ids of a dataset's sets (import order) with no clustering from any of ``sources``."""
    query = select(SetRow.id).where(SetRow.dataset_id == dataset_id)
    for source in sources:
        query = query.where(~_has_source(source, None))
    return list(session.scalars(query.order_by(SetRow.position)))


def load_entity_sets(session: Session, set_ids: Sequence[int]) -> dict[int, EntitySet]:
    """The given sets in the library's format (unlabelled), keyed by set id, in the order asked."""
    names = dict(session.execute(select(SetRow.id, SetRow.name).where(SetRow.id.in_(list(set_ids)))).all())
    missing = [i for i in set_ids if i not in names]
    if missing:
        raise NotFoundError(f"no sets with ids {missing[:10]}")
    members: dict[int, list[Entity]] = {i: [] for i in set_ids}
    rows = session.execute(
        select(EntityRow.set_id, EntityRow.name, EntityRow.text)
        .where(EntityRow.set_id.in_(list(set_ids))).order_by(EntityRow.set_id, EntityRow.position)
    )
    for set_id, name, text in rows:
        members[set_id].append(Entity(name, text))
    return {i: EntitySet(names[i], members[i]) for i in set_ids}


def set_sizes(session: Session, dataset_id: int) -> dict[int, int]:
    """Each set of a dataset, by id, with its number of entities (in import order)."""
    query = select(SetRow.id, SetRow.size).where(SetRow.dataset_id == dataset_id).order_by(SetRow.position)
    return {set_id: size for set_id, size in session.execute(query)}


def set_size_range(session: Session, dataset_id: int) -> tuple[int, int]:
    """The smallest and largest set size of a dataset ((2, 2) for a dataset without sets)."""
    low, high = session.execute(select(func.min(SetRow.size), func.max(SetRow.size))
                                .where(SetRow.dataset_id == dataset_id)).one()
    return (int(low or 2), int(high or 2))


def dataset_set_ids(session: Session, dataset_id: int, only: Collection[int] | None = None) -> list[int]:
    """The ids of a dataset's sets in file order; with ``only``, just those (any not in the dataset are left out)."""
    query = select(SetRow.id).where(SetRow.dataset_id == dataset_id).order_by(SetRow.position)
    if only is not None:
        query = query.where(SetRow.id.in_(list(only)))
    return list(session.scalars(query))
