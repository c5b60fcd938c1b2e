"""Datasets: create, import sets into, list, find and delete.

Imports run inside the caller's session: a failure anywhere rolls the whole import back with the
session (see :func:`db.session.session_scope`), so nothing is half-imported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cactus.data import DataError, EntitySet, read_dataset, read_sets
from cactus.data.hygiene import check_set
from db.errors import ConflictError, NotFoundError, StoreError
from db.models import NOUNS, SPLITS, ClusteringRow, DatasetRow, EntityRow, JobRow, ModelRow, SetRow
from db.partition import Partition
from db.types import utcnow
from db.views import DatasetInfo

#: Called as ``on_progress(done, total)`` after each batch of an import.
ProgressCallback = Callable[[int, int], None]
BATCH_SETS = 500


@dataclass(frozen=True)
class ImportSummary:
    """What an import added."""

    dataset_id: int
    sets: int
    entities: int
    labelled: int  # sets that came with clusters (stored as "reference" clusterings)


def create_dataset(session: Session, name: str, noun: str = "products", description: str = "") -> DatasetInfo:
    """Create an empty dataset.

    Raises:
        StoreError: empty name or unknown noun.
        ConflictError: a dataset of that name exists.
    """
    name = name.strip()
    if not name:
        raise StoreError("a dataset needs a name")
    if noun not in NOUNS:
        raise StoreError(f"noun must be one of {', '.join(NOUNS)} (what the entities are), got {noun!r}")
    if session.scalar(select(DatasetRow.id).where(DatasetRow.name == name)) is not None:
        raise ConflictError(f"a dataset named {name!r} exists already; choose another name or import into it")
    row = DatasetRow(name=name, noun=noun, description=description)
    session.add(row)
    session.flush()
    return DatasetInfo.of(row)


def store_is_empty(session: Session) -> bool:
    """True for a store that was never used: no dataset, no model, no job."""
    return all(session.scalar(select(func.count()).select_from(table)) == 0
               for table in (DatasetRow, ModelRow, JobRow))


def get_dataset(session: Session, dataset_id: int) -> DatasetInfo:
    """One dataset with its set counts."""
    row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise NotFoundError(f"no dataset with id {dataset_id}; list the datasets to see which exist")
    sets, reviewed = session.execute(
        select(func.count(SetRow.id), func.count(SetRow.id).filter(SetRow.reviewed))
        .where(SetRow.dataset_id == dataset_id)
    ).one()
    return DatasetInfo.of(row, sets=sets, reviewed=reviewed)


def find_dataset(session: Session, name: str) -> DatasetInfo:
    """The dataset named ``name``."""
    dataset_id = session.scalar(select(DatasetRow.id).where(DatasetRow.name == name))
    if dataset_id is None:
        known = session.scalars(select(DatasetRow.name).order_by(DatasetRow.name).limit(20)).all()
        raise NotFoundError(f"no dataset named {name!r}; known: {', '.join(known) or 'none (import one first)'}")
    return get_dataset(session, dataset_id)


def list_datasets(session: Session) -> list[DatasetInfo]:
    """Every dataset, newest first, with its set counts."""
    counts = (
        select(SetRow.dataset_id, func.count(SetRow.id).label("sets"),
               func.count(SetRow.id).filter(SetRow.reviewed).label("reviewed"))
        .group_by(SetRow.dataset_id).subquery()
    )
    rows = session.execute(
        select(DatasetRow, counts.c.sets, counts.c.reviewed)
        .outerjoin(counts, counts.c.dataset_id == DatasetRow.id)
        .order_by(DatasetRow.id.desc())
    ).all()
    return [DatasetInfo.of(row, sets=sets or 0, reviewed=reviewed or 0) for row, sets, reviewed in rows]


def delete_dataset(session: Session, dataset_id: int) -> None:
    """Delete a dataset with its sets, clusterings and edit logs (models and jobs stay)."""
    if session.get(DatasetRow, dataset_id) is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))


def _set_split(entity_set: EntitySet, split: str | None) -> str:
    chosen = split if split is not None else entity_set.extra.get("split", "unassigned")
    if chosen not in SPLITS:
        raise DataError(f"set {entity_set.id!r}: split must be one of {', '.join(SPLITS)}, got {chosen!r}",
                        field="split")
    return chosen


def import_sets(
    session: Session,
    dataset_id: int,
    sets: Iterable[EntitySet],
    *,
    split: str | None = None,
    producer: str = "import",
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Add validated sets to a dataset; their clusters, when present, become "reference" clusterings.

    Args:
        session: the session; the caller's transaction makes the import all-or-nothing.
        dataset_id: the dataset to add to.
        sets: sets as read by :func:`cactus.data.read_sets`.
        split: the split of every set; None to take each set's ``"split"`` key, else "unassigned".
        producer: recorded on the reference clusterings (e.g. the file name).
        on_progress: called as ``on_progress(done, total)`` after each batch of sets.

    Raises:
        ConflictError: a set id already in the dataset, or twice in ``sets``.
        DataError: a bad ``split``, or a NUL or lone surrogate in a string (before anything is written).
    """
    if session.get(DatasetRow, dataset_id) is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    sets = [check_set(s) for s in sets]
    names = [s.id for s in sets]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ConflictError(f"set ids appear twice in the import: {', '.join(duplicates[:10])}")
    existing = set(session.scalars(select(SetRow.name).where(SetRow.dataset_id == dataset_id)))
    clashes = [n for n in names if n in existing]
    if clashes:
        raise ConflictError(f"the dataset already has sets {', '.join(map(repr, clashes[:10]))}"
                            f"{' ...' if len(clashes) > 10 else ''}; rename them or import into a new dataset")
    splits = [_set_split(s, split) for s in sets]
    partitions = [Partition.build(s.clusters, s.cluster_names, size=len(s)) if s.clusters is not None else None
                  for s in sets]
    start = session.scalar(select(func.coalesce(func.max(SetRow.position), -1)).where(
        SetRow.dataset_id == dataset_id)) + 1
    entity_count = 0
    now = utcnow()
    for begin in range(0, len(sets), BATCH_SETS):
        batch = range(begin, min(begin + BATCH_SETS, len(sets)))
        set_ids = session.scalars(
            insert(SetRow).returning(SetRow.id, sort_by_parameter_order=True),
            [{"dataset_id": dataset_id, "name": sets[i].id, "position": start + i, "size": len(sets[i]),
              "split": splits[i], "reviewed": False,
              "extra": {k: v for k, v in sets[i].extra.items() if k != "split"}, "created_at": now}
             for i in batch],
        ).all()
        entity_rows = [{"set_id": set_id, "position": p, "name": e.id, "text": e.text}
                       for set_id, i in zip(set_ids, batch, strict=True) for p, e in enumerate(sets[i].entities)]
        session.execute(insert(EntityRow), entity_rows)
        entity_count += len(entity_rows)
        reference = [{"set_id": set_id, "source": "reference", "producer": producer,
                      "clusters": partitions[i].to_json()["clusters"], "names": list(partitions[i].names),
                      "details": {}, "created_at": now, "updated_at": now}
                     for set_id, i in zip(set_ids, batch, strict=True) if partitions[i] is not None]
        if reference:
            session.execute(insert(ClusteringRow), reference)
        if on_progress is not None:
            on_progress(batch.stop, len(sets))
    session.flush()
    return ImportSummary(dataset_id, len(sets), entity_count, sum(p is not None for p in partitions))


