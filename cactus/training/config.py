"""Training options, importable without torch (the job queue checks them before a job runs).

:class:`TrainConfig` is ``cactus train``'s flags, :class:`PretrainConfig` ``cactus pretrain``'s. Both hold the
encoder's options as an :class:`~cactus.encoders.config.EncoderConfig`; outside the code, in CLI flags, job
parameters, progress files and model cards, all options are one flat mapping (see :func:`config_options` and
:func:`config_from_dict`), as they always were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cactus.encoders.config import EncoderConfig
from cactus.errors import CactusError
from cactus.losses.registry import loss_kind


class TrainingError(CactusError):
    """Training cannot start or go on; the message says why and what to do."""


def _check_common(config: TrainConfig | PretrainConfig, counts: tuple[str, ...]) -> None:
    """The checks both configs share: an EncoderConfig, a known loss, counts of at least 1."""
    if not isinstance(config.encoder, EncoderConfig):
        raise TypeError(f"encoder must be an EncoderConfig, got {config.encoder!r}")
    loss_kind(config.loss)
    for name in counts:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")


def _check_cut(cut: object) -> None:
    """``cut`` must be one of :data:`TRAIN_CUTS` (the option of ``cactus train`` and ``cactus adapt``)."""
    if cut not in TRAIN_CUTS:
        raise ValueError(f"cut must be one of {', '.join(TRAIN_CUTS)}, got {cut!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning options (the CLI flags of ``cactus train``)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # backbone, mode (default sia), max_tokens
    loss: str = "aug_triplet"  # aug_triplet, triplet, structural, bce
    epochs: int = 10
    batch_size: int = 4  # sets per optimizer step (per process under torchrun)
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max global gradient norm
    seed: int = 0
    limit_train: int | None = None  # use only the first N training sets
    init: str | None = None  # a model folder (e.g. from pretraining) to start from
    device: str | None = None  # "cpu", "cuda", "cuda:1"; default: cuda when visible
    eval_batch_size: int = 16
    mix: str = "proportional"  # several datasets: "proportional" (all their sets) or "equal" (as many from each)
    # robustness off the home domain (defaults change nothing)
    # after training, weights = ALPHA * fine-tuned + (1 - ALPHA) * starting backbone (WiSE-FT); "auto": the best
    # ALPHA of cactus.training.wise_ft.WISE_FT_ALPHAS on validation (1 among them); None: not averaged
    wise_ft: float | str | None = None
    freeze_layers: int = 0  # keep the embeddings and the lowest N layers of the backbone frozen
    backbone_lr_scale: float = 1.0  # the backbone learns at lr * S; s_neu and other non-backbone parameters at lr
    selfsup_mix: float = 0.0  # after each supervised step, a self-supervised step with this probability
    cut: str = "auto"  # where sets are cut: "auto" (the better on validation), "threshold" or "silhouette"

    def __post_init__(self) -> None:
        _check_common(self, ("epochs", "batch_size", "eval_batch_size"))
        _check_cut(self.cut)
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.limit_train is not None and self.limit_train < 1:
            raise ValueError(f"limit_train must be at least 1, got {self.limit_train}")
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        check_wise_ft(self.wise_ft)
        if self.freeze_layers < 0:
            raise ValueError(f"freeze_layers must be 0 or more, got {self.freeze_layers}")
        if not self.backbone_lr_scale > 0:
            raise ValueError(f"backbone_lr_scale must be positive, got {self.backbone_lr_scale}")
        if not 0.0 <= self.selfsup_mix <= 1.0:
            raise ValueError(f"selfsup_mix must be between 0 and 1, got {self.selfsup_mix}")


#: The alphas ``wise_ft="auto"`` tries (ties keep the larger alpha: the less averaged model; 1 is no average).
WISE_FT_ALPHAS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)


def check_wise_ft(alpha: object) -> None:
    """``wise_ft`` is None, "auto" or a weight between 0 and 1."""
    if alpha is None or alpha == "auto":
        return
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"wise_ft must be between 0 and 1, or auto, got {alpha!r}")


#: ``cactus train --cut``: choose on validation, or always one cut (see :mod:`cactus.inference.per_set_cut`).
TRAIN_CUTS: tuple[str, ...] = ("auto", "threshold", "silhouette")

#: How ``cactus train --datasets A B C`` mixes the training sets of several datasets.
MIXES: tuple[str, ...] = ("proportional", "equal")


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised pretraining options (``cactus pretrain``)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # backbone, mode (default sia), max_tokens
    loss: str = "aug_triplet"
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    device: str | None = None
    eval_batch_size: int = 16
    save_every: int = 100  # steps between resumable states
    threshold_sets: int = 64  # held-out synthetic sets that choose the checkpoint's threshold

    def __post_init__(self) -> None:
        _check_common(self, ("steps", "batch_size", "eval_batch_size", "save_every", "threshold_sets"))


@dataclass(frozen=True)
class AdaptConfig:
    """Options of ``cactus adapt``: self-supervised steps on a new domain's texts, with supervised replay."""

    steps: int = 200
    batch_size: int = 4  # self-supervised sets per step (and as many replayed labelled sets)
    lr: float = 2e-5  # lower than fine-tuning's: adaptation nudges, it does not retrain
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    replay_weight: float = 1.0  # weight of the supervised loss on replayed source sets
    seed: int = 0
    device: str | None = None
    eval_batch_size: int = 16
    # the adapted model's cut: per set by default, since the replayed validation sets are the source's and a
    # threshold chosen on them did not travel (docs/benchmarks.md); "auto" chooses on them as training does
    cut: str = "silhouette"
    # then average with the backbone the source model was fine-tuned from: ALPHA * adapted + (1 - ALPHA) * start
    # (WiSE-FT; None or 1: not averaged). Fixed, since the target has no labels to choose it on; 0.5 gained most off
    # the home domain in docs/benchmarks.md
    wise_ft: float | None = 0.5

    def __post_init__(self) -> None:
        _check_cut(self.cut)
        if self.wise_ft == "auto":
            raise ValueError("wise_ft cannot be auto for adaptation: the new domain has no labels to choose it on")
        check_wise_ft(self.wise_ft)
        for name in ("steps", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.replay_weight < 0:
            raise ValueError(f"replay_weight must be 0 or more, got {self.replay_weight}")


#: The options that make up the nested EncoderConfig, given flat beside the others.
ENCODER_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(EncoderConfig))


