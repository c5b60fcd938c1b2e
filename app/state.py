"""What the pages read, cached the Streamlit way: short-lived query results and long-lived models.

- Queries (datasets, set lists, models, label counts) are cached for a few seconds and keyed by the database
  URL, so that several people and a worker can share a store and each page still answers fast. A page that
  writes calls :func:`refresh` so that its next run sees the change at once.
- A set's detail (entities, clusterings, edit-log state) is never cached: edits must see the newest state.
- Models are loaded once per checkpoint folder (and its ``card.json``'s modification time) with
  ``st.cache_resource``; similarity matrices are cached per (model, set texts, attention mode).
- The chosen dataset and set live in ``st.session_state`` and in the URL (``?dataset=..&set=..``), so a
  reload, a bookmark or a link lands on the same set; everything else is in the store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from app import access
from db import (
    STORE_UNAVAILABLE,
    DatasetInfo,
    DatasetThreshold,
    LabelSummary,
    ModelInfo,
    Session,
    SetDetail,
    SetPage,
    active_model,
    database_url,
    dataset_threshold,
    get_set,
    label_summary,
    list_datasets,
    list_models,
    list_sets,
    printable_url,
    refresh_threshold,
    session_scope,
    set_size_range,
)
from db.errors import StoreError
from jobs.base import JobParamsError
from jobs.queue import JobInfo, get_job, list_jobs, set_author

QUERY_TTL_S = 5
T = TypeVar("T")
_model_lock = threading.Lock()


def db_url() -> str:
    """The store this app uses (``CACTUS_DB_URL`` or the default SQLite file)."""
    return database_url()


@contextmanager
def writing(needs: str, action: str) -> Iterator[Session]:
    """A session for a change that the role ``needs`` may make (``action`` says what it is, for the refusal);
    the cached queries are refreshed after it commits.

    Raises:
        db.AccessError: the current user's role does not allow it (nothing is opened).
    """
    access.require(needs, action)
    with session_scope(db_url()) as session:
        yield session
    refresh()


def queue_job(make: Callable[[Session], JobInfo], refused: str | None = None, *, needs: str,
              action: str) -> JobInfo | None:
    """Queue the job that ``make`` enqueues, as the current user (its author), if their role is ``needs`` or above;
    when the role, the store or the job's parameter check refuses it, show why (after ``refused: `` when given)
    and return None."""
    try:
        who = access.require(needs, action)
        with writing(needs, action) as session:
            return set_author(session, make(session).id, who.name)
    except (JobParamsError, StoreError) as exc:
        st.error(f"{refused}: {exc}" if refused else str(exc))
        return None


def read(action: Callable[[Session], T]) -> T:
    """Run ``action(session)`` in a read-only session (never cached)."""
    with session_scope(db_url(), readonly=True) as session:
        return action(session)


def store_problem() -> str:
    """Why the store cannot be used, in words with the fix ("" when it answers)."""
    try:
        datasets()
    except STORE_UNAVAILABLE as exc:
        where = printable_url(db_url())
        reason = str(exc).splitlines()[0]
        return (f"The store at {where} cannot be opened: {reason}. Set CACTUS_DB_URL to a reachable database "
                "(sqlite:///PATH/cactus.db or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB) and restart the app.")
    return ""


@contextmanager
def model_in_use() -> Iterator[None]:
    """Hold while a cached model computes: sessions run in threads and share it."""
    with _model_lock:
        yield


def refresh() -> None:
    """Forget the cached query results (after a change)."""
    for cached in (_datasets, _set_page, _models, _label_summary, _size_range):
        cached.clear()


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _datasets(url: str) -> list[DatasetInfo]:
    with session_scope(url, readonly=True) as session:
        return list_datasets(session)


def datasets() -> list[DatasetInfo]:
    """Every dataset, newest first, with its counts."""
    return _datasets(db_url())


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _set_page(url: str, dataset_id: int, filters: tuple[tuple[str, Any], ...]) -> SetPage:
    with session_scope(url, readonly=True) as session:
        return list_sets(session, dataset_id, **dict(filters))


def set_page(dataset_id: int, **filters: Any) -> SetPage:
    """:func:`db.list_sets` with these filters (cached briefly)."""
    return _set_page(db_url(), dataset_id, tuple(sorted(filters.items())))


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _size_range(url: str, dataset_id: int) -> tuple[int, int]:
    with session_scope(url, readonly=True) as session:
        return set_size_range(session, dataset_id)


def size_range(dataset_id: int) -> tuple[int, int]:
    """The smallest and largest set size of a dataset."""
    return _size_range(db_url(), dataset_id)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _models(url: str) -> list[ModelInfo]:
    with session_scope(url, readonly=True) as session:
        return list_models(session)


def models() -> list[ModelInfo]:
    """Every registered model, newest first."""
    return _models(db_url())


def active() -> ModelInfo | None:
    """The active model, if any."""
    return next((m for m in models() if m.active), None)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def _label_summary(url: str, dataset_id: int, human: str) -> LabelSummary:
    with session_scope(url, readonly=True) as session:
        return label_summary(session, dataset_id, human=human)  # type: ignore[arg-type]


def labels_for_training(dataset_id: int, human: str) -> LabelSummary:
    """How many sets of each split an export would label from people, the teacher and reference labels."""
    return _label_summary(db_url(), dataset_id, human)


def set_detail(set_id: int) -> SetDetail:
    """A set with its clusterings and edit-log state, fresh from the store."""
    return read(lambda session: get_set(session, set_id))


def job(job_id: int) -> JobInfo:
    """A job, fresh from the store."""
    return read(lambda session: get_job(session, job_id))


def jobs(**filters: Any) -> list[JobInfo]:
    """Recent jobs, newest first (see :func:`jobs.queue.list_jobs`)."""
    return read(lambda session: list_jobs(session, **filters))


def current_active_model() -> ModelInfo | None:
    """The active model, fresh from the store (for decisions right after a change)."""
    return read(active_model)


def threshold_override(model_id: int, dataset_id: int) -> DatasetThreshold | None:
    """The model's threshold re-chosen on this dataset, fresh from the store (None: its card's applies)."""
    return read(lambda session: dataset_threshold(session, model_id, dataset_id))


def teacher_key_set() -> bool:
    """Whether this process (and so the worker that ``cactus app`` starts beside it) has an Anthropic key."""
    return bool(os.environ.get("ANTHROPIC_API_KEY", "").strip())


# --- models ---------------------------------------------------------------------------------------------------


def sweep_curve(model: ModelInfo) -> list[dict[str, float]] | None:
    """The validation scores at every threshold of the sweep that chose the model's threshold (best epoch), from the
    registry's copy of its training history or else its card; None when its training did not record it."""
    history = model.training.get("history")
    if not history:
        from cactus.training.checkpoint import CheckpointError, read_card

        try:
            history = read_card(model.checkpoint).history
        except CheckpointError:
            return None
    rows = [row for row in history if row.get("sweep")]
    best = next((row for row in rows if row.get("epoch") == model.training.get("best_epoch")), None)
    best = best or next((row for row in rows if row.get("threshold") == model.threshold), None)
    return (best or {}).get("sweep") or None


