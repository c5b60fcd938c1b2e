"""How much reviewing a set is likely to help: model uncertainty and disagreement between clusterings.

A set is worth an analyst's time when the model hesitated on it (merges of its average-link tree happened at a
similarity close to the threshold, so a small change would have cut it otherwise) or when the model and another
clustering of it (the teacher's, a reference, an earlier model's) disagree. Both are shares in 0..1 and the
priority is their sum; neither needs an API key. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cactus.inference.cluster import MergeTree
from cactus.inference.threshold import check_threshold

DEFAULT_MARGIN = 0.1


def near_threshold_merges(tree: MergeTree, threshold: float, margin: float = DEFAULT_MARGIN) -> int:
    """How many merges of ``tree`` happened at a similarity within ``margin`` of ``threshold``."""
    threshold = check_threshold(threshold)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return int((np.abs(tree.merge_similarities() - threshold) < margin).sum())


def uncertainty(tree: MergeTree, threshold: float, margin: float = DEFAULT_MARGIN) -> float:
    """The share of the set's N - 1 merges that lie within ``margin`` of ``threshold`` (0.0 for one entity)."""
    return near_threshold_merges(tree, threshold, margin) / (tree.n - 1) if tree.n > 1 else 0.0


def pair_disagreement(labels_a: Sequence[int] | np.ndarray, labels_b: Sequence[int] | np.ndarray) -> float:
    """Share of entity pairs that one clustering puts together and the other apart (1 - Rand index).

    0.0 for identical partitions (and for sets of fewer than two entities), 1.0 at most.
    """
    a = np.asarray(labels_a)
    b = np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"clusterings of different sizes: {a.shape[0]} and {b.shape[0]} entities")
    n = a.shape[0]
    if n < 2:
        return 0.0
    together_a = a[:, None] == a[None, :]  # (N, N)
    together_b = b[:, None] == b[None, :]  # (N, N)
    return float((together_a != together_b).sum()) / (n * (n - 1))


def disagreement(model: Sequence[int] | np.ndarray, others: Sequence[Sequence[int] | np.ndarray]) -> float:
    """The model's mean pair disagreement with the other clusterings of the set (0.0 when there are none)."""
    if not others:
        return 0.0
    return float(np.mean([pair_disagreement(model, other) for other in others]))


@dataclass(frozen=True)
class ReviewPriority:
    """Why a set is where it is in the review queue."""

    uncertainty: float
    disagreement: float

    @property
    def score(self) -> float:
        return self.uncertainty + self.disagreement


def review_order(priorities: Mapping[Hashable, ReviewPriority]) -> list[Hashable]:
    """Keys by priority, highest first; ties keep the mapping's order."""
    keys = list(priorities)
    return sorted(keys, key=lambda key: -priorities[key].score)
