"""The ``finetune`` job: export a dataset's best labels, train a set encoder on them, register the model.

Parameters (JSON):

===============  ============================================================================
``dataset_id``   the dataset (required)
``name``         the model's name in the registry (default: dataset, mode, loss and job id)
``train``        options of :class:`cactus.training.config.TrainConfig` (backbone, mode, loss, epochs, ...)
``pretrain``     options of :class:`cactus.training.config.PretrainConfig` (e.g. ``{"steps": 300}``) to
                 pretrain on self-supervised sets first, or null
``init_model_id`` a registered model to start from instead of the backbone (not with ``pretrain``)
``adapt``        with ``init_model_id``: when the dataset's texts are far from that model's training data (or
                 the model has no fingerprint of it), first adapt it to them (``cactus adapt``: self-supervised
                 steps with its source sets replayed, or this dataset's training sets when those are gone)
``adapt_steps``  steps of that adaptation (default 200)
``human``        ``"reviewed"`` (default: human labels of reviewed sets only) or ``"any"``
``split_seed``   seed that assigns splits to sets that have none (default 0)
``activate``     make the new model the active one (default true)
===============  ============================================================================

The work folder keeps the export and the checkpoint, so a job run again after its worker died resumes
training from its last epoch. With several GPUs visible the trainer runs under ``torchrun``, one process
per GPU, and its progress is relayed from the JSON lines that rank 0 writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.base import JobContext, JobParamsError, JobType
from jobs.params import boolean, integer, is_int, refuse_unknown


@dataclass(frozen=True)
class FinetuneParams:
    dataset_id: int
    train: dict[str, Any]
    pretrain: dict[str, Any] | None = None
    name: str | None = None
    human: str = "reviewed"
    split_seed: int = 0
    activate: bool = True
    init_model_id: int | None = None
    adapt: bool = False
    adapt_steps: int = 200


def _options(cls_name: str, raw: Any, where: str) -> dict[str, Any]:
    from cactus.training.config import PretrainConfig, TrainConfig, TrainingError, config_from_dict, config_options

    cls = {"TrainConfig": TrainConfig, "PretrainConfig": PretrainConfig}[cls_name]
    if not isinstance(raw, dict):
        raise JobParamsError(f"finetune: {where} must be an object of options, got {raw!r}")
    try:
        return config_options(config_from_dict(cls, raw))
    except TrainingError as exc:
        raise JobParamsError(f"finetune: {where}: {exc}") from None


def parse_params(raw: Mapping[str, Any]) -> FinetuneParams:
    """Check the finetune job's parameters (see the module doc); training options are checked in full."""
    known = {"dataset_id", "name", "train", "pretrain", "human", "split_seed", "activate", "init_model_id", "adapt",
             "adapt_steps"}
    refuse_unknown("finetune", raw, known)
    dataset_id = integer("finetune", raw, "dataset_id", required=True)
    train = _options("TrainConfig", raw.get("train", {}), "train")
    if train.get("init"):
        raise JobParamsError("finetune: train.init is not taken here; use 'pretrain' to start from pretraining")
    pretrain = raw.get("pretrain")
    if pretrain is not None:
        pretrain = _options("PretrainConfig", {"backbone": train["backbone"], "mode": train["mode"],
                                               "loss": train["loss"], **pretrain}, "pretrain")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise JobParamsError(f"finetune: name must be a non-empty string, got {name!r}")
    human = raw.get("human", "reviewed")
    if human not in ("reviewed", "any"):
        raise JobParamsError(f"finetune: human must be 'reviewed' or 'any', got {human!r}")
    seed = raw.get("split_seed", 0)
    if not is_int(seed):
        raise JobParamsError(f"finetune: split_seed must be an integer, got {seed!r}")
    activate = boolean("finetune", raw, "activate", True)
    init_model_id = integer("finetune", raw, "init_model_id")
    adapt = boolean("finetune", raw, "adapt", False)
    adapt_steps = integer("finetune", raw, "adapt_steps", default=200)
    if adapt and init_model_id is None:
        raise JobParamsError("finetune: adapt needs init_model_id, the model to adapt before training")
    if init_model_id is not None and pretrain is not None:
        raise JobParamsError("finetune: init_model_id and pretrain exclude each other")
    return FinetuneParams(dataset_id, train, pretrain, name.strip() if name else None, human, seed, activate,
                          init_model_id, adapt, adapt_steps)


