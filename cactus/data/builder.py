"""Build labelled entity sets whose ground truth depends on the set: from a category taxonomy, or from baskets.

Taxonomy mode: a node is a label-path prefix (``()`` is the root). An *anchor* is a node with 2 or more
children. A set draws an anchor (by default in proportion to the entities below it, so that broad anchors,
whose sets must be clustered coarsely, are as common as their share of the catalogue; ``anchors="uniform"``
draws every anchor alike, which makes most sets narrow ones), k ~ U(2, min(kmax, children)) of its children, and
s ~ U(1, smax) entities from each chosen child's subtree; its clusters are those children. The same two
entities thus fall together under a high anchor and apart under a deeper one. Nodes are prefixes, not
names: a fine name such as "food" under two parents is two nodes.

Basket mode: every basket (``{"user", "entity_ids"}``) becomes a set; its clustering is the partition by
label prefix at the deepest level that yields between 2 and kmax clusters, else at the coarsest level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cactus.data.entities import LABEL_SEPARATOR, LabelledEntity
from cactus.data.errors import DataError
from cactus.data.jsonl import iter_text_lines, parse_json_line
from cactus.data.sets import SPLITS, Entity, EntitySet

Prefix = tuple[str, ...]


@dataclass(frozen=True)
class BuilderConfig:
    """How many sets to build and how (see the module docstring)."""

    sets: int = 500  # in all splits together
    kmax: int = 6  # most clusters per set
    smax: int = 5  # most entities drawn from one cluster
    seed: int = 0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train, val, test
    split_by: str = "entities"  # "entities": disjoint entity pools per split; "sets": shared pool
    anchors: str = "entities"  # how anchors are drawn: "entities" (weighted by entities below) or "uniform"

    def __post_init__(self) -> None:
        if self.sets < 1:
            raise ValueError(f"--sets must be at least 1, got {self.sets}")
        if self.kmax < 2:
            raise ValueError(f"--kmax must be at least 2 (a clustering task needs 2 clusters), got {self.kmax}")
        if self.smax < 1:
            raise ValueError(f"--smax must be at least 1, got {self.smax}")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or not 0.999 < sum(self.split) < 1.001:
            raise ValueError(f"--split needs three non-negative fractions summing to 1 (train,val,test), "
                             f"got {','.join(map(str, self.split))}")
        if self.anchors not in ("entities", "uniform"):
            raise ValueError(f"--anchors must be 'entities' or 'uniform', got '{self.anchors}'")
        if self.split_by not in ("entities", "sets"):
            raise ValueError(f"--split-by must be 'entities' or 'sets', got '{self.split_by}'")


@dataclass
class BuildReport:
    """What a build produced and left out, for the summary print."""

    splits: dict[str, list[EntitySet]]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for split, sets in self.splits.items():
            sizes = [len(s) for s in sets] or [0]
            ks = [len(s.clusters or []) for s in sets] or [0]
            out[split] = {
                "sets": len(sets),
                "entities_mean": float(np.mean(sizes)), "entities_min": min(sizes), "entities_max": max(sizes),
                "clusters_mean": float(np.mean(ks)), "clusters_min": min(ks), "clusters_max": max(ks),
            }
        return out

    def summary_text(self) -> str:
        lines = [f"{'split':<6} {'sets':>6} {'entities/set (mean, min-max)':>30} {'clusters/set (mean, min-max)':>30}"]
        for split, row in self.summary().items():
            entities = f"{row['entities_mean']:.1f}, {row['entities_min']}-{row['entities_max']}"
            clusters = f"{row['clusters_mean']:.1f}, {row['clusters_min']}-{row['clusters_max']}"
            lines.append(f"{split:<6} {row['sets']:>6} {entities:>30} {clusters:>30}")
        return "\n".join(lines + self.notes)


class Taxonomy:
    """Children and subtree members of every label-path prefix of an entity pool."""

    def __init__(self, entities: Sequence[LabelledEntity]) -> None:
        self.entities = list(entities)
        children: dict[Prefix, set[Prefix]] = defaultdict(set)
        members: dict[Prefix, list[int]] = defaultdict(list)
        for index, entity in enumerate(self.entities):
            path = entity.labels
            for depth in range(len(path) + 1):
                members[path[:depth]].append(index)
                if depth < len(path):
                    children[path[:depth]].add(path[: depth + 1])
        self.children = {node: sorted(kids) for node, kids in children.items()}
        self.members = dict(members)

    def anchors(self) -> list[Prefix]:
        """Nodes with 2 or more children, in a fixed order (root first)."""
        return sorted((node for node, kids in self.children.items() if len(kids) >= 2), key=lambda p: (len(p), p))


def anchor_weights(tax: Taxonomy, anchors: list[Prefix], how: str) -> np.ndarray:
    """Probability of drawing each anchor: uniform, or in proportion to the entities below it."""
    weights = np.ones(len(anchors)) if how == "uniform" else np.array([len(tax.members[a]) for a in anchors], float)
    return weights / weights.sum()


def _sample_taxonomy_set(tax: Taxonomy, anchors: list[Prefix], weights: np.ndarray, rng: np.random.Generator,
                         config: BuilderConfig, set_id: str) -> EntitySet:
    anchor = anchors[rng.choice(len(anchors), p=weights)]
    kids = tax.children[anchor]
    k = int(rng.integers(2, min(config.kmax, len(kids)) + 1))
    chosen = [kids[i] for i in sorted(rng.choice(len(kids), size=k, replace=False))]
    members: list[tuple[int, int]] = []  # (entity index in pool, cluster)
    texts: set[str] = set()
    for cluster, child in enumerate(chosen):
        pool = tax.members[child]
        want = int(rng.integers(1, config.smax + 1))
        taken = 0
        for i in rng.permutation(len(pool)):
            text = tax.entities[pool[i]].text.strip().casefold()
            if text in texts:  # the same text twice with two truths would be an impossible task
                continue
            texts.add(text)
            members.append((pool[i], cluster))
            taken += 1
            if taken == want:
                break
    order = rng.permutation(len(members))  # shuffle so that position says nothing about the cluster
    entities = [tax.entities[members[i][0]] for i in order]
    labels = [members[i][1] for i in order]
    clusters = [[j for j, c in enumerate(labels) if c == cluster] for cluster in range(len(chosen))]
    keep = [i for i, c in enumerate(clusters) if c]  # a child whose texts were all taken already
    return EntitySet(
        id=set_id,
        entities=[Entity(e.id, e.text) for e in entities],
        clusters=[clusters[i] for i in keep],
        cluster_names=[chosen[i][-1] for i in keep],
        extra={"anchor": LABEL_SEPARATOR.join(anchor) if anchor else "(root)"},
    )


def _split_counts(total: int, fractions: Sequence[float]) -> list[int]:
    counts = [round(total * f) for f in fractions]
    counts[0] = total - sum(counts[1:])
    return counts


def build_taxonomy_sets(entities: Sequence[LabelledEntity], config: BuilderConfig) -> BuildReport:
    """Sample labelled sets per split from the entities' category paths (see the module docstring)."""
    labelled = [e for e in entities if e.labels]
    notes = []
    if len(labelled) < len(entities):
        notes.append(f"note: {len(entities) - len(labelled)} entities without labels were not used")
    rng = np.random.default_rng(config.seed)
    if config.split_by == "entities":
        order = rng.permutation(len(labelled))
        sizes = _split_counts(len(labelled), config.split)
        bounds = np.cumsum([0, *sizes])
        pools = {s: [labelled[i] for i in order[bounds[j]:bounds[j + 1]]] for j, s in enumerate(SPLITS)}
    else:
        pools = dict.fromkeys(SPLITS, labelled)
    splits: dict[str, list[EntitySet]] = {}
    for split, count in zip(SPLITS, _split_counts(config.sets, config.split), strict=True):
        if count == 0:
            splits[split] = []
            continue
        tax = Taxonomy(pools[split])
        anchors = tax.anchors()
        if not anchors:
            raise DataError(
                f"the {split} pool ({len(pools[split])} entities) has no category with 2 or more subcategories, "
                "so no set with 2 clusters can be built; check the 'labels' paths or use --split-by sets"
            )
        weights = anchor_weights(tax, anchors, config.anchors)
        splits[split] = [_sample_taxonomy_set(tax, anchors, weights, rng, config, f"{split}-{i:05d}")
                         for i in range(count)]
    return BuildReport(splits, notes)


