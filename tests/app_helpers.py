"""Shared pieces of the app tests: a fresh store per test, a tiny trained model, seeded sets, and AppTest.

The fixtures built from these (``app_env``, ``tiny_model``, ``tiny_bert``) live in ``tests/conftest.py``.
Every test gets its own SQLite file (``CACTUS_DB_URL``), data folder (teacher cache) and jobs folder, and no
Anthropic key unless it sets one; the Streamlit caches are cleared after it. The tiny model is trained once per
test session, whichever module asks first.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cactus.data import EntitySet, read_dataset

REPO = Path(__file__).resolve().parents[1]
APP_MAIN = REPO / "app" / "main.py"
RUN_TIMEOUT_S = 90  # the first run that loads torch and a model takes a few seconds on a busy CI machine


def fresh_app_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store for the app under test; yields its URL."""
    import streamlit as st

    from db.session import dispose_engines

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CACTUS_DB_URL", url)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("CACTUS_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("CACTUS_AUTHOR", "tester")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("CACTUS_JOB_TYPES", raising=False)
    st.cache_data.clear()
    yield url
    st.cache_data.clear()
    dispose_engines()


def train_tiny_model(root: Path) -> Path:
    """A model folder under ``root`` trained for one epoch on the tiny dataset with the tiny BERT (a few seconds)."""
    from cactus.encoders.config import EncoderConfig
    from cactus.training.config import TrainConfig
    from cactus.training.trainer import train
    from tests.tiny_backbones import save_tiny_bert
    from tests.tiny_data import write_tiny_dataset

    data = write_tiny_dataset(root / "data")
    bert = save_tiny_bert(root / "bert")
    train(data, root / "model", TrainConfig(encoder=EncoderConfig(str(bert)), epochs=1, batch_size=4, seed=0))
    return root / "model"


def free_port() -> int:
    """A TCP port nobody listens on now, for an app started by a test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(port: int, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Wait until the app on ``port`` answers its health check; fail with its log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the app did not answer within {timeout:.0f} s"
        time.sleep(0.3)


def first_word_clusters(texts: list[str]) -> tuple[list[list[int]], list[str]]:
    """A plausible teacher: entities grouped by their first word (as tests/fake_anthropic.py answers)."""
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(text.split()[0].lower(), []).append(i)
    return list(groups.values()), [f"{word.title()} items" for word in groups]


def tiny_sets(root: Path) -> list[EntitySet]:
    """The tiny dataset's sets, each with its split as a ``split`` key (as an uploaded file could carry it)."""
    from tests.tiny_data import write_tiny_dataset

    data = read_dataset(write_tiny_dataset(root))
    sets = []
    for split in ("train", "val", "test"):
        for entity_set in data[split]:
            entity_set.extra["split"] = split
            sets.append(entity_set)
    return sets


def tiny_sets_jsonl(root: Path) -> bytes:
    """The tiny dataset as one sets JSONL file (bytes), splits and reference clusters included."""
    return "".join(json.dumps(s.to_json()) + "\n" for s in tiny_sets(root)).encode()


@dataclass(frozen=True)
class Seeded:
    dataset_id: int
    set_ids: list[int]
    model_id: int | None


def seed_store(url: str, root: Path, model_dir: Path | None = None, *, teacher: bool = True, predict: bool = True,
               name: str = "tiny") -> Seeded:
    """The tiny dataset in the store, with first-word teacher clusterings and (given a model) the model's."""
    from db import add_clustering, create_dataset, import_sets, list_sets, register_model, session_scope

    with session_scope(url) as session:
        dataset = create_dataset(session, name, "products")
        import_sets(session, dataset.id, tiny_sets(root))
        ids = [s.id for s in list_sets(session, dataset.id, limit=1000).items]
    model_id = None
    if model_dir is not None:
        from cactus.training.checkpoint import read_card

        card = read_card(model_dir)
        with session_scope(url) as session:
            model_id = register_model(session, name="tiny-sia", checkpoint=str(model_dir), backbone=card.backbone,
                                      mode=card.mode, loss=card.loss, threshold=card.threshold,
                                      metrics={"validation": card.validation, "test": card.test},
                                      training={**card.training_data, "epochs": 1}, dataset_id=dataset.id,
                                      activate=True).id
    if teacher or (predict and model_dir is not None):
        from db import load_entity_sets

        with session_scope(url, readonly=True) as session:
            sets = load_entity_sets(session, ids)
        predictions: dict[int, Any] = {}
        if predict and model_dir is not None:
            from cactus.inference.model import ClusteringModel

            model = ClusteringModel.load(model_dir)
            predictions = dict(zip(ids, model.predict([sets[i] for i in ids]), strict=True))
        with session_scope(url) as session:
            for set_id in ids:
                if teacher:
                    clusters, names = first_word_clusters(sets[set_id].texts)
                    add_clustering(session, set_id, "teacher", clusters, names, producer="claude-test")
                if set_id in predictions:
                    add_clustering(session, set_id, "model", predictions[set_id].clusters, model_id=model_id,
                                   producer="tiny-sia", details={"threshold": model.threshold})
    return Seeded(dataset.id, ids, model_id)


def forget_cached_queries() -> None:
    """Drop the app's briefly cached queries, as their time-to-live would after a write from another process."""
    import streamlit as st

    st.cache_data.clear()


def open_app(page: str | None = None, *, query: dict[str, str] | None = None) -> AppTest:
    """Run the app (through ``app/main.py``'s navigation) on ``page`` ("review", "data", ...) and check it ran."""
    at = AppTest.from_file(str(APP_MAIN), default_timeout=RUN_TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    """No exception was shown on the page."""
    assert not at.exception, "\n".join(str(e.value) for e in at.exception)


def texts_of(at: AppTest) -> str:
    """Every markdown, caption, alert and metric on the page, as one string (for "the page says ..." checks)."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "success", "warning", "error", "subheader", "title"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    return "\n".join(parts)


def plotly_array(value: Any) -> np.ndarray:
    """An array of a Plotly spec, plain (a list) or typed (``{"dtype", "bdata", "shape"}``, base64)."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = tuple(int(n) for n in str(value.get("shape", len(flat))).split(","))
        return flat.reshape(shape)
    return np.asarray(value)


def plotly_specs(at: AppTest) -> list[dict[str, Any]]:
    """The Plotly figures on the page, as their JSON specs."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
