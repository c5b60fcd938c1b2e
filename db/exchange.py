"""Sets in and out of the store through files: download a dataset's sets with their best clustering and who made
it when, and import the teacher's clusterings from a file written by ``cactus label``.

Download: each set's best clustering is, in order, its human clustering (reviewed or still in progress), its
newest teacher clustering, its newest clustering by the model asked for (the active one by default), else its
newest reference clustering; a set with none is written without clusters. Every set carries ``split``,
``label_source``, ``labelled_by``, ``labelled_at`` and ``reviewed`` (with ``reviewed_by``/``reviewed_at`` once
reviewed); entities a teacher left out are listed in ``unplaced`` (entity ids) and shown as singletons.

Import: a labelled set matches a stored set of the dataset by its id (the set's name in the store) and its
entities by entity id. Every problem of the file is collected first; with any, nothing is stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cactus.data import EntitySet
from db.clusterings import add_clustering, latest_clusterings
from db.errors import NotFoundError, StoreError
from db.models import DatasetRow, ModelRow, SetRow
from db.sets import load_entity_sets
from db.views import ClusteringView

DOWNLOAD_PREFERENCE = ("human", "teacher", "model", "reference")
CSV_COLUMNS = ("set_id", "entity_id", "text", "cluster", "label_source", "labelled_by", "labelled_at", "split",
               "reviewed")
MAX_PROBLEMS_SHOWN = 10


def best_clusterings(session: Session, set_ids: Sequence[int], *, model_id: int | None = None
                     ) -> dict[int, ClusteringView]:
    """Each set's best clustering for a download (human > teacher > model > reference), keyed by set id."""
    if model_id is None:
        model_id = session.scalar(select(ModelRow.id).where(ModelRow.active))
    chosen: dict[int, ClusteringView] = {}
    for source in DOWNLOAD_PREFERENCE:
        if source == "model" and model_id is None:
            continue
        found = latest_clusterings(session, list(set_ids), source, model_id=model_id if source == "model" else None)
        for set_id, clustering in found.items():
            chosen.setdefault(set_id, clustering)
    return chosen


def sets_for_download(session: Session, dataset_id: int, set_ids: Sequence[int] | None = None, *,
                      model_id: int | None = None) -> list[EntitySet]:
    """A dataset's sets (or just ``set_ids``, in import order) with their best clustering and who/when."""
    if session.get(DatasetRow, dataset_id) is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    query = select(SetRow).where(SetRow.dataset_id == dataset_id).order_by(SetRow.position)
    if set_ids is not None:
        query = query.where(SetRow.id.in_(list(set_ids)))
    rows = list(session.scalars(query))
    ids = [row.id for row in rows]
    loaded = load_entity_sets(session, ids)
    best = best_clusterings(session, ids, model_id=model_id)
    out = []
    for row in rows:
        entity_set = loaded[row.id]
        clustering = best.get(row.id)
        extra: dict[str, object] = {"split": row.split, "label_source": None, "labelled_by": None,
                                    "labelled_at": None, "reviewed": row.reviewed}
        if row.reviewed:
            extra.update(reviewed_by=row.reviewed_by,
                         reviewed_at=row.reviewed_at.isoformat() if row.reviewed_at else None)
        if clustering is not None:
            entity_set.clusters = [list(c) for c in clustering.clusters]
            entity_set.cluster_names = list(clustering.names)
            extra.update(label_source=clustering.source, labelled_by=clustering.producer,
                         labelled_at=clustering.updated_at.isoformat())
            unplaced = clustering.details.get("unplaced") or []
            if unplaced:
                extra["unplaced"] = [entity_set.entities[p].id for p in unplaced]
        entity_set.extra = extra
        out.append(entity_set)
    return out


def sets_jsonl(sets: Sequence[EntitySet]) -> str:
    """The sets as a sets JSONL file (one set a line), as the Data page and ``cactus`` read it back."""
    return "".join(json.dumps(s.to_json(), ensure_ascii=False) + "\n" for s in sets)


def cluster_labels(entity_set: EntitySet) -> list[str]:
    """Each entity's cluster in words: the cluster's name when the set's names are distinct, else "cluster K"."""
    if entity_set.clusters is None:
        return [""] * len(entity_set)
    names = list(entity_set.cluster_names or [])
    usable = len(names) == len(entity_set.clusters) and all(names) and len(set(names)) == len(names)
    out = [""] * len(entity_set)
    for k, members in enumerate(entity_set.clusters):
        for p in members:
            out[p] = names[k] if usable else f"cluster {k + 1}"
    return out


