"""A model's threshold re-chosen on another dataset: stored per (model, dataset), an explicit override.

The model card holds the threshold chosen on the model's own validation sets (see :mod:`db.registry`). A model
applied to a dataset it was not trained on may have its threshold re-chosen on that dataset's labelled sets
(people's clusterings of reviewed sets, else reference labels), or on its sets without labels (the threshold
whose clusterings have the highest mean silhouette); Review, the ``predict`` job and Evaluate then
use that threshold on that dataset, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cactus.inference.threshold import check_cut, check_threshold, describe_cut
from db.clusterings import latest_clusterings
from db.errors import NotFoundError, StoreError
from db.models import DatasetRow, DatasetThresholdRow, ModelRow, SetRow
from db.types import utcnow
from db.views import ClusteringView

#: Which clusterings count as truth when a threshold is re-chosen, most trusted first.
THRESHOLD_TRUTH = ("human", "reference")


@dataclass(frozen=True)
class DatasetThreshold:
    """A model's threshold on one dataset, chosen on that many of its sets: swept on their labels, or (``labelled``
    False) the one whose clusterings have the highest mean silhouette, without labels."""

    model_id: int
    dataset_id: int
    threshold: float
    chosen_on_sets: int
    created_at: datetime
    labelled: bool = True
    cut: str = "threshold"  # or "silhouette": the labelled re-choice found a per-set cut better on those sets

    @classmethod
    def of(cls, row: DatasetThresholdRow) -> DatasetThreshold:
        return cls(row.model_id, row.dataset_id, row.threshold, row.chosen_on_sets, row.created_at,
                   bool(row.labelled), row.cut or "threshold")

    def describe(self) -> str:
        """What applies, for messages: "threshold +0.40" or "a per-set cut (...)"."""
        return describe_cut(self.threshold, self.cut)

    def chosen_how(self) -> str:
        """How it was chosen, for messages: "on 12 labelled sets" or "without labels, on 40 sets"."""
        plural = "" if self.chosen_on_sets == 1 else "s"
        if self.labelled:
            return f"on {self.chosen_on_sets} labelled set{plural}"
        return f"without labels, on {self.chosen_on_sets} set{plural}"


@dataclass(frozen=True)
class AppliedCut:
    """How a model cuts a dataset's sets: its card's threshold and cut, or those re-chosen on the dataset."""

    threshold: float
    cut: str  # "threshold" or "silhouette"
    source: str  # "card" or "dataset"

    def describe(self) -> str:
        return describe_cut(self.threshold, self.cut)


def applied_cut(card_threshold: float, card_cut: str, override: DatasetThreshold | None) -> AppliedCut:
    """The override's threshold and cut when the model has one on the dataset, else the card's."""
    if override is not None:
        return AppliedCut(override.threshold, override.cut, "dataset")
    return AppliedCut(card_threshold, card_cut, "card")


def dataset_threshold(session: Session, model_id: int, dataset_id: int) -> DatasetThreshold | None:
    """The threshold re-chosen for ``model_id`` on ``dataset_id``, or None (the card's applies)."""
    row = session.get(DatasetThresholdRow, (model_id, dataset_id))
    return DatasetThreshold.of(row) if row is not None else None


def set_dataset_threshold(session: Session, model_id: int, dataset_id: int, threshold: float, *,
                          chosen_on_sets: int, labelled: bool = True, cut: str = "threshold") -> DatasetThreshold:
    """Store (or replace) a model's threshold on a dataset, chosen on ``chosen_on_sets`` of its sets (with their
    labels, or without them when ``labelled`` is False), and its cut (``"silhouette"``: per set, ``threshold`` only
    for sets under 3 entities).

    Raises:
        NotFoundError: no such model or dataset.
        StoreError: a threshold outside [-1, 1], an unknown cut, or no sets it was chosen on.
    """
    try:
        threshold = check_threshold(threshold)
        cut = check_cut(cut)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if isinstance(chosen_on_sets, bool) or not isinstance(chosen_on_sets, int) or chosen_on_sets < 1:
        raise StoreError(f"a threshold is chosen on one set or more, got {chosen_on_sets!r}")
    if session.get(ModelRow, model_id) is None:
        raise NotFoundError(f"no model with id {model_id}")
    if session.get(DatasetRow, dataset_id) is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    row = session.get(DatasetThresholdRow, (model_id, dataset_id))
    if row is None:
        row = DatasetThresholdRow(model_id=model_id, dataset_id=dataset_id, threshold=threshold,
                                  chosen_on_sets=chosen_on_sets, labelled=bool(labelled), cut=cut)
        session.add(row)
    else:
        row.threshold, row.chosen_on_sets, row.labelled, row.cut = threshold, chosen_on_sets, bool(labelled), cut
        row.created_at = utcnow()
    session.flush()
    return DatasetThreshold.of(row)


def clear_dataset_threshold(session: Session, model_id: int, dataset_id: int) -> bool:
    """Drop a model's threshold on a dataset (its card's applies again); whether there was one."""
    row = session.get(DatasetThresholdRow, (model_id, dataset_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def threshold_truth(session: Session, dataset_id: int, *, limit: int | None = None) -> dict[int, ClusteringView]:
    """The clusterings a threshold is re-chosen against, keyed by set id (import order; at most ``limit``).

    A set's truth is its human clustering once the set is reviewed, else its reference clustering; sets
    with neither are left out.
    """
    ids = select(SetRow.id).where(SetRow.dataset_id == dataset_id)
    truth: dict[int, ClusteringView] = {}
    for source, set_ids in (("human", ids.where(SetRow.reviewed)), ("reference", ids)):
        for set_id, clustering in latest_clusterings(session, set_ids, source).items():
            truth.setdefault(set_id, clustering)
    order = list(session.scalars(ids.order_by(SetRow.position)))
    chosen = [i for i in order if i in truth][:limit]
    return {i: truth[i] for i in chosen}
