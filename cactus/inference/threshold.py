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