def basket_clustering(paths: Sequence[tuple[str, ...]], kmax: int) -> tuple[int, list[tuple[str, ...]]]:
    """The level and per-entity prefixes of the deepest partition with 2..kmax clusters (else the coarsest)."""
    depth = max(len(p) for p in paths)
    for level in range(depth, 0, -1):
        prefixes = [p[:level] for p in paths]
        if 2 <= len(set(prefixes)) <= kmax:
            return level, prefixes
    return 1, [p[:1] for p in paths]


def build_basket_sets(entities: Sequence[LabelledEntity], baskets_path: str | Path, config: BuilderConfig
                      ) -> BuildReport:
    """One set per basket with at least 2 known, labelled entities; baskets of one user stay in one split."""
    by_id = {e.id: e for e in entities if e.labels}
    baskets: list[tuple[str, str, list[LabelledEntity]]] = []
    unknown = too_small = single_cluster = 0
    for number, text in iter_text_lines(baskets_path):
        if isinstance(text, DataError):
            raise text
        obj = parse_json_line(text, path=baskets_path, line=number)
        ids = obj.get("entity_ids") if isinstance(obj, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataError("expected a list of entity id strings", path=baskets_path, line=number,
                            field="entity_ids")
        user = str(obj.get("user") or f"line-{number}")
        basket_id = str(obj.get("order_id") or f"line-{number}")
        known = []
        for entity_id in dict.fromkeys(ids):  # a product bought twice is one entity
            if entity_id in by_id:
                known.append(by_id[entity_id])
            else:
                unknown += 1
        if len(known) < 2:
            too_small += 1
            continue
        baskets.append((user, basket_id, known))
    rng = np.random.default_rng(config.seed)
    by_user: dict[str, list[tuple[str, list[LabelledEntity]]]] = defaultdict(list)
    for user, basket_id, members in baskets:
        by_user[user].append((basket_id, members))
    users = sorted(by_user)
    selected = [(users[i], *basket) for i in rng.permutation(len(users)) for basket in by_user[users[i]]]
    selected = selected[: config.sets]
    boundaries = np.cumsum(_split_counts(len(selected), config.split))
    user_split: dict[str, str] = {}
    splits: dict[str, list[EntitySet]] = {s: [] for s in SPLITS}
    for position, (user, basket_id, members) in enumerate(selected):
        # a user's baskets all go where the first one went, so no user straddles train and test
        split = user_split.setdefault(user, SPLITS[int(np.searchsorted(boundaries, position, side="right"))])
        level, prefixes = basket_clustering([m.labels for m in members], config.kmax)
        keys = list(dict.fromkeys(prefixes))
        names = [k[-1] for k in keys]
        if len(set(names)) < len(names):
            names = [LABEL_SEPARATOR.join(k) for k in keys]
        if len(keys) < 2:
            single_cluster += 1
        splits[split].append(EntitySet(
            id=f"basket-{basket_id}",
            entities=[Entity(m.id, m.text) for m in members],
            clusters=[[i for i, p in enumerate(prefixes) if p == k] for k in keys],
            cluster_names=names,
            extra={"user": user, "level": level},
        ))
    notes = [f"baskets: {len(baskets)} usable, {too_small} with fewer than 2 known labelled entities left out, "
             f"{unknown} entity ids not in the entities file"]
    if single_cluster:
        notes.append(f"note: {single_cluster} baskets have one cluster at every level (all one category)")
    return BuildReport(splits, notes)
