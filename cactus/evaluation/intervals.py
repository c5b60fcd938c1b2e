"""95% bootstrap intervals of metrics averaged over sets, and the warning for too few sets.

The sets of a split are the sampling unit: resampling them with replacement (SciPy's ``bootstrap``,
percentile method) gives the uncertainty of each averaged metric that comes from which sets were drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap

from cactus.evaluation.metrics import METRICS

CONFIDENCE = 0.95
RESAMPLES = 2000
#: Below this many sets, averages (and a threshold chosen on them) rest on a handful of sets.
FEW_SETS = 30


def bootstrap_intervals(per_set: Sequence[dict[str, float]], *, metrics: Sequence[str] = METRICS,
                        confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                        seed: int = 0) -> dict[str, list[float]] | None:
    """``{metric: [low, high]}``: the bootstrap interval of each metric's mean over sets; None below 2 sets."""
    if len(per_set) < 2:
        return None
    out: dict[str, list[float]] = {}
    for name in metrics:
        values = np.array([row[name] for row in per_set], dtype=np.float64)
        if np.ptp(values) == 0:  # every set scored the same: no spread to resample
            out[name] = [float(values[0]), float(values[0])]
            continue
        result = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                           method="percentile", random_state=np.random.default_rng(seed))
        out[name] = [float(result.confidence_interval.low), float(result.confidence_interval.high)]
    return out


def interval_line(intervals: dict[str, list[float]] | None, sets: int, *, digits: int = 3) -> str:
    """One line for a terminal, e.g. ``95% CI over 60 sets (bootstrap): NMI 0.61-0.70, ...``."""
    if intervals is None:
        return f"no interval: {sets} set(s) are too few to resample"
    cells = ", ".join(f"{name} {low:.{digits}f}-{high:.{digits}f}" for name, (low, high) in intervals.items())
    return f"{CONFIDENCE:.0%} CI over {sets} sets (bootstrap): {cells}"


def few_sets_warning(sets: int, what: str) -> str | None:
    """A warning when ``what`` (e.g. "the test split") has fewer than :data:`FEW_SETS` sets, else None."""
    if sets >= FEW_SETS:
        return None
    return (f"{what} has only {sets} set(s); averages over fewer than {FEW_SETS} sets move a lot with which sets "
            "were drawn (see the interval)")