def relay(ctx: JobContext, phase_weight: tuple[float, float]):
    """A trainer callback that reports into the job (progress fraction scaled into ``phase_weight``)."""
    start, span = phase_weight

    def report(progress: Any) -> None:
        label = {"pretrain": "pretraining", "train": "training", "validate": "validating",
                 "test": "testing", "done": "done"}.get(progress.phase, progress.phase)
        parts = [label]
        if progress.epochs:
            parts.append(f"epoch {progress.epoch}/{progress.epochs}")
        if progress.loss is not None:
            parts.append(f"loss {progress.loss:.4f}")
        if progress.eta_s:
            parts.append(f"about {progress.eta_s / 60:.0f} min left" if progress.eta_s >= 90
                         else f"about {progress.eta_s:.0f} s left")
        ctx.progress(start + span * progress.fraction, ", ".join(parts))
        if progress.loss is not None and progress.phase in ("train", "pretrain") and progress.metrics is None:
            ctx.point(phase=progress.phase, step=progress.step, loss=round(progress.loss, 5),
                      sets_per_s=round(progress.sets_per_s or 0.0, 2))
        if progress.metrics:
            scores = {k: round(v, 4) for k, v in progress.metrics.items() if k != "sets"}
            ctx.metrics({f"{'test' if progress.phase == 'done' else 'val'}_{k}": v for k, v in scores.items()})
            if progress.phase == "train":
                ctx.point(phase="validate", epoch=progress.epoch, **scores)
        if progress.message:
            ctx.log(progress.message)

    return report


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def train_distributed(ctx: JobContext, data_dir: Path, model_dir: Path, options: dict[str, Any],
                      init: str | None, gpus: int, report) -> None:
    """Run ``cactus train`` under torchrun on ``gpus`` GPUs, relaying rank 0's progress lines."""
    from cactus.training.config import TrainingError
    from cactus.training.trainer import Progress

    progress_file = ctx.work_dir / "progress.jsonl"
    progress_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
           "-m", "cactus", "train", str(data_dir), "--out", str(model_dir), "--quiet",
           "--progress-jsonl", str(progress_file)]
    flags = {"backbone": "--backbone", "mode": "--mode", "loss": "--loss", "epochs": "--epochs",
             "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "max_tokens": "--max-tokens",
             "limit_train": "--limit-train", "wise_ft": "--wise-ft", "freeze_layers": "--freeze-layers",
             "backbone_lr_scale": "--backbone-lr-scale", "selfsup_mix": "--selfsup-mix", "cut": "--cut"}
    for key, flag in flags.items():
        if options.get(key) is not None:
            cmd += [flag, str(options[key])]
    if init:
        cmd += ["--init", init]
    ctx.log(f"{gpus} GPUs visible: training under torchrun")
    process = subprocess.Popen(cmd, env={**os.environ}, stdout=sys.stdout, stderr=sys.stderr)
    seen = 0
    while True:
        finished = process.poll() is not None
        if progress_file.exists():
            lines = progress_file.read_text(encoding="utf-8").splitlines()
            for line in lines[seen:]:
                report(Progress(**json.loads(line)))
            seen = len(lines)
        if finished:
            break
        time.sleep(1.0)
    if process.returncode != 0:
        raise TrainingError(f"distributed training exited with status {process.returncode}; see the log above")


def adapt_first(ctx: JobContext, checkpoint: str, data_dir: Path, steps: int, report, source: str) -> str:
    """The model folder to fine-tune from: ``checkpoint`` when the dataset's texts are close to its training data,
    else a copy adapted to them in the work folder (kept for a resumed job)."""
    from cactus.data import read_dataset
    from cactus.inference.domain import check_shift, stored_domains
    from cactus.inference.model import ClusteringModel
    from cactus.training.adapt import adapt, source_datasets
    from cactus.training.config import AdaptConfig
    from cactus.training.trainer import entity_texts

    adapted = ctx.work_dir / "adapted"
    if (adapted / "card.json").is_file():
        ctx.log("using the adaptation of the earlier attempt")
        return str(adapted)
    train_sets = read_dataset(data_dir, ("train",)).train
    model = ClusteringModel.load(checkpoint)
    if stored_domains(model.card.training_data):
        shift = check_shift(model.encoder, [s.texts for s in train_sets], model.card.training_data,
                            device=model.device)
        if shift is not None and not shift.far:
            ctx.log(f"the dataset's texts are close to the model's training data (cosine "
                    f"{shift.embedding_cosine:.2f}, word overlap {shift.vocabulary_overlap:.0%}): no adaptation")
            return checkpoint
        ctx.log("the dataset's texts are far from the model's training data: adapting first")
    else:
        ctx.log("the model's card has no fingerprint of its training data: adapting first")
    sources = source_datasets(model.card)
    reachable = bool(sources) and all((f / "train.jsonl").is_file() and (f / "val.jsonl").is_file() for f in sources)
    if not reachable:
        ctx.log("the model's training data is not reachable here: replaying this dataset's training sets instead")
    del model
    adapt(checkpoint, entity_texts(train_sets), adapted, AdaptConfig(steps=steps),
          replay=None if reachable else [data_dir], callback=report, force=True, source=source)
    return str(adapted)


