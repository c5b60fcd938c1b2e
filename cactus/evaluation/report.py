"""The paper's comparison (Table 2) on one dataset: unsupervised baselines and trained variants, in one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cactus.training.checkpoint import CheckpointError, read_card
from cactus.training.trainer import (
    Callback,
    PretrainConfig,
    TrainConfig,
    config_options,
    entity_texts,
    pretrain,
    train,
)


@dataclass(frozen=True)
class Variant:
    """One trained row of the comparison."""

    method: str
    slug: str
    mode: str
    loss: str
    pretrained: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("NIA + structural (SCL)", "nia-structural", "nia", "structural"),
    Variant("NIA + aug_triplet", "nia-aug_triplet", "nia", "aug_triplet"),
    Variant("SIA + triplet", "sia-triplet", "sia", "triplet"),
    Variant("SIA + aug_triplet", "sia-aug_triplet", "sia", "aug_triplet"),
    Variant("SIA + aug_triplet + self-sup. pretraining", "sia-aug_triplet-pretrained", "sia", "aug_triplet", True),
)
METRIC_KEYS = ("NMI", "AMI", "RI", "ARI", "F1")


def finished_card(model_dir: Path, config: TrainConfig):
    """The card of a finished model in ``model_dir`` trained with ``config``, else None (so a rerun skips it)."""
    try:
        card = read_card(model_dir)
    except CheckpointError:
        return None
    if card.test and card.config == config_options(config):
        return card
    return None


def run_report(dataset_dir: Path, work_dir: Path, base: TrainConfig, *, pretrain_steps: int, embed,
               variants: tuple[Variant, ...] = VARIANTS, include_baselines: bool = True,
               callback_for: Callable[[str], Callback] | None = None,
               say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the baselines and train every variant (reusing finished models in ``work_dir``).

    Returns ``{"rows": [{"method", "NMI", "AMI", "RI", "ARI", "F1", ...}], "dataset", "config", ...}``.
    """
    from cactus.data import read_dataset
    from cactus.evaluation.baselines import run_baselines
    from cactus.evaluation.intervals import bootstrap_intervals
    from cactus.evaluation.scoring import evaluate_model

    dataset = read_dataset(dataset_dir)
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    extra: dict[str, Any] = {}
    if include_baselines:
        started = time.perf_counter()
        baselines = run_baselines(dataset, embed, seed=base.seed, progress=say)
        seconds["baselines"] = round(time.perf_counter() - started, 1)
        rows.extend({**row, "trained": False} for row in baselines["rows"])
        extra["baseline_choices"] = baselines["choices"]
    models: dict[str, Any] = {}
    for variant in variants:
        started = time.perf_counter()
        init = None
        if variant.pretrained:
            pre_dir = work_dir / "pretrained"
            pre_config = PretrainConfig(encoder=replace(base.encoder, mode=variant.mode), loss=variant.loss,
                                        steps=pretrain_steps, batch_size=base.batch_size, lr=base.lr, seed=base.seed,
                                        device=base.device)
            if not _pretrained_ok(pre_dir, pre_config):
                say(f"pretraining {pretrain_steps} steps on self-supervised sets")
                pretrain(entity_texts(dataset.train), pre_dir, pre_config,
                         callback=callback_for("pretrain") if callback_for else None, force=True,
                         source=str(dataset_dir / "train.jsonl"))
            init = str(pre_dir)
        config = replace(base, encoder=replace(base.encoder, mode=variant.mode), loss=variant.loss, init=init)
        model_dir = work_dir / variant.slug
        card = finished_card(model_dir, config)
        if card is None:
            say(f"training {variant.method}")
            card = train(dataset_dir, model_dir, config, callback=callback_for(variant.slug) if callback_for else None,
                         force=(model_dir / "card.json").exists()).card
        else:
            say(f"reusing {model_dir} ({variant.method})")
        seconds[variant.slug] = round(time.perf_counter() - started, 1)
        # the card holds the test averages; the per-set scores behind the interval come from one more pass
        per_set = evaluate_model(str(model_dir), dataset.test, device=base.device).per_set
        rows.append({"method": variant.method, **{k: card.test[k] for k in METRIC_KEYS}, "trained": True,
                     "threshold": card.threshold, "best_epoch": card.epoch, "ci95": bootstrap_intervals(per_set)})
        models[variant.slug] = {"dir": str(model_dir), "threshold": card.threshold, "epoch": card.epoch,
                                "validation": card.validation, "history": card.history}
    return {"rows": rows, "dataset": str(dataset_dir), "test_sets": len(dataset.test),
            "config": config_options(base), "pretrain_steps": pretrain_steps, "models": models, "seconds": seconds,
            **extra}


def _pretrained_ok(pre_dir: Path, config: PretrainConfig) -> bool:
    try:
        return read_card(pre_dir).config == config_options(config)
    except CheckpointError:
        return False
