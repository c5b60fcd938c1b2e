"""The model registry: trained checkpoints with their metrics and threshold; one of them is active.

A model's threshold lives in its card (``card.json``, :mod:`cactus.training.checkpoint`); the registry keeps a copy
for listing, checked with the library's :func:`cactus.inference.threshold.check_threshold`. Whoever loads a model
uses the card's value and calls :func:`refresh_threshold`, so that a re-written card wins over the copy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cactus.inference.threshold import check_threshold
from db.errors import ConflictError, NotFoundError, StoreError
from db.models import JobRow, ModelRow
from db.views import ModelInfo


def register_model(
    session: Session,
    *,
    name: str,
    checkpoint: str,
    backbone: str,
    mode: str,
    loss: str,
    threshold: float,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    dataset_id: int | None = None,
    job_id: int | None = None,
    activate: bool = False,
    created_by: str | None = None,
) -> ModelInfo:
    """Add a trained model to the registry.

    Args:
        name: a unique name shown in the app.
        checkpoint: the folder the trainer saved (weights and config).
        backbone: the encoder it started from (a Hugging Face folder or name).
        mode: inter-entity attention, one of ``cactus.encoders.config.MODES`` (checked by the trainer).
        loss: the training loss, e.g. "aug_triplet".
        threshold: cosine-similarity threshold for average-link clustering, chosen on validation.
        metrics: validation and test scores (e.g. ``{"val": {"ARI": ...}, "test": {...}}``).
        training: what it was trained on and how (counts of sets by source, epochs, options).
        dataset_id, job_id: the dataset and job it came from, if any.
        activate: make it the active model.
        created_by: who made it (default: whoever queued the job ``job_id``).

    Raises:
        ConflictError: the name is taken.
        StoreError: an empty mode or a threshold outside [-1, 1].
    """
    name = name.strip()
    if not name:
        raise StoreError("a model needs a name")
    if not isinstance(mode, str) or not mode.strip() or len(mode) > 20:
        raise StoreError(f"mode must name the inter-entity attention (e.g. 'sia', 'nia', 'fia'), got {mode!r}")
    threshold = _checked(threshold)
    if session.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
        raise ConflictError(f"a model named {name!r} is registered already; choose another name")
    if created_by is None and job_id is not None:
        job = session.get(JobRow, job_id)
        created_by = job.created_by if job is not None else None
    row = ModelRow(name=name, checkpoint=str(checkpoint), backbone=backbone, mode=mode, loss=loss,
                   threshold=threshold, metrics=dict(metrics or {}), training=dict(training or {}),
                   dataset_id=dataset_id, job_id=job_id, active=False, created_by=created_by)
    session.add(row)
    session.flush()
    if activate:
        return activate_model(session, row.id)
    return ModelInfo.of(row)


def _checked(threshold: object) -> float:
    try:
        return check_threshold(threshold)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def refresh_threshold(session: Session, model_id: int, card_threshold: float) -> ModelInfo:
    """Set the registry's copy of a model's threshold to its card's (the card wins, e.g. after it was re-written).

    Raises:
        NotFoundError: no such model.
        StoreError: ``card_threshold`` is not a cosine similarity in [-1, 1].
    """
    threshold = _checked(card_threshold)
    row = session.get(ModelRow, model_id)
    if row is None:
        raise NotFoundError(f"no model with id {model_id}")
    if row.threshold != threshold:
        row.threshold = threshold
        session.flush()
    return ModelInfo.of(row)


def activate_model(session: Session, model_id: int) -> ModelInfo:
    """Make a model the active one (and no other)."""
    # Lock every model row so that two activations at once take turns instead of both succeeding.
    session.execute(select(ModelRow.id).with_for_update())
    row = session.get(ModelRow, model_id)
    if row is None:
        raise NotFoundError(f"no model with id {model_id}")
    session.execute(update(ModelRow).where(ModelRow.active, ModelRow.id != model_id).values(active=False))
    session.flush()
    session.execute(update(ModelRow).where(ModelRow.id == model_id).values(active=True))
    session.refresh(row)
    return ModelInfo.of(row)


def deactivate_models(session: Session) -> None:
    """Leave no model active."""
    session.execute(update(ModelRow).where(ModelRow.active).values(active=False))


def get_model(session: Session, model_id: int) -> ModelInfo:
    """One model by id."""
    row = session.get(ModelRow, model_id)
    if row is None:
        raise NotFoundError(f"no model with id {model_id}; see the models page for the registered ones")
    return ModelInfo.of(row)


def active_model(session: Session) -> ModelInfo | None:
    """The active model, or None when none is."""
    row = session.scalar(select(ModelRow).where(ModelRow.active))
    return ModelInfo.of(row) if row is not None else None


def list_models(session: Session) -> list[ModelInfo]:
    """Every registered model, newest first."""
    return [ModelInfo.of(row) for row in session.scalars(select(ModelRow).order_by(ModelRow.id.desc()))]


def delete_model(session: Session, model_id: int) -> None:
    """Remove a model from the registry with its stored predictions (its checkpoint folder stays on disk)."""
    row = session.get(ModelRow, model_id)
    if row is None:
        raise NotFoundError(f"no model with id {model_id}")
    session.delete(row)
    session.flush()