def import_sets_file(
    session: Session,
    path: str | Path,
    *,
    dataset: str,
    noun: str = "products",
    split: str | None = None,
    append: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Read a sets JSONL file (validated in full first) into the dataset named ``dataset``.

    Args:
        append: add to an existing dataset of that name instead of refusing.

    Raises:
        DataError: the file has an invalid line (nothing is written).
        ConflictError: the dataset exists and ``append`` is false.
    """
    loaded = read_sets(path)
    if not loaded.sets:
        raise DataError("the file holds no sets", path=path)
    target = _target_dataset(session, dataset, noun, append)
    return import_sets(session, target, loaded.sets, split=split, producer=Path(path).name,
                       on_progress=on_progress)


def import_dataset_folder(
    session: Session,
    root: str | Path,
    *,
    dataset: str,
    noun: str = "products",
    splits: Sequence[str] = ("train", "val", "test"),
    append: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import a dataset folder (``train.jsonl``, ``val.jsonl``, ``test.jsonl``), keeping each set's split."""
    folder = read_dataset(root, splits, require_labels=False)
    target = _target_dataset(session, dataset, noun, append)
    sets = [s for split in splits for s in folder[split]]
    split_of = {id(s): split for split in splits for s in folder[split]}
    for entity_set in sets:
        entity_set.extra["split"] = split_of[id(entity_set)]
    return import_sets(session, target, sets, producer=Path(root).name, on_progress=on_progress)


def _target_dataset(session: Session, name: str, noun: str, append: bool) -> int:
    existing = session.scalar(select(DatasetRow).where(DatasetRow.name == name))
    if existing is None:
        return create_dataset(session, name, noun).id
    if not append:
        raise ConflictError(f"a dataset named {name!r} exists already; choose another name, "
                            "or append to it (--append)")
    if existing.noun != noun:
        raise ConflictError(f"dataset {name!r} holds {existing.noun}, not {noun}")
    return existing.id