def config_options(config: TrainConfig | PretrainConfig) -> dict[str, Any]:
    """All options of ``config`` as one flat mapping (the encoder's beside the others), the form CLI flags, job
    parameters, progress files and model cards use; :func:`config_from_dict` reads it back."""
    rest = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "encoder"}
    return {**asdict(config.encoder), **rest}


_KINDS = {"int": (int, "an integer"), "float": ((int, float), "a number"), "str": (str, "a string")}


def _checked(name: str, annotation: str, value: Any) -> Any:
    """``value`` if it has one of the field's types (an int for a float field becomes a float), else a
    TrainingError."""
    kinds = annotation.split(" | ")
    if value is None and "None" in kinds:
        return None
    for kind in (k for k in kinds if k != "None"):
        types, _ = _KINDS[kind]
        if not isinstance(value, bool) and isinstance(value, types):
            return float(value) if kind == "float" else value
    what = " or ".join([_KINDS[k][1] for k in kinds if k != "None"] + (["null"] if "None" in kinds else []))
    raise TrainingError(f"{name} must be {what}, got {value!r}")


def config_from_dict(cls: type, values: dict[str, Any]):
    """Build a config dataclass from its flat options (see :func:`config_options`; e.g. a job's JSON parameters or
    a model card's ``config``), refusing unknown keys with the list of known ones and values of the wrong type with
    the option's name."""
    annotations = {f.name: str(f.type) for f in fields(EncoderConfig)}
    annotations.update({f.name: str(f.type) for f in fields(cls) if f.name != "encoder"})
    unknown = sorted(set(values) - set(annotations))
    if unknown:
        raise TrainingError(f"unknown training options: {', '.join(unknown)}; known: {', '.join(sorted(annotations))}")
    checked = {name: _checked(name, annotations[name], value) for name, value in values.items()}
    encoder = {name: checked.pop(name) for name in ENCODER_OPTIONS if name in checked}
    try:
        return cls(encoder=EncoderConfig(**encoder), **checked)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
