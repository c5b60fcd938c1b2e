"""A dataset's best labels, counted and written out as the train/val/test folder ``cactus train`` reads.

The label of a set is, in order of preference: its human clustering (only once the set is marked
reviewed, unless ``human="any"``), else its newest teacher clustering, else its newest reference
clustering; a clustering that places fewer than two entities does not count. Sets with none are left out.

Entities that the clustering's producer did not place (the teacher left them out of its reply; they
are listed in ``details["unplaced"]`` and shown as singletons) are left out of the exported set, and a
set with fewer than two placed entities is left out.

Sets in no split ("unassigned") get one when exported: a shuffle seeded with ``seed`` deals them out by
``fractions``, at least one set to any split that has none yet, and the choice is saved so the test
split stays the same from one export to the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cactus.data import SPLITS as DATA_SPLITS
from cactus.data import EntitySet, write_dataset
from db.clusterings import latest_clusterings
from db.errors import NotFoundError, StoreError
from db.models import DatasetRow, SetRow
from db.sets import load_entity_sets, set_split
from db.views import ClusteringView

LABEL_PREFERENCE = ("human", "teacher", "reference")
HumanPolicy = Literal["reviewed", "any"]


@dataclass(frozen=True)
class LabelSummary:
    """How many sets of each split have a label, by the source it comes from.

    ``counts[split][source]`` for split in train/val/test/unassigned and source in human/teacher/reference,
    plus ``counts[split]["unlabelled"]``.
    """

    dataset_id: int
    counts: dict[str, dict[str, int]]

    @property
    def labelled(self) -> int:
        return sum(n for per in self.counts.values() for source, n in per.items() if source != "unlabelled")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_labels` wrote."""

    root: Path
    sets: dict[str, int]  # per split
    sources: dict[str, int]  # per label source
    newly_assigned: dict[str, int] = field(default_factory=dict)  # unassigned sets given a split now


def best_labels(session: Session, dataset_id: int, *, human: HumanPolicy = "reviewed"
                ) -> dict[int, ClusteringView]:
    """The preferred clustering of every labelled set of a dataset, keyed by set id (see module doc)."""
    if human not in ("reviewed", "any"):
        raise StoreError(f"human must be 'reviewed' or 'any', got {human!r}")
    ids = select(SetRow.id).where(SetRow.dataset_id == dataset_id)
    chosen: dict[int, ClusteringView] = {}
    human_ids = ids.where(SetRow.reviewed) if human == "reviewed" else ids
    for source, set_ids in (("human", human_ids), ("teacher", ids), ("reference", ids)):
        for set_id, clustering in latest_clusterings(session, set_ids, source).items():
            if _placed(clustering) >= 2:
                chosen.setdefault(set_id, clustering)
    return chosen


def _placed(clustering: ClusteringView) -> int:
    """How many entities the clustering's producer placed (all but ``details["unplaced"]``)."""
    return sum(len(c) for c in clustering.clusters) - len(clustering.details.get("unplaced") or [])


def label_summary(session: Session, dataset_id: int, *, human: HumanPolicy = "reviewed") -> LabelSummary:
    """Counts of the labels an export would use, per split and source (for the Train page)."""
    if session.get(DatasetRow, dataset_id) is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    labels = best_labels(session, dataset_id, human=human)
    counts = {split: {source: 0 for source in (*LABEL_PREFERENCE, "unlabelled")}
              for split in (*DATA_SPLITS, "unassigned")}
    for set_id, split in session.execute(select(SetRow.id, SetRow.split).where(SetRow.dataset_id == dataset_id)):
        counts[split][labels[set_id].source if set_id in labels else "unlabelled"] += 1
    return LabelSummary(dataset_id, counts)


