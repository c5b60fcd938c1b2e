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
from cactus.data import labels_to_clusters
from cactus.inference.cluster import MergeTree
from db import ClusteringView, ModelInfo, Session, SetDetail, add_clustering
from jobs.queue import JobInfo, enqueue


def predict_set(session: Session, detail: SetDetail, model: ModelInfo, clustering_model: Any) -> ClusteringView:
    """Cluster one set with a loaded model at its card's threshold and store it as ``model``'s clustering.

    The same as the ``predict`` job does for many sets (details record the threshold).
    """
    predicted = clustering_model.predict([detail.to_entity_set()])[0]
    return add_clustering(session, detail.id, "model", predicted.clusters, model_id=model.id, producer=model.name,
                          details={"threshold": clustering_model.threshold})


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
