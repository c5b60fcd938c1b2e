"""Entity sets: the JSONL format, its validation, and datasets (folders of train/val/test files).

One set per line::

    {"id": "s1",
     "entities": [{"id": "e1", "text": "glue stick"}, {"id": "e2", "text": "hot glue gun"}],
     "clusters": [[0, 1]],
     "cluster_names": ["Glue"]}

``clusters`` lists entity indices (0-based positions in ``entities``); together they must cover
every entity exactly once. ``clusters`` and ``cluster_names`` are absent for an unlabelled set.
A predictions file adds ``"similarity": [[float]]`` (N x N). Unknown keys are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cactus.data.errors import DataError, SkippedLine
from cactus.data.jsonl import iter_text_lines, parse_json_line, write_jsonl

SPLITS = ("train", "val", "test")
KNOWN_KEYS = ("id", "entities", "clusters", "cluster_names", "similarity")


@dataclass(frozen=True)
class Entity:
    """One short text of a set."""

    id: str
    text: str


@dataclass
class EntitySet:
    """A set of entities and, when labelled, its partition into named clusters."""

    id: str
    entities: list[Entity]
    clusters: list[list[int]] | None = None
    cluster_names: list[str] | None = None
    similarity: list[list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.entities]

    @property
    def is_labelled(self) -> bool:
        return self.clusters is not None

    def __len__(self) -> int:
        return len(self.entities)

    def labels(self) -> np.ndarray:
        """Cluster index of every entity, shape (N,); raises if the set is unlabelled."""
        if self.clusters is None:
            raise DataError(f"set '{self.id}' has no clusters (it is unlabelled)", field="clusters")
        return clusters_to_labels(self.clusters, len(self.entities))

    def with_labels(
        self, labels: Sequence[int] | np.ndarray, names: Sequence[str] | None = None
    ) -> EntitySet:
        """A copy of this set clustered by ``labels`` (one cluster id per entity)."""
        clusters = labels_to_clusters(labels)
        return EntitySet(
            id=self.id,
            entities=list(self.entities),
            clusters=clusters,
            cluster_names=list(names) if names is not None else None,
            extra=dict(self.extra),
        )

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "entities": [{"id": e.id, "text": e.text} for e in self.entities]}
        if self.clusters is not None:
            row["clusters"] = [list(c) for c in self.clusters]
            if self.cluster_names is not None:
                row["cluster_names"] = list(self.cluster_names)
        if self.similarity is not None:
            row["similarity"] = self.similarity
        row.update(self.extra)
        return row


def labels_to_clusters(labels: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Group entity indices by label, clusters ordered by their first member."""
    order: dict[int, list[int]] = {}
    for index, label in enumerate(np.asarray(labels).tolist()):
        order.setdefault(int(label), []).append(index)
    return list(order.values())