def assign_splits(session: Session, dataset_id: int, set_ids: list[int], *, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, int]:
    """Deal unassigned sets into train/val/test with a seeded shuffle and save the choice.

    Splits that have no set yet get at least one (when there are enough sets). Returns how many went
    to each split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise StoreError(f"fractions must be three non-negative numbers for train/val/test, got {fractions!r}")
    if not set_ids:
        return {}
    present = set(session.scalars(select(SetRow.split).where(SetRow.dataset_id == dataset_id,
                                                             SetRow.split.in_(DATA_SPLITS)).distinct()))
    order = sorted(set_ids)
    random.Random(seed).shuffle(order)
    total = sum(fractions)
    counts = [int(len(order) * f / total) for f in fractions]
    counts[0] = len(order) - counts[1] - counts[2]
    for k, split in enumerate(DATA_SPLITS):  # a split that would stay empty takes one from the largest
        if counts[k] == 0 and split not in present and fractions[k] > 0:
            donor = max(range(3), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[k] += 1
    assigned: dict[str, int] = {}
    start = 0
    for split, count in zip(DATA_SPLITS, counts, strict=True):
        if count:
            set_split(session, order[start:start + count], split)
            assigned[split] = count
        start += count
    return assigned


def labelled_set(entity_set: EntitySet, clustering: ClusteringView) -> EntitySet | None:
    """``entity_set`` clustered by ``clustering``, without the entities it did not place (None if < 2 remain)."""
    unplaced = set(clustering.details.get("unplaced") or [])
    keep = [p for p in range(len(entity_set)) if p not in unplaced]
    if len(keep) < 2:
        return None
    index = {p: i for i, p in enumerate(keep)}
    clusters: list[list[int]] = []
    names: list[str] = []
    for members, name in zip(clustering.clusters, clustering.names, strict=True):
        kept = [index[p] for p in members if p in index]
        if kept:
            clusters.append(kept)
            names.append(name)
    extra = {**entity_set.extra, "label_source": clustering.source}
    return EntitySet(entity_set.id, [entity_set.entities[p] for p in keep], clusters, names, extra=extra)


def export_labels(
    session: Session,
    dataset_id: int,
    root: str | Path,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    human: HumanPolicy = "reviewed",
    require_all_splits: bool = True,
) -> ExportSummary:
    """Write the dataset's best labels to ``root/{train,val,test}.jsonl`` for ``cactus train``.

    Each written set carries ``"label_source"`` (human, teacher or reference). Unassigned labelled sets
    are first given a split (saved; see :func:`assign_splits`).

    Raises:
        StoreError: no labelled sets, or (with ``require_all_splits``) a split left empty, which
            ``cactus train`` would refuse.
    """
    dataset = session.get(DatasetRow, dataset_id)
    if dataset is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    labels = best_labels(session, dataset_id, human=human)
    if not labels:
        raise StoreError(f"dataset {dataset.name!r} has no labelled sets: run the teacher on it, review some "
                         "sets, or import sets with clusters")
    splits = dict(session.execute(select(SetRow.id, SetRow.split).where(SetRow.id.in_(list(labels)))).all())
    unassigned = [i for i, split in splits.items() if split == "unassigned"]
    newly = assign_splits(session, dataset_id, unassigned, seed=seed, fractions=fractions)
    session.flush()
    splits = dict(session.execute(select(SetRow.id, SetRow.split).where(SetRow.id.in_(list(labels)))).all())
    positions = dict(session.execute(select(SetRow.id, SetRow.position).where(SetRow.id.in_(list(labels)))).all())
    ordered = sorted(labels, key=positions.__getitem__)
    entity_sets = load_entity_sets(session, ordered)
    out: dict[str, list[EntitySet]] = {split: [] for split in DATA_SPLITS}
    sources: dict[str, int] = {}
    for set_id in ordered:
        clustering = labels[set_id]
        entity_set = labelled_set(entity_sets[set_id], clustering)
        assert entity_set is not None  # best_labels keeps clusterings that place two entities or more
        out[splits[set_id]].append(entity_set)
        sources[clustering.source] = sources.get(clustering.source, 0) + 1
    empty = [split for split, sets in out.items() if not sets]
    if require_all_splits and empty:
        raise StoreError(f"dataset {dataset.name!r} has no labelled sets in {', '.join(empty)}: training needs "
                         f"train, val and test; label more sets (it has {len(labels)} labelled) or move some "
                         "into those splits")
    write_dataset(root, out)
    return ExportSummary(Path(root), {split: len(sets) for split, sets in out.items()}, sources, newly)