def model_cut(model: ModelInfo) -> tuple[str, dict[str, dict[str, float]]]:
    """The card's cut ("threshold" or "silhouette") and the validation scores of both cuts it was chosen on (empty for
    models trained before the per-set cut); ("threshold", {}) when the card cannot be read."""
    from cactus.training.checkpoint import CheckpointError, read_card

    try:
        card = read_card(model.checkpoint)
    except CheckpointError:
        return "threshold", {}
    return card.cut, card.training_data.get("cut_validation") or {}


def _stamp(checkpoint: str) -> float:
    card = Path(checkpoint) / "card.json"
    return card.stat().st_mtime if card.exists() else 0.0


@st.cache_resource(max_entries=3, show_spinner=False)
def _load_model(checkpoint: str, stamp: float) -> Any:
    from cactus.inference.model import ClusteringModel

    return ClusteringModel.load(checkpoint)


def clustering_model(checkpoint: str) -> Any:
    """The model in ``checkpoint`` (a :class:`cactus.inference.model.ClusteringModel`), loaded once per process.

    Raises:
        cactus.training.checkpoint.CheckpointError: the folder is gone or is not a model.
    """
    return _load_model(checkpoint, _stamp(checkpoint))


def loaded_model(model: ModelInfo) -> Any:
    """A registered model loaded from its checkpoint (see :func:`clustering_model`); use its ``threshold``.

    The card is the one source of the threshold: when the registry's copy differs (the card was re-written), the
    copy is refreshed so that the Models page lists the value in use.
    """
    loaded = clustering_model(model.checkpoint)
    if loaded.threshold != model.threshold:  # upkeep, not a user's change: whatever the role
        with session_scope(db_url()) as session:
            refresh_threshold(session, model.id, loaded.threshold)
        refresh()
    return loaded


@st.cache_data(max_entries=512, show_spinner=False)
def _similarity(checkpoint: str, stamp: float, texts: tuple[str, ...], mode: str | None) -> np.ndarray:
    model = _load_model(checkpoint, stamp)
    with model_in_use():  # one forward at a time
        return model.similarities([list(texts)], mode=mode)[0]


def similarity(checkpoint: str, texts: tuple[str, ...], mode: str | None = None) -> np.ndarray:
    """The (N, N) cosine similarities of a set's entities under a model (its trained mode, or ``mode``)."""
    return _similarity(checkpoint, _stamp(checkpoint), texts, mode)


@st.cache_data(max_entries=4, show_spinner=False)
def _corpus_xy(checkpoint: str, stamp: float, texts: tuple[tuple[str, ...], ...]) -> np.ndarray:
    from app.corpus import project

    model = _load_model(checkpoint, stamp)
    with model_in_use():
        embedded = model.encoder.embed([list(t) for t in texts], batch_size=32, device=model.device)
    stacked = np.concatenate(embedded) if embedded else np.zeros((0, 2), dtype=np.float32)
    return project(stacked.astype(np.float64))


def corpus_xy(checkpoint: str, texts: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """2-D positions (PCA) of every entity of these sets, in order, from a model's embeddings within their set."""
    return _corpus_xy(checkpoint, _stamp(checkpoint), texts)


@st.cache_data(max_entries=64, show_spinner=False)
def _domain_warning(url: str, checkpoint: str, stamp: float, dataset_id: int, sets: int) -> str | None:
    from app.actions import sampled_set_texts
    from cactus.inference.domain import check_shift, shift_warning, stored_domains

    model = _load_model(checkpoint, stamp)
    if not stored_domains(model.card.training_data):
        return None
    with session_scope(url, readonly=True) as session:
        texts = sampled_set_texts(session, dataset_id)
    with model_in_use():
        shift = check_shift(model.encoder, texts, model.card.training_data, device=model.device)
    return shift_warning(shift)


def domain_warning(model: ModelInfo, dataset_id: int, sets: int) -> str | None:
    """The domain-shift warning for a dataset (of ``sets`` sets, part of the cache key) under a registered model:
    None when its texts are near the model's training data or the card keeps no fingerprint of it."""
    return _domain_warning(db_url(), model.checkpoint, _stamp(model.checkpoint), dataset_id, sets)
