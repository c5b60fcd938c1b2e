"""Partitions of a set and the edits a person makes to them, as pure functions (no database).

A :class:`Partition` is the sets format's ``clusters`` (lists of 0-based entity positions that cover
the set once) with one name per cluster (``""`` when unnamed). Clusters are referred to by their index
in the current partition. Every edit returns a new partition; a cluster that an edit leaves empty is
removed, so the indices after it shift down by one: always use the partition an edit returns.

The edits (each records its ``params`` in the edit log, see :mod:`db.edits`):

==========  ==============================================================================
``move``    entity ``entity`` to cluster ``to``, or to a new cluster (``to=None``) named ``name``
``merge``   clusters ``clusters`` into the first of them (keeping its name unless ``name`` is given)
``split``   entities ``entities`` out of cluster ``cluster`` into a new cluster named ``name``
``rename``  cluster ``cluster`` to ``name``
``create``  a new cluster named ``name`` from ``entities``, wherever they are now
``delete``  cluster ``cluster``: each of its entities becomes a cluster of its own, unnamed
==========  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from db.errors import EditError

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Partition:
    """Clusters of entity positions, with one name per cluster.

    Attributes:
        clusters: tuple of clusters, each a tuple of entity positions in ``range(n)``.
        names: one name per cluster (``""`` when unnamed).
    """

    clusters: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.clusters):
            raise EditError(f"{len(self.names)} names for {len(self.clusters)} clusters")
        seen: set[int] = set()
        for c, members in enumerate(self.clusters):
            if not members:
                raise EditError(f"cluster {c} is empty; every cluster needs at least one entity")
            for position in members:
                if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                    raise EditError(f"cluster {c} holds {position!r}, which is not an entity position")
                if position in seen:
                    raise EditError(f"entity {position} is in two clusters")
                seen.add(position)
        if seen != set(range(len(seen))):
            missing = sorted(set(range(max(seen) + 1)) - seen)
            raise EditError(f"entities {missing[:10]} are in no cluster; a clustering must cover every entity")

    @classmethod
    def build(cls, clusters: Sequence[Sequence[int]], names: Sequence[str] | None = None, *,
              size: int | None = None) -> Partition:
        """Validate plain lists (as in the sets format) into a partition of ``size`` entities.

        Raises:
            EditError: the clusters do not cover ``range(size)`` exactly once, or the names do not match.
        """
        names = list(names) if names is not None else [""] * len(clusters)
        if not all(isinstance(x, str) for x in names):
            raise EditError("cluster names must be strings")
        partition = cls(tuple(tuple(int(p) for p in c) for c in clusters), tuple(names))
        if size is not None and partition.size != size:
            raise EditError(f"the clustering covers {partition.size} entities but the set has {size}")
        return partition

    @classmethod
    def singletons(cls, size: int) -> Partition:
        """Every entity in a cluster of its own."""
        return cls(tuple((i,) for i in range(size)), ("",) * size)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Partition:
        """Inverse of :meth:`to_json`."""
        return cls.build(data["clusters"], data.get("names"))

    def to_json(self) -> dict[str, Any]:
        """``{"clusters": [[int]], "names": [str]}`` as stored in the edit log."""
        return {"clusters": [list(c) for c in self.clusters], "names": list(self.names)}

    @property
    def size(self) -> int:
        """Number of entities."""
        return sum(len(c) for c in self.clusters)

    def labels(self) -> list[int]:
        """Cluster index of every entity, in entity order."""
        labels = [0] * self.size
        for c, members in enumerate(self.clusters):
            for position in members:
                labels[position] = c
        return labels

    def cluster_of(self, entity: int) -> int:
        """Index of the cluster holding ``entity``."""
        for c, members in enumerate(self.clusters):
            if entity in members:
                return c
        raise EditError(f"entity {entity} is not in this set (it has {self.size} entities, 0..{self.size - 1})")

    def _check_cluster(self, cluster: int) -> int:
        if isinstance(cluster, bool) or not isinstance(cluster, int) or not 0 <= cluster < len(self.clusters):
            raise EditError(f"no cluster {cluster!r}: the clustering has {len(self.clusters)} clusters "
                            f"(0..{len(self.clusters) - 1}); reload the set and try again")
        return cluster

    def _rebuilt(self, clusters: list[list[int]], names: list[str]) -> Partition:
        kept = [(tuple(c), n) for c, n in zip(clusters, names, strict=True) if c]
        return Partition(tuple(c for c, _ in kept), tuple(n for _, n in kept))


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise EditError(f"a cluster name must be text, got {type(name).__name__}")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise EditError(f"cluster names are at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    return name


def _check_entities(partition: Partition, entities: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(entities)
    if not chosen:
        raise EditError("select at least one entity")
    if len(set(chosen)) != len(chosen):
        raise EditError("an entity is selected twice")
    for entity in chosen:
        if isinstance(entity, bool) or not isinstance(entity, int) or not 0 <= entity < partition.size:
            raise EditError(f"no entity {entity!r}: the set has {partition.size} entities (0..{partition.size - 1})")
    return chosen


@dataclass(frozen=True)
class Edit:
    """An edit of a partition; subclasses name their ``action`` and implement :meth:`apply`."""

    action: ClassVar[str]

    def apply(self, partition: Partition) -> Partition:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The edit's arguments as JSON, for the edit log."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Move(Edit):
    """Move entity ``entity`` to cluster ``to``, or to a new cluster named ``name`` when ``to`` is None."""

    action: ClassVar[str] = "move"
    entity: int
    to: int | None = None
    name: str = ""

    def apply(self, partition: Partition) -> Partition:
        (entity,) = _check_entities(partition, [self.entity])
        source = partition.cluster_of(entity)
        clusters = [list(c) for c in partition.clusters]
        names = list(partition.names)
        if self.to is None:
            clusters[source].remove(entity)
            clusters.append([entity])
            names.append(_check_name(self.name))
        else:
            target = partition._check_cluster(self.to)
            if target == source:
                return partition
            clusters[source].remove(entity)
            clusters[target] = sorted([*clusters[target], entity])
        return partition._rebuilt(clusters, names)


@dataclass(frozen=True)
class Merge(Edit):
    """Merge ``clusters`` into the first of them; it keeps its name unless ``name`` is given."""

    action: ClassVar[str] = "merge"
    clusters: tuple[int, ...]
    name: str | None = None

    def apply(self, partition: Partition) -> Partition:
        chosen = [partition._check_cluster(c) for c in self.clusters]
        if len(set(chosen)) < 2:
            raise EditError("select at least two different clusters to merge")
        clusters = [list(c) for c in partition.clusters]
        names = list(partition.names)
        first = chosen[0]
        for c in chosen[1:]:
            clusters[first].extend(clusters[c])
            clusters[c] = []
        clusters[first].sort()
        if self.name is not None:
            names[first] = _check_name(self.name)
        return partition._rebuilt(clusters, names)


@dataclass(frozen=True)
class Split(Edit):
    """Move ``entities`` of cluster ``cluster`` out into a new cluster named ``name``."""

    action: ClassVar[str] = "split"
    cluster: int
    entities: tuple[int, ...]
    name: str = ""

    def apply(self, partition: Partition) -> Partition:
        source = partition._check_cluster(self.cluster)
        chosen = _check_entities(partition, self.entities)
        members = partition.clusters[source]
        outside = [e for e in chosen if e not in members]
        if outside:
            raise EditError(f"entities {outside} are not in cluster {source}; split takes entities of that cluster")
        if len(chosen) == len(members):
            raise EditError(f"that is all of cluster {source}: leave at least one entity behind to split it")
        clusters = [list(c) for c in partition.clusters]
        clusters[source] = [e for e in members if e not in chosen]
        clusters.append(sorted(chosen))
        return partition._rebuilt(clusters, [*partition.names, _check_name(self.name)])


@dataclass(frozen=True)
class Rename(Edit):
    """Give cluster ``cluster`` the name ``name``."""

    action: ClassVar[str] = "rename"
    cluster: int
    name: str

    def apply(self, partition: Partition) -> Partition:
        target = partition._check_cluster(self.cluster)
        names = list(partition.names)
        names[target] = _check_name(self.name)
        return Partition(partition.clusters, tuple(names))


@dataclass(frozen=True)
class Create(Edit):
    """Make a new cluster named ``name`` from ``entities``, taking them from their clusters."""

    action: ClassVar[str] = "create"
    entities: tuple[int, ...]
    name: str = ""

    def apply(self, partition: Partition) -> Partition:
        chosen = set(_check_entities(partition, self.entities))
        clusters = [[e for e in c if e not in chosen] for c in partition.clusters]
        clusters.append(sorted(chosen))
        return partition._rebuilt(clusters, [*partition.names, _check_name(self.name)])


@dataclass(frozen=True)
class Delete(Edit):
    """Dissolve cluster ``cluster``: each of its entities becomes an unnamed cluster of its own, in place."""

    action: ClassVar[str] = "delete"
    cluster: int

    def apply(self, partition: Partition) -> Partition:
        target = partition._check_cluster(self.cluster)
        clusters: list[tuple[int, ...]] = []
        names: list[str] = []
        for c, (members, name) in enumerate(zip(partition.clusters, partition.names, strict=True)):
            if c == target:
                clusters.extend((e,) for e in members)
                names.extend("" for _ in members)
            else:
                clusters.append(members)
                names.append(name)
        return Partition(tuple(clusters), tuple(names))


EDITS: dict[str, type[Edit]] = {cls.action: cls for cls in (Move, Merge, Split, Rename, Create, Delete)}


def edit_from_json(action: str, params: Mapping[str, Any]) -> Edit:
    """Rebuild an edit from its log entry (``action`` and ``params``).

    Raises:
        EditError: unknown action or parameters.
    """
    cls = EDITS.get(action)
    if cls is None:
        raise EditError(f"unknown edit action {action!r}; known: {', '.join(EDITS)}")
    try:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return cls(**fields)
    except TypeError as exc:
        raise EditError(f"bad parameters for {action}: {exc}") from None
