"""What the pages' buttons do to the store, without Streamlit: each takes an open session and returns a view.

The pages wrap these in :func:`app.state.writing` (which commits and refreshes the cached queries) and turn
the store's errors into messages.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.compare import agreement
from cactus.data import EntitySet, labels_to_clusters
from cactus.inference.cluster import MergeTree, ThresholdSweep, sweep_thresholds
from cactus.inference.per_set_cut import CutChoice, choose_cut, cut_scores, set_threshold
from db import (
    AppliedCut,
    ClusteringView,
    DatasetThreshold,
    ModelInfo,
    Session,
    SetDetail,
    add_clustering,
    applied_cut,
    dataset_set_ids,
    load_entity_sets,
    threshold_truth,
)
from jobs.queue import JobInfo, enqueue

#: At most this many labelled sets are scored when a threshold is re-chosen on the Models page (in the page's run).
RECHOOSE_MAX_SETS = 400


def predict_set(session: Session, detail: SetDetail, model: ModelInfo, clustering_model: Any,
                override: DatasetThreshold | None = None) -> ClusteringView:
    """Cluster one set with a loaded model and store it as ``model``'s clustering.

    At the card's threshold, or at ``override`` (the model's threshold re-chosen on the set's dataset); the same as
    the ``predict`` job does for many sets: details record the threshold, where it came from and the uncertainty,
    and the clusters are named (generated) from the set's own named clustering (human, reference, teacher) or
    keywords.
    """
    from cactus.inference.names import set_namer
    from cactus.inference.streaming import StreamOptions, predict_stream

    applied = applied_cut(clustering_model.threshold, clustering_model.cut, override)
    entity_set = detail.to_entity_set()
    named = next((c for c in (detail.latest(s) for s in ("human", "reference", "teacher"))
                  if c is not None and any(n.strip() for n in c.names)), None)
    if named is not None:
        entity_set = EntitySet(entity_set.id, entity_set.entities, [list(c) for c in named.clusters],
                               list(named.names))
    results: list[EntitySet] = []
    options = StreamOptions(threshold=applied.threshold, cut=applied.cut, namer=set_namer(), with_uncertainty=True)
    predict_stream(clustering_model.encoder, [entity_set], results.append, options)
    predicted = results[0]
    own = {"set_threshold": predicted.extra["set_threshold"]} if "set_threshold" in predicted.extra else {}
    return add_clustering(session, detail.id, "model", predicted.clusters, predicted.cluster_names,
                          model_id=model.id, producer=model.name,
                          details={"threshold": applied.threshold, "threshold_source": applied.source,
                                   "cut": applied.cut, **own, "names_generated": True,
                                   "uncertainty": predicted.extra.get("uncertainty", 0.0)})


def threshold_sets(session: Session, dataset_id: int, limit: int = RECHOOSE_MAX_SETS) -> list[EntitySet]:
    """A dataset's sets that a threshold can be re-chosen on, clustered by their truth (reviewed human, reference)."""
    truth = threshold_truth(session, dataset_id, limit=limit)
    loaded = load_entity_sets(session, list(truth))
    return [loaded[i].with_labels(truth[i].labels()) for i in truth]


@dataclass(frozen=True)
class Rechosen:
    """A threshold sweep on a dataset's labelled sets, the better cut there (the best threshold for every set, or a
    per-set cut) with both cuts' scores, and the scores at the card's threshold and cut."""

    sweep: ThresholdSweep
    cut: CutChoice
    sets: int
    card_threshold: float
    card_cut: str
    at_card: dict[str, float]

    @property
    def best(self) -> dict[str, float]:
        """The scores of what is kept: the chosen cut at the swept threshold."""
        return self.cut.scores[self.cut.cut]