def _finished_card(model_dir: Path):
    """The card of a model that finished training in ``model_dir`` (test scores written), else None."""
    from cactus.training.checkpoint import CheckpointError, read_card

    try:
        card = read_card(model_dir)
    except CheckpointError:
        return None
    return card if card.test and not (model_dir / "training_state").exists() else None


def run(ctx: JobContext, params: FinetuneParams) -> dict[str, Any]:
    """Export labels, (pre)train, register the model."""
    from cactus.training.trainer import PretrainConfig, TrainConfig, config_from_dict, entity_texts, pretrain, train
    from db.datasets import get_dataset
    from db.export import export_labels
    from db.registry import register_model

    data_dir, model_dir = ctx.work_dir / "data", ctx.work_dir / "model"
    with ctx.session() as session:
        dataset = get_dataset(session, params.dataset_id)
        if not (ctx.resumed and (data_dir / "test.jsonl").exists()):
            exported = export_labels(session, dataset.id, data_dir, seed=params.split_seed, human=params.human)
            ctx.log(f"exported {exported.sets} sets by split, labels from {exported.sources}")
            ctx.metrics(exported_sets=exported.sets, label_sources=exported.sources)
    init = None
    pretrain_share = 0.3 if params.pretrain else 0.0
    if params.pretrain:
        from cactus.data import read_dataset

        pre_dir = ctx.work_dir / "pretrained"
        texts = entity_texts(read_dataset(data_dir, ("train",)).train)
        pretrain(texts, pre_dir, config_from_dict(PretrainConfig, params.pretrain),
                 callback=relay(ctx, (0.0, pretrain_share)), source=f"dataset {dataset.name} (train split)")
        init = str(pre_dir)
    if params.init_model_id is not None:
        from db.registry import get_model

        with ctx.session() as session:
            init = get_model(session, params.init_model_id).checkpoint
        if params.adapt:
            pretrain_share = 0.3
            init = adapt_first(ctx, init, data_dir, params.adapt_steps, relay(ctx, (0.0, pretrain_share)),
                               f"dataset {dataset.name} (train split)")
    report = relay(ctx, (pretrain_share, 1.0 - pretrain_share))
    gpus = gpu_count()
    finished = _finished_card(model_dir) if ctx.resumed else None
    if finished is not None:
        ctx.log("the earlier attempt finished training; registering its model")
        card = finished
    elif gpus > 1:
        train_distributed(ctx, data_dir, model_dir, params.train, init, gpus, report)
        from cactus.training.checkpoint import read_card

        card = read_card(model_dir)
    else:
        config = config_from_dict(TrainConfig, {**params.train, "init": init})
        card = train(data_dir, model_dir, config, callback=report).card
    name = params.name or f"{dataset.name} {card.mode}+{card.loss} (job {ctx.job_id})"
    training = {**card.training_data, "epochs": card.config.get("epochs"), "best_epoch": card.epoch,
                "config": card.config, "label_human": params.human, "history": card.history}
    with ctx.session() as session:
        model = register_model(session, name=name, checkpoint=str(model_dir), backbone=card.backbone,
                               mode=card.mode, loss=card.loss, threshold=card.threshold,
                               metrics={"validation": card.validation, "test": card.test},
                               training=training, dataset_id=dataset.id, job_id=ctx.job_id, activate=params.activate)
    ctx.progress(1.0, f"registered model {model.name!r}" + (" (active)" if params.activate else ""))
    return {"model_id": model.id, "name": model.name, "threshold": card.threshold, "test": card.test}


JOB_TYPE = JobType(name="finetune", summary="train a CACTUS model on a dataset's best labels and register it",
                   run=run, parse_params=parse_params)