def clusters_to_labels(clusters: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Inverse of :func:`labels_to_clusters` for a validated partition of ``range(n)``."""
    labels = np.full(n, -1, dtype=np.int64)
    for c, members in enumerate(clusters):
        labels[list(members)] = c
    return labels


def _require_str(value: Any, field_name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", field=field_name)
    if not allow_empty and not value.strip():
        raise DataError("empty text" if field_name.endswith("text") else "empty string", field=field_name)
    return value


def parse_entity_set(obj: Any, *, require_labels: bool = False) -> EntitySet:
    """Validate one decoded JSON object and build an :class:`EntitySet`.

    Raises:
        DataError: naming the field at fault (the caller adds file and line).
    """
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object per line, got {type(obj).__name__}")
    if "id" not in obj:
        raise DataError("missing set id", field="id")
    set_id = _require_str(obj["id"], "id")
    raw_entities = obj.get("entities")
    if not isinstance(raw_entities, list):
        raise DataError("expected a list of {\"id\", \"text\"} objects", field="entities")
    if len(raw_entities) < 2:
        raise DataError(
            f"a set needs at least 2 entities to be clustered, got {len(raw_entities)}", field="entities"
        )
    entities: list[Entity] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_entities):
        if not isinstance(raw, dict):
            raise DataError(f"expected an object, got {type(raw).__name__}", field=f"entities[{i}]")
        if "id" not in raw:
            raise DataError("missing entity id", field=f"entities[{i}].id")
        entity_id = _require_str(raw["id"], f"entities[{i}].id")
        text = _require_str(raw.get("text"), f"entities[{i}].text")
        if entity_id in seen:
            raise DataError(
                f"duplicate entity '{entity_id}' (also entities[{seen[entity_id]}])", field=f"entities[{i}].id"
            )
        seen[entity_id] = i
        entities.append(Entity(entity_id, text))

    clusters = _parse_clusters(obj, len(entities), require_labels=require_labels)
    names = _parse_cluster_names(obj, clusters)
    similarity = _parse_similarity(obj.get("similarity"), len(entities))
    extra = {k: v for k, v in obj.items() if k not in KNOWN_KEYS}
    return EntitySet(set_id, entities, clusters, names, similarity, extra)


def _parse_clusters(obj: dict[str, Any], n: int, *, require_labels: bool) -> list[list[int]] | None:
    raw = obj.get("clusters")
    if raw is None:
        if require_labels:
            raise DataError("the set is unlabelled but labels are required here", field="clusters")
        if "cluster_names" in obj:
            raise DataError("cluster_names given without clusters", field="cluster_names")
        return None
    if not isinstance(raw, list) or not raw:
        raise DataError("expected a non-empty list of lists of entity indices", field="clusters")
    owner: dict[int, int] = {}
    clusters: list[list[int]] = []
    for c, members in enumerate(raw):
        if not isinstance(members, list) or not members:
            raise DataError("expected a non-empty list of entity indices", field=f"clusters[{c}]")
        for j, index in enumerate(members):
            where = f"clusters[{c}][{j}]"
            if isinstance(index, bool) or not isinstance(index, int):
                raise DataError(f"expected an entity index (integer), got {index!r}", field=where)
            if not 0 <= index < n:
                raise DataError(f"entity index {index} out of range: the set has {n} entities (0..{n - 1})",
                                field=where)
            if index in owner:
                raise DataError(f"entity {index} is in two clusters (also clusters[{owner[index]}])", field=where)
            owner[index] = c
        clusters.append(list(members))
    missing = [i for i in range(n) if i not in owner]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"entities in no cluster: {shown}; every entity of a labelled set must be in one cluster "
            "(drop 'clusters' to mark the set unlabelled)",
            field="clusters",
        )
    return clusters


def _parse_cluster_names(obj: dict[str, Any], clusters: list[list[int]] | None) -> list[str] | None:
    raw = obj.get("cluster_names")
    if raw is None or clusters is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DataError("expected a list of strings", field="cluster_names")
    if len(raw) != len(clusters):
        raise DataError(f"{len(raw)} names for {len(clusters)} clusters", field="cluster_names")
    return list(raw)


def _parse_similarity(raw: Any, n: int) -> list[list[float]] | None:
    if raw is None:
        return None
    ok = isinstance(raw, list) and len(raw) == n and all(isinstance(r, list) and len(r) == n for r in raw)
    if not ok:
        raise DataError(f"expected an {n} x {n} matrix (one row per entity)", field="similarity")
    for i, row in enumerate(raw):
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(f"expected a finite number, got {value!r}", field=f"similarity[{i}][{j}]")
    return raw


@dataclass
class LoadedSets:
    """The sets of one file and the lines left out by ``skip_invalid`` (empty otherwise)."""

    sets: list[EntitySet]
    skipped: list[SkippedLine] = field(default_factory=list)


def read_sets(
    path: str | Path, *, require_labels: bool = False, skip_invalid: bool = False
) -> LoadedSets:
    """Read and validate a sets JSONL file.

    Args:
        path: the file.
        require_labels: refuse unlabelled sets (gold files, training data).
        skip_invalid: record invalid lines in ``skipped`` and go on, instead of raising.

    Raises:
        DataError: ``path:line: field: reason`` for the first invalid line (unless ``skip_invalid``).
    """
    loaded = LoadedSets([])
    first_line: dict[str, int] = {}
    for number, text in iter_text_lines(path):
        try:
            if isinstance(text, DataError):
                raise text
            entity_set = parse_entity_set(parse_json_line(text, path=path, line=number),
                                          require_labels=require_labels)
            if entity_set.id in first_line:
                raise DataError(f"duplicate set id '{entity_set.id}' (first on line {first_line[entity_set.id]})",
                                field="id")
        except DataError as exc:
            located = exc.located(path=path, line=number)
            if not skip_invalid:
                raise located from None
            loaded.skipped.append(SkippedLine(str(path), number, located.describe()))
            continue
        first_line[entity_set.id] = number
        loaded.sets.append(entity_set)
    return loaded


def write_sets(path: str | Path, sets: Iterable[EntitySet]) -> None:
    """Write sets as JSONL (atomically)."""
    write_jsonl(path, (s.to_json() for s in sets))


@dataclass
class Dataset:
    """A folder with ``train.jsonl``, ``val.jsonl`` and ``test.jsonl``."""

    root: Path
    splits: dict[str, list[EntitySet]]

    def __getitem__(self, split: str) -> list[EntitySet]:
        return self.splits[split]

    @property
    def train(self) -> list[EntitySet]:
        return self.splits["train"]

    @property
    def val(self) -> list[EntitySet]:
        return self.splits["val"]

    @property
    def test(self) -> list[EntitySet]:
        return self.splits["test"]


def read_dataset(root: str | Path, splits: Sequence[str] = SPLITS, *, require_labels: bool = True) -> Dataset:
    """Read the named splits of a dataset folder, each validated; every split must be non-empty."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            "dataset folder not found; a dataset is a folder with train.jsonl, val.jsonl and test.jsonl "
            "(`cactus make-sets` writes one)",
            path=root,
        )
    missing = [s for s in splits if not (root / f"{s}.jsonl").is_file()]
    if missing:
        raise DataError(f"dataset folder lacks {', '.join(f'{s}.jsonl' for s in missing)}", path=root)
    loaded: dict[str, list[EntitySet]] = {}
    for split in splits:
        sets = read_sets(root / f"{split}.jsonl", require_labels=require_labels).sets
        if not sets:
            raise DataError("no sets in this split", path=root / f"{split}.jsonl")
        loaded[split] = sets
    return Dataset(root, loaded)


def write_dataset(root: str | Path, splits: dict[str, Sequence[EntitySet]]) -> None:
    """Write a dataset folder (one JSONL file per split)."""
    for split, sets in splits.items():
        write_sets(Path(root) / f"{split}.jsonl", sets)
