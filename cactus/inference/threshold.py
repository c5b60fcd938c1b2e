"""The clustering threshold: a cosine similarity in [-1, 1] chosen on validation, checked the same way everywhere.

The model card (``card.json``) is the one source of a model's threshold; the store's registry keeps a copy for
listing and checks it with :func:`check_threshold` too. This module imports nothing heavy, so the store can use it.
"""

from __future__ import annotations

import math
from numbers import Real


def check_threshold(threshold: object) -> float:
    """``threshold`` as a float when it is a finite number in [-1, 1].

    Raises:
        ValueError: not a number, not finite, or outside [-1, 1].
    """
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"threshold must be a number (a cosine similarity in [-1, 1]), got {threshold!r}")
    if not (math.isfinite(float(threshold)) and -1.0 <= threshold <= 1.0):
        raise ValueError(
            f"threshold must lie in [-1, 1] (a cosine similarity), got {threshold!r}; choose it on a validation split"
        )
    return float(threshold)


#: Where a model cuts each set's merge tree: at its threshold, or per set (see :mod:`cactus.inference.per_set_cut`).
CUTS = ("threshold", "silhouette")


def check_cut(cut: object) -> str:
    """``cut`` when it is one of :data:`CUTS`, else a ValueError naming them."""
    if cut not in CUTS:
        raise ValueError(f"unknown cut {cut!r}; choose one of {', '.join(CUTS)}")
    return str(cut)


def describe_cut(threshold: float, cut: str) -> str:
    """How a model cuts sets, in words: "threshold +0.40" or "a per-set cut (silhouette; +0.40 below 3 entities)"."""
    if check_cut(cut) == "threshold":
        return f"threshold {threshold:+.2f}"
    return f"a per-set cut (highest silhouette; threshold {threshold:+.2f} for sets under 3 entities)"


def resolve_cut(card_cut: str, threshold_given: bool, cut: str | None = None) -> str:
    """The cut a prediction uses: ``cut`` when given; else a threshold the caller gave means that threshold for
    every set, and none means the model card's choice."""
    if cut is not None:
        return check_cut(cut)
    return "threshold" if threshold_given else check_cut(card_cut)
