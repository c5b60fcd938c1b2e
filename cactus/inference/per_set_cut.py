"""Where each set's merge tree is cut: at the model's one threshold, or per set where the silhouette is highest.

A threshold chosen on validation suits a domain whose sets have a similar similarity scale. Where sets differ in
granularity (an intent dataset whose sets are a few broad topics in one place and near-synonyms in another) one
threshold over-merges some sets and over-splits others. The per-set cut (``"silhouette"``) picks, for each set of
3 or more entities, the number of clusters k in 2..min(N - 1, 10) whose average-link clustering has the highest
silhouette on the distance 1 - similarity, as the K-Means and Spectral baselines choose k per set (the paper's
Table 2 protocol). It is expressed as that set's own threshold: the midpoint between the similarities of the last
merge made and the first one left, so everything downstream (uncertainty, heatmaps) keeps working on a threshold.

Which cut a model uses is chosen on its validation split at training time (:func:`choose_cut`) and stored in the
model card; a per-set cut never gives one cluster for a set of 3 or more entities, which is why it is a choice.
Sets of fewer than 3 entities always use the model's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cactus.evaluation.metrics import score_sets, selection_score
from cactus.inference.cluster import MergeTree, check_similarity, similarity_distance
from cactus.inference.threshold import CUTS, check_cut
from cactus.inference.unlabelled_threshold import set_silhouette

__all__ = ["CUTS", "SILHOUETTE_KMAX", "CutChoice", "check_cut", "choose_cut", "cut_labels", "cut_scores",
           "k_thresholds", "set_threshold", "silhouette_threshold"]
#: The largest number of clusters the per-set cut tries (as the silhouette-chosen k of the baselines).
SILHOUETTE_KMAX = 10
#: Merge similarities closer than this count as tied (the linkage's float noise).
TIE = 1e-9


def k_thresholds(tree: MergeTree, kmax: int = SILHOUETTE_KMAX) -> dict[int, float]:
    """For each k in 2..min(N - 1, kmax) that a threshold can give, the threshold that cuts ``tree`` into k clusters.

    Average-link merge similarities never increase along the merge order, so k clusters are left after the first
    N - k merges; the threshold is the midpoint between that last merge and the next. A k whose two merges tie
    (within :data:`TIE`, float noise of the linkage) cannot be cut out and is left out.
    """
    merges = tree.merge_similarities()  # (N - 1,), non-increasing
    out: dict[int, float] = {}
    for k in range(2, min(tree.n - 1, kmax) + 1):
        done, left = merges[tree.n - k - 1], merges[tree.n - k]
        if done - left > TIE:
            out[k] = float(np.clip((done + left) / 2.0, -1.0, 1.0))
    return out


def silhouette_threshold(similarity: Sequence[Sequence[float]] | np.ndarray, fallback: float, *,
                         tree: MergeTree | None = None, kmax: int = SILHOUETTE_KMAX) -> float:
    """The threshold that cuts this set where its silhouette is highest; ``fallback`` for sets under 3 entities or
    when no k in 2..kmax can be cut out (ties: the fewer clusters)."""
    matrix = check_similarity(similarity)
    tree = tree if tree is not None else MergeTree(matrix)
    candidates = k_thresholds(tree, kmax)
    if not candidates:
        return fallback
    distance = similarity_distance(matrix)
    scored = [(set_silhouette(distance, tree.cut(t)), -k, t) for k, t in candidates.items()]
    return max(scored)[2]


def set_threshold(similarity: np.ndarray, threshold: float, cut: str, *, tree: MergeTree | None = None) -> float:
    """The threshold one set is cut at: ``threshold`` under the ``"threshold"`` cut, its own under ``"silhouette"``."""
    if check_cut(cut) == "threshold":
        return threshold
    return silhouette_threshold(similarity, threshold, tree=tree)


def cut_labels(similarity: np.ndarray, threshold: float, cut: str) -> np.ndarray:
    """Cluster ids (N,) of one set under ``cut`` (``threshold`` is the model's, or the fallback of a per-set cut)."""
    tree = MergeTree(similarity)
    return tree.cut(set_threshold(similarity, threshold, cut, tree=tree))


def cut_scores(similarities: Sequence[np.ndarray], gold_labels: Sequence[np.ndarray], threshold: float, cut: str
               ) -> dict[str, float]:
    """Scores averaged over labelled sets, each clustered under ``cut`` (at ``threshold``, or its fallback)."""
    return score_sets((gold, cut_labels(sim, threshold, cut))
                      for sim, gold in zip(similarities, gold_labels, strict=True))


@dataclass(frozen=True)
class CutChoice:
    """The cut with the higher NMI + AMI + RI + ARI on labelled sets, and the averaged scores of each."""

    cut: str
    scores: dict[str, dict[str, float]]


def choose_cut(similarities: Sequence[np.ndarray], gold_labels: Sequence[np.ndarray], threshold: float
               ) -> CutChoice:
    """Score the model's ``threshold`` and the per-set cut on labelled sets; ties keep the threshold."""
    if len(similarities) != len(gold_labels) or not similarities:
        raise ValueError(f"choosing a cut needs labelled sets: got {len(similarities)} similarity matrices for "
                         f"{len(gold_labels)} labellings")
    scores = {cut: cut_scores(similarities, gold_labels, threshold, cut) for cut in CUTS}
    best = max(CUTS, key=lambda c: (selection_score(scores[c]), c == "threshold"))
    return CutChoice(best, scores)
