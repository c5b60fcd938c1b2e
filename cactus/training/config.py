"""Training options, importable without torch (the job queue checks them before a job runs).

:class:`TrainConfig` is ``cactus train``'s flags, :class:`PretrainConfig` ``cactus pretrain``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cactus.encoders.config import check_mode
from cactus.errors import CactusError
from cactus.losses.registry import LOSS_NAMES


class TrainingError(CactusError):
    """Training cannot start or go on; the message says why and what to do."""


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning options (the CLI flags of ``cactus train``)."""

    backbone: str = "minilm"  # "minilm" or a local HF BERT/T5 folder
    mode: str = "sia"  # inter-entity attention: nia, sia, sia_first, sia_qkey, fia
    loss: str = "aug_triplet"  # aug_triplet, triplet, structural, bce
    epochs: int = 10
    batch_size: int = 4  # sets per optimizer step (per process under torchrun)
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max global gradient norm
    seed: int = 0
    max_tokens: int = 32  # per-entity truncation
    limit_train: int | None = None  # use only the first N training sets
    init: str | None = None  # a model folder (e.g. from pretraining) to start from
    device: str | None = None  # "cpu", "cuda", "cuda:1"; default: cuda when visible
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss '{self.loss}'; choose one of {', '.join(LOSS_NAMES)}")
        for name in ("epochs", "batch_size", "eval_batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.limit_train is not None and self.limit_train < 1:
            raise ValueError(f"limit_train must be at least 1, got {self.limit_train}")


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised pretraining options (``cactus pretrain``)."""

    backbone: str = "minilm"
    mode: str = "sia"
    loss: str = "aug_triplet"
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    max_tokens: int = 32
    device: str | None = None
    eval_batch_size: int = 16
    save_every: int = 100  # steps between resumable states
    threshold_sets: int = 64  # held-out synthetic sets that choose the checkpoint's threshold

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss '{self.loss}'; choose one of {', '.join(LOSS_NAMES)}")
        for name in ("steps", "batch_size", "eval_batch_size", "max_tokens", "save_every", "threshold_sets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")



_KINDS = {"int": (int, "an integer"), "float": ((int, float), "a number"), "str": (str, "a string")}


def _checked(name: str, annotation: str, value: Any) -> Any:
    """``value`` if it has the field's type (an int for a float field becomes a float), else a TrainingError."""
    kind, _, optional = annotation.partition(" | ")
    if value is None and optional == "None":
        return None
    types, what = _KINDS[kind]
    if isinstance(value, bool) or not isinstance(value, types):
        raise TrainingError(f"{name} must be {what}{' or null' if optional else ''}, got {value!r}")
    return float(value) if kind == "float" else value


def config_from_dict(cls: type, values: dict[str, Any]):
    """Build a config dataclass from a dict (e.g. a job's JSON parameters), refusing unknown keys with the list
    of known ones and values of the wrong type with the option's name."""
    annotations = {f.name: str(f.type) for f in fields(cls)}
    unknown = sorted(set(values) - set(annotations))
    if unknown:
        raise TrainingError(f"unknown training options: {', '.join(unknown)}; known: {', '.join(sorted(annotations))}")
    checked = {name: _checked(name, annotations[name], value) for name, value in values.items()}
    try:
        return cls(**checked)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
