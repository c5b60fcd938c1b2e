"""What the pages' buttons do to the store, without Streamlit: each takes an open session and returns a view.

The pages wrap these in :func:`app.state.writing` (which commits and refreshes the cached queries) and turn
the store's errors into messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.compare import agreement
from cactus.data import labels_to_clusters
from cactus.inference.cluster import MergeTree
from db import ClusteringView, ModelInfo, Session, SetDetail, add_clustering
from jobs.queue import JobInfo, enqueue


def predict_set(session: Session, detail: SetDetail, model: ModelInfo, clustering_model: Any) -> ClusteringView:
    """Cluster one set with a loaded model at its card's threshold and store it as ``model``'s clustering.

    The same as the ``predict`` job does for many sets: details record the threshold and the uncertainty, and the
    clusters are named (generated) from the set's own named clustering (human, reference, teacher) or keywords.
    """
    from cactus.inference.names import set_namer
    from cactus.inference.streaming import StreamOptions, predict_stream

    entity_set = detail.to_entity_set()
    named = next((c for c in (detail.latest(s) for s in ("human", "reference", "teacher"))
                  if c is not None and any(n.strip() for n in c.names)), None)
    if named is not None:
        entity_set = type(entity_set)(entity_set.id, entity_set.entities, [list(c) for c in named.clusters],
                                      list(named.names))
    results = []
    options = StreamOptions(threshold=clustering_model.threshold, namer=set_namer(), with_uncertainty=True)
    predict_stream(clustering_model.encoder, [entity_set], results.append, options)
    predicted = results[0]
    return add_clustering(session, detail.id, "model", predicted.clusters, predicted.cluster_names,
                          model_id=model.id, producer=model.name,
                          details={"threshold": clustering_model.threshold, "names_generated": True,
                                   "uncertainty": predicted.extra.get("uncertainty", 0.0)})


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


def cluster_at(similarity: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-link clusters of a similarity matrix at ``threshold`` (what the model predicts)."""
    return labels_to_clusters(MergeTree(similarity).cut(threshold))


def mode_outcomes(similarities: dict[str, np.ndarray], threshold: float, against: Sequence[Sequence[int]] | None,
                  size: int) -> list[ModeOutcome]:
    """For each mode (e.g. SIA and NIA of one model), its clusters at ``threshold`` and their ARI to ``against``."""
    out = []
    for mode, similarity in similarities.items():
        clusters = cluster_at(similarity, threshold)
        score = agreement(against, clusters, size)["ARI"] if against is not None else None
        out.append(ModeOutcome(mode, clusters, score))
    return out
