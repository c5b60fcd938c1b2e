"""Checkpoint folders: a self-contained backbone folder (safetensors weights, config, tokenizer) and a JSON card.

Layout::

    MODEL_DIR/
      card.json                # what the model is, how it was trained, how well it did (ModelCard)
      backbone/                # a Hugging Face folder: config.json, model.safetensors, tokenizer files
      training_state/          # only while training: optimizer and RNG states for resuming (safetensors + JSON)

Weights are written with safetensors, never pickle. A card whose ``format`` or ``version`` this code does not
know is refused with a message, rather than loaded and misread.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cactus import __version__
from cactus.errors import CactusError
from cactus.files import atomic_text
from cactus.inference.threshold import check_cut, check_threshold

CARD_FORMAT = "cactus-checkpoint"
CARD_VERSION = 1
CARD_FILE = "card.json"
BACKBONE_DIR = "backbone"


class CheckpointError(CactusError):
    """A model folder that is missing, incomplete or written by an unknown version of cactus."""


@dataclass
class ModelCard:
    """Everything a user needs to know about a trained model, stored as ``card.json``."""

    backbone: str  # as named at training time: "minilm" or a folder
    mode: str  # inter-entity attention the model was trained and is applied with
    loss: str
    max_tokens: int
    threshold: float  # average-link similarity threshold chosen on validation
    # where each set is cut: "threshold" (the one above) or "silhouette" (per set, see cactus.inference.per_set_cut);
    # chosen on validation; cards written before the per-set cut existed mean "threshold"
    cut: str = "threshold"
    s_neu: float | None = None  # the learnt neutral similarity (aug_triplet only)
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None  # the best epoch (1-based)
    training_data: dict[str, Any] = field(default_factory=dict)  # dataset path, fingerprint, set counts
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the full training configuration
    # one row per epoch; each row may hold "sweep": the validation scores at every threshold (older cards
    # lack it: the Models page says the curve was not recorded)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = CARD_FORMAT
    version: int = CARD_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, *, path: Path) -> ModelCard:
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise CheckpointError(f"{path} is not a cactus model card (expected \"format\": \"{CARD_FORMAT}\")")
        if data.get("version") != CARD_VERSION:
            raise CheckpointError(
                f"{path} is a version {data.get('version')!r} model card; this cactus ({__version__}) reads version "
                f"{CARD_VERSION}: upgrade cactus or retrain the model"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{path} has fields this cactus does not understand: {', '.join(unknown)}")
        missing = [n for n in ("backbone", "mode", "loss", "max_tokens", "threshold") if n not in data]
        if missing:
            raise CheckpointError(f"{path} lacks {', '.join(missing)}")
        try:
            data = {**data, "threshold": check_threshold(data["threshold"]),
                    "cut": check_cut(data.get("cut", "threshold"))}
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        return cls(**data)


def software_versions() -> dict[str, str]:
    import torch
    import transformers

    return {"cactus": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_card(model_dir: Path, card: ModelCard) -> None:
    """Write ``card.json`` atomically."""
    with atomic_text(model_dir / CARD_FILE) as handle:
        json.dump(card.to_json(), handle, indent=2)
        handle.write("\n")


def read_card(model_dir: str | Path) -> ModelCard:
    """Read and check a model folder's card."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if not model_dir.is_dir():
        raise CheckpointError(f"model folder {model_dir} not found; `cactus train` writes one with --out")
    if not path.is_file():
        raise CheckpointError(f"{model_dir} has no {CARD_FILE}: it is not a cactus model folder (or training has "
                              "not finished its first epoch)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    return ModelCard.from_json(data, path=path)


@contextlib.contextmanager
def _quiet_saving() -> Iterator[None]:
    """Hide transformers' "Writing model shards" bar, which breaks the trainer's one-line-per-epoch output."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def save_backbone(encoder: Any, target: Path) -> None:
    """Save the encoder's backbone and tokenizer as a Hugging Face folder, replacing ``target`` atomically."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _quiet_saving():
            encoder.backbone.save_pretrained(staging, safe_serialization=True)
            encoder.tokenizer.save_pretrained(staging)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def backbone_dir(model_dir: str | Path) -> Path:
    path = Path(model_dir) / BACKBONE_DIR
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{model_dir} lacks its {BACKBONE_DIR}/ folder (config.json and weights)")
    return path
