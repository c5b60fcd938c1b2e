"""Self-supervised entity sets for pretraining (Tipirneni et al., 2024, appendix B).

A synthetic set has k ~ U(2, 10) clusters. Each cluster takes one seed entity from the pool and
s ~ U(1, 5) members, each member a copy of the seed with a fraction ~ U(0.2, 0.7) of its words dropped
(at least one word is kept). The encoder learns that texts sharing most of their words belong together,
with no label needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cactus.data.sets import Entity, EntitySet


@dataclass(frozen=True)
class SelfSupervisedConfig:
    kmin: int = 2
    kmax: int = 10
    smin: int = 1
    smax: int = 5
    drop_min: float = 0.2
    drop_max: float = 0.7

    def __post_init__(self) -> None:
        if not 2 <= self.kmin <= self.kmax:
            raise ValueError(f"cluster counts need 2 <= kmin <= kmax, got {self.kmin}..{self.kmax}")
        if not 1 <= self.smin <= self.smax:
            raise ValueError(f"cluster sizes need 1 <= smin <= smax, got {self.smin}..{self.smax}")
        if not 0.0 <= self.drop_min <= self.drop_max < 1.0:
            raise ValueError(f"drop fractions need 0 <= min <= max < 1, got {self.drop_min}..{self.drop_max}")


def drop_words(text: str, fraction: float, rng: np.random.Generator) -> str:
    """``text`` with round(fraction * words) words removed at random, keeping at least one word in order."""
    words = text.split()
    if len(words) <= 1:
        return text
    drop = min(len(words) - 1, round(fraction * len(words)))
    keep = np.sort(rng.choice(len(words), size=len(words) - drop, replace=False))
    return " ".join(words[i] for i in keep)


def distinct_texts(texts: Sequence[str]) -> list[str]:
    """The pool's texts with exact duplicates (after whitespace and case folding) removed, order kept."""
    seen: dict[str, str] = {}
    for text in texts:
        key = " ".join(text.split()).casefold()
        if key and key not in seen:
            seen[key] = text
    return list(seen.values())


def self_supervised_set(pool: Sequence[str], rng: np.random.Generator, config: SelfSupervisedConfig,
                        set_id: str) -> EntitySet:
    """One synthetic labelled set drawn from ``pool`` (texts, at least ``config.kmin`` distinct ones)."""
    k = int(rng.integers(config.kmin, min(config.kmax, len(pool)) + 1))
    seeds = rng.choice(len(pool), size=k, replace=False)
    texts: list[str] = []
    labels: list[int] = []
    for cluster, seed_index in enumerate(seeds):
        for _ in range(int(rng.integers(config.smin, config.smax + 1))):
            fraction = float(rng.uniform(config.drop_min, config.drop_max))
            texts.append(drop_words(pool[seed_index], fraction, rng))
            labels.append(cluster)
    order = rng.permutation(len(texts))
    entities = [Entity(f"{set_id}:{i}", texts[j]) for i, j in enumerate(order)]
    return EntitySet(set_id, entities).with_labels([labels[j] for j in order],
                                                  names=None)


def self_supervised_sets(texts: Sequence[str], *, seed: int = 0, config: SelfSupervisedConfig | None = None
                         ) -> Iterator[EntitySet]:
    """An endless, seeded stream of synthetic sets from the entity texts ``texts``."""
    config = config or SelfSupervisedConfig()
    pool = distinct_texts(texts)
    if len(pool) < config.kmin:
        raise ValueError(f"self-supervised sets need at least {config.kmin} distinct entity texts, got {len(pool)}")
    rng = np.random.default_rng(seed)
    index = 0
    while True:
        yield self_supervised_set(pool, rng, config, f"selfsup-{seed}-{index:06d}")
        index += 1