def sets_csv(sets: Sequence[EntitySet]) -> str:
    """The sets as CSV, one entity a row (``set_id,entity_id,text,cluster,...``; the Data page reads it back)."""
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entity_set in sets:
        extra = entity_set.extra
        for entity, cluster in zip(entity_set.entities, cluster_labels(entity_set), strict=True):
            writer.writerow([entity_set.id, entity.id, entity.text, cluster, extra.get("label_source") or "",
                             extra.get("labelled_by") or "", extra.get("labelled_at") or "", extra.get("split", ""),
                             "yes" if extra.get("reviewed") else "no"])
    return handle.getvalue()


@dataclass(frozen=True)
class TeacherImport:
    """What :func:`import_teacher_labels` stored."""

    sets: int  # teacher clusterings stored
    unplaced: int  # entities of those sets the file's clusters left out (stored as singletons)


def teacher_clustering(stored: EntitySet, labelled: EntitySet) -> tuple[list[list[int]], list[str], list[int]]:
    """The file's clusters as positions of the stored set; entities it left out become singletons.

    Returns:
        (clusters, names, unplaced positions).
    """
    positions = {e.id: p for p, e in enumerate(stored.entities)}
    assert labelled.clusters is not None
    clusters = [sorted(positions[labelled.entities[i].id] for i in members) for members in labelled.clusters]
    names = list(labelled.cluster_names or [""] * len(clusters))
    placed = {p for c in clusters for p in c}
    unplaced = [p for p in range(len(stored)) if p not in placed]
    return clusters + [[p] for p in unplaced], names + [""] * len(unplaced), unplaced


def import_teacher_labels(session: Session, dataset_id: int, labelled: Sequence[EntitySet], *,
                          source_name: str) -> TeacherImport:
    """Store the clusterings of a ``cactus label`` output file as teacher clusterings of a dataset's sets.

    Args:
        labelled: the file's sets; each must have clusters, name a set of the dataset and hold only its entities.
        source_name: the file's name, kept in the clusterings' details.

    Raises:
        StoreError: listing the file's problems (unknown sets or entities, a set given twice, a set without
            clusters); nothing is stored then.
    """
    dataset = session.get(DatasetRow, dataset_id)
    if dataset is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    if not labelled:
        raise StoreError(f"{source_name} holds no sets")
    names = [s.id for s in labelled]
    stored_ids = dict(session.execute(select(SetRow.name, SetRow.id).where(
        SetRow.dataset_id == dataset_id, SetRow.name.in_(names))).all())
    stored = load_entity_sets(session, list(stored_ids.values()))
    problems: list[str] = []
    seen: set[str] = set()
    for entity_set in labelled:
        if entity_set.id in seen:
            problems.append(f"set {entity_set.id!r} is given twice")
            continue
        seen.add(entity_set.id)
        if entity_set.id not in stored_ids:
            problems.append(f"set {entity_set.id!r} is not in dataset {dataset.name!r}")
            continue
        if entity_set.clusters is None:
            problems.append(f"set {entity_set.id!r} has no clusters")
            continue
        known = {e.id for e in stored[stored_ids[entity_set.id]].entities}
        unknown = [e.id for e in entity_set.entities if e.id not in known]
        if unknown:
            problems.append(f"set {entity_set.id!r} has entities the stored set lacks: "
                            + ", ".join(repr(u) for u in unknown[:5]) + (" …" if len(unknown) > 5 else ""))
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise StoreError(f"{source_name}: {len(problems)} problem(s), nothing was imported: {shown}{more}")
    unplaced_total = 0
    for entity_set in labelled:
        set_id = stored_ids[entity_set.id]
        clusters, cluster_names, unplaced = teacher_clustering(stored[set_id], entity_set)
        unplaced_total += len(unplaced)
        teacher = entity_set.extra.get("teacher") if isinstance(entity_set.extra.get("teacher"), dict) else {}
        producer = str(teacher.get("model") or f"imported from {source_name}")
        add_clustering(session, set_id, "teacher", clusters, cluster_names, producer=producer[:200],
                       details={"unplaced": unplaced, "imported_from": source_name})
    return TeacherImport(len(labelled), unplaced_total)
