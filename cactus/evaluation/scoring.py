"""Scoring predicted clusterings of sets against gold clusterings, matched by set and entity ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cactus.data.errors import DataError
from cactus.data.sets import EntitySet
from cactus.evaluation.metrics import average_scores, clustering_scores


@dataclass
class Evaluation:
    average: dict[str, float]  # {"sets", "NMI", "AMI", "RI", "ARI", "F1"}
    per_set: list[dict[str, Any]]  # {"id", metrics...} in gold order


def aligned_labels(gold: EntitySet, pred: EntitySet, *, pred_name: str = "predictions") -> np.ndarray:
    """The predicted cluster of each gold entity, in gold order, matched by entity id; shape (N,)."""
    pred_labels = pred.labels()
    position = {e.id: i for i, e in enumerate(pred.entities)}
    missing = [e.id for e in gold.entities if e.id not in position]
    extra = len(pred.entities) - (len(gold.entities) - len(missing))
    if missing or extra:
        detail = f"missing entities {', '.join(missing[:5])}" if missing else f"{extra} entities not in the gold set"
        raise DataError(f"set '{gold.id}' in {pred_name} does not have the gold set's entities: {detail}")
    return np.array([pred_labels[position[e.id]] for e in gold.entities])


def evaluate_predictions(gold: Sequence[EntitySet], pred: Sequence[EntitySet], *, gold_name: str = "gold",
                         pred_name: str = "predictions") -> Evaluation:
    """Score every gold set against the prediction with the same id; a set missing on either side is an error."""
    if not gold:
        raise DataError("the gold file is empty: it holds no sets to score against", path=gold_name)
    by_id = {s.id: s for s in pred}
    gold_ids = {s.id for s in gold}
    missing = [s.id for s in gold if s.id not in by_id]
    if missing:
        raise DataError(f"{len(missing)} gold sets have no prediction in {pred_name}: {', '.join(missing[:10])}"
                        + (" ..." if len(missing) > 10 else ""))
    unknown = [s.id for s in pred if s.id not in gold_ids]
    if unknown:
        raise DataError(f"{len(unknown)} predicted sets are not in {gold_name}: {', '.join(unknown[:10])}"
                        + (" ..." if len(unknown) > 10 else ""))
    per_set = []
    for g in gold:
        scores = clustering_scores(g.labels(), aligned_labels(g, by_id[g.id], pred_name=pred_name))
        per_set.append({"id": g.id, **scores})
    return Evaluation(average_scores(per_set), per_set)


def evaluate_model(model_dir: str, sets: Sequence[EntitySet], *, device: str | None = None,
                   threshold: float | None = None, cut: str | None = None, mode: str | None = None) -> Evaluation:
    """Scores of a model folder's predictions on labelled ``sets`` (at its validation threshold and cut, unless
    given: see :meth:`cactus.inference.model.ClusteringModel.cut_for`)."""
    from cactus.inference.model import ClusteringModel

    model = ClusteringModel.load(model_dir, device=device)
    return evaluate_predictions(sets, model.predict(sets, threshold=threshold, cut=cut, mode=mode))