def rechoose_threshold(clustering_model: Any, sets: list[EntitySet]) -> Rechosen:
    """Sweep the thresholds of average-link clustering with the model's similarities on labelled ``sets``, then
    choose between the best threshold and a per-set cut on the same sets (as training does on validation)."""
    if not sets:
        raise ValueError("no labelled sets to choose a threshold on")
    similarities = clustering_model.similarities(sets)
    gold = [np.asarray(s.labels()) for s in sets]
    sweep = sweep_thresholds(similarities, gold)
    cut = choose_cut(similarities, gold, sweep.best_threshold)
    card, card_cut = clustering_model.threshold, clustering_model.cut
    at_card = cut_scores(similarities, gold, card, card_cut)
    return Rechosen(sweep, cut, len(sets), card, card_cut, at_card)


def sampled_set_texts(session: Session, dataset_id: int) -> list[list[str]]:
    """The texts of up to 64 of a dataset's sets, spread evenly over it (labels not needed)."""
    from cactus.inference.domain import sample_sets

    picked = [ids[0] for ids in sample_sets([[i] for i in dataset_set_ids(session, dataset_id)])]
    loaded = load_entity_sets(session, picked)
    return [loaded[i].texts for i in picked]


def choose_threshold_unlabelled(clustering_model: Any, texts: list[list[str]]):
    """The threshold whose clusterings of these sets have the highest mean silhouette under the model (no labels),
    or None when no set of 3 or more entities shows structure."""
    from cactus.inference.unlabelled_threshold import unlabelled_threshold

    return unlabelled_threshold(clustering_model.similarities(texts))


def ask_teacher(session: Session, detail: SetDetail) -> JobInfo:
    """Queue a ``label`` job for this one set (the worker calls Claude with its ``ANTHROPIC_API_KEY``)."""
    return enqueue(session, "label", {"dataset_id": detail.dataset_id, "set_ids": [detail.id], "sets": "all"})


def predict_dataset(session: Session, dataset_id: int, model_id: int, *, everything: bool = False) -> JobInfo:
    """Queue a ``predict`` job: the model clusters the dataset's sets it has not clustered yet (or all)."""
    return enqueue(session, "predict", {"dataset_id": dataset_id, "model_id": model_id,
                                        "sets": "all" if everything else "missing"})


@dataclass(frozen=True)
class ModeOutcome:
    """How one attention mode's similarities cluster a set at the model's threshold."""

    mode: str
    clusters: list[list[int]]
    ari: float | None  # against the comparison clustering, when there is one
    threshold: float  # where this mode's similarities were cut (the set's own under a per-set cut)


def cluster_at(similarity: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-link clusters of a similarity matrix at ``threshold`` (what the model predicts)."""
    return labels_to_clusters(MergeTree(similarity).cut(threshold))


def mode_outcomes(similarities: dict[str, np.ndarray], applied: AppliedCut, against: Sequence[Sequence[int]] | None,
                  size: int) -> list[ModeOutcome]:
    """For each mode (e.g. SIA and NIA of one model), its clusters under ``applied`` (at the threshold, or at the
    mode's own per-set threshold) and their ARI to ``against``."""
    out = []
    for mode, similarity in similarities.items():
        threshold = set_threshold(similarity, applied.threshold, applied.cut)
        clusters = cluster_at(similarity, threshold)
        score = agreement(against, clusters, size)["ARI"] if against is not None else None
        out.append(ModeOutcome(mode, clusters, score, threshold))
    return out


def delete_model_files(session: Session, model: ModelInfo, url: str) -> str:
    """Remove ``model`` from the registry and, when its checkpoint lies in the store's artifacts folder, its files.

    A checkpoint elsewhere (a folder the user pointed to) is left on disk. Returns what was done, in words.
    """
    from db import delete_model
    from db.artifacts import artifacts_dir

    delete_model(session, model.id)
    checkpoint = Path(model.checkpoint).resolve()
    home = artifacts_dir(url).resolve()
    if home not in checkpoint.parents:
        return f"Deleted {model.name!r} from the registry; its files at {checkpoint} are outside {home} and were left."
    if checkpoint.is_dir():
        shutil.rmtree(checkpoint)
    return f"Deleted {model.name!r} and its files ({checkpoint})."
