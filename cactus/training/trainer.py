"""Training set encoders for clustering: supervised fine-tuning and self-supervised pretraining.

``train(dataset_dir, out_dir, TrainConfig(...))`` fine-tunes on labelled sets with AdamW, validates after every
epoch with the threshold sweep (NMI + AMI + RI + ARI) and keeps the best epoch's weights in ``out_dir``
(see :mod:`cactus.training.checkpoint`), then scores the test split. ``pretrain(texts, out_dir, PretrainConfig(...))``
trains on self-supervised sets (:mod:`cactus.training.selfsup`); ``TrainConfig(init=...)`` starts from its folder.

Both report through a callback receiving :class:`Progress` (the CLI draws a progress bar with it, the job
worker stores it), resume from ``out_dir/training_state`` after an interruption, and run data-parallel when
launched with ``torchrun`` (see :mod:`cactus.training.distributed`).

Shapes: B sets per batch, N entities (padded to the largest set of the batch), D hidden size.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cactus.data.sets import SPLITS, Dataset, EntitySet, read_dataset
from cactus.encoders.config import EncoderConfig
from cactus.evaluation.metrics import selection_score
from cactus.inference.cluster import ThresholdSweep, sweep_thresholds
from cactus.inference.model import resolve_device, set_similarities
from cactus.inference.per_set_cut import choose_cut, cut_scores
from cactus.inference.threshold import describe_cut
from cactus.losses import build_loss, pair_targets
from cactus.training.checkpoint import (
    BACKBONE_DIR,
    CARD_FILE,
    CheckpointError,
    ModelCard,
    backbone_dir,
    now_iso,
    read_card,
    save_backbone,
    software_versions,
    write_card,
)
from cactus.training.config import (
    PretrainConfig,
    TrainConfig,
    TrainingError,
    config_from_dict,
    config_options,
)
from cactus.training.distributed import DistContext, init_distributed, shutdown_distributed
from cactus.training.selfsup import self_supervised_sets
from cactus.training.state import clear_training_state, load_training_state, read_progress, save_training_state
from cactus.training.wise_ft import WISE_FT_ALPHAS, choose_wise_ft


@dataclass
class Progress:
    """One report from a training run, for progress bars, logs and the job store."""

    phase: str  # "pretrain", "train", "validate", "test", "done"
    step: int  # optimizer steps done in this phase
    steps: int  # optimizer steps planned in this phase
    epoch: int = 0  # 1-based epoch in progress (0 for pretraining)
    epochs: int = 0
    loss: float | None = None  # running mean of the epoch's (or the last 50 steps') loss
    metrics: dict[str, float] | None = None  # validation scores after an epoch; test scores when done
    eta_s: float | None = None  # seconds left, estimated
    sets_per_s: float | None = None  # training throughput over all processes
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.steps) if self.steps else 0.0


Callback = Callable[[Progress], None]


@dataclass
class TrainResult:
    model_dir: Path
    card: ModelCard
    history: list[dict[str, Any]] = field(default_factory=list)
    weights_digest: str = ""  # SHA-256 of this process's final weights (equal on every data-parallel rank)


def weights_digest(module: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class SetTrainingModule(nn.Module):
    """The encoder and the loss as one module (the loss may own parameters, e.g. s_neu), for DDP and saving."""

    def __init__(self, encoder: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.loss = loss

    def forward(self, batch: Any, labels: Tensor) -> Tensor:
        embeddings, _ = self.encoder(batch)  # (B, N, D), L2-normalised
        embeddings = embeddings.float()
        similarity = embeddings @ embeddings.transpose(1, 2)  # (B, N, N) cosine similarities
        mask, same = pair_targets(labels)
        return self.loss(similarity, mask, same)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def padded_labels(sets: Sequence[EntitySet]) -> Tensor:
    """Cluster ids of each set's entities, padded with -1: (B, N)."""
    width = max(len(s) for s in sets)
    labels = torch.full((len(sets), width), -1, dtype=torch.long)
    for b, entity_set in enumerate(sets):
        labels[b, : len(entity_set)] = torch.as_tensor(entity_set.labels())
    return labels


def dataset_fingerprint(dataset_dir: Path | Sequence[Path], splits: Sequence[str] = SPLITS) -> str:
    """SHA-256 over the split files' bytes (of each folder in turn): names the exact data a model was trained on."""
    digest = hashlib.sha256()
    for folder in [dataset_dir] if isinstance(dataset_dir, Path) else dataset_dir:
        for split in splits:
            digest.update(split.encode())
            digest.update((Path(folder) / f"{split}.jsonl").read_bytes())
    return digest.hexdigest()


def mixed_dataset(dataset_dirs: Sequence[Path], mix: str, seed: int) -> Dataset:
    """Several dataset folders as one: validation and test splits concatenated; the training sets all of them
    (``mix="proportional"``) or, with ``mix="equal"``, the same number from each (their mean count, drawn
    without replacement where a dataset has enough and with replacement where it has fewer)."""
    datasets = [read_dataset(d) for d in dataset_dirs]
    if len(datasets) == 1:
        return datasets[0]
    rng = np.random.default_rng([seed, len(datasets)])
    if mix == "equal":
        each = round(sum(len(d.train) for d in datasets) / len(datasets))
        train_sets = []
        for d in datasets:
            picks = rng.choice(len(d.train), size=each, replace=len(d.train) < each)
            train_sets += [d.train[i] for i in picks]
    else:
        train_sets = [s for d in datasets for s in d.train]
    splits = {"train": train_sets, "val": [s for d in datasets for s in d.val],
              "test": [s for d in datasets for s in d.test]}
    return Dataset(Path(dataset_dirs[0]), splits)


def autocast_for(device: str):
    """bf16 autocast on CUDA; a no-op context on CPU (fp32)."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def build_encoder(config: EncoderConfig, init: str | None):
    """A SetEncoder as ``config`` says, or on the weights of the model folder ``init`` when given."""
    from cactus.encoders import SetEncoder

    if init is not None:
        read_card(init)  # refuses a folder that is not a model
        config = replace(config, backbone=str(backbone_dir(init)))
    return SetEncoder(config)


def init_neutral(loss: nn.Module, init: str | None) -> None:
    """Start s_neu from the ``init`` model's value when both have one."""
    if init is None or not hasattr(loss, "neutral"):
        return
    card = read_card(init)
    if card.s_neu is not None:
        with torch.no_grad():
            loss.neutral.fill_(card.s_neu)


def optimizer_for(module: nn.Module, lr: float, weight_decay: float, backbone_lr_scale: float = 1.0
                  ) -> torch.optim.Optimizer:
    """AdamW; biases, LayerNorm weights and the scalar s_neu get no weight decay; the backbone's parameters
    (``encoder.backbone.*``) learn at ``lr * backbone_lr_scale``, the others (s_neu, ...) at ``lr``."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        decays = not (param.ndim < 2 or "norm" in name.lower())
        in_backbone = backbone_lr_scale != 1.0 and name.startswith("encoder.backbone.")
        groups.setdefault((decays, in_backbone), []).append(param)
    return torch.optim.AdamW([{"params": params, "weight_decay": weight_decay if decays else 0.0,
                               "lr": lr * (backbone_lr_scale if in_backbone else 1.0)}
                              for (decays, in_backbone), params in sorted(groups.items(), reverse=True)], lr=lr)


_LAYER = re.compile(r"(?:^|\.)(?:layer|block)\.(\d+)\.")
_EMBEDDINGS = ("embeddings.", "shared.", "embed_tokens.")


def freeze_lower_layers(backbone: nn.Module, layers: int) -> int:
    """Freeze the embeddings and the lowest ``layers`` transformer layers of a BERT/T5 backbone (none for 0);
    returns how many parameters were frozen."""
    if layers <= 0:
        return 0
    frozen = 0
    for name, param in backbone.named_parameters():
        match = _LAYER.search(name)
        if (match is not None and int(match.group(1)) < layers) or any(e in name for e in _EMBEDDINGS):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def train_step(module: nn.Module, encoder, sets: Sequence[EntitySet], optimizer: torch.optim.Optimizer,
               device: str, grad_clip: float) -> float:
    """One optimizer step on a batch of labelled sets; returns the loss."""
    batch = encoder.tokenize([s.texts for s in sets]).to(device)
    labels = padded_labels(sets).to(device)
    with autocast_for(device):
        loss = module(batch, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


def epoch_batches(sets: Sequence[EntitySet], batch_size: int, seed: int, epoch: int, context: DistContext
                  ) -> list[list[EntitySet]]:
    """This process's batches of one epoch: a seeded shuffle, cut into batches, dealt round-robin to ranks.

    Under data parallelism every rank must take the same number of steps, so the last batches that do not
    fill a round of ``world_size`` are left out of that epoch (the shuffle changes every epoch).
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(sets))
    batches = [[sets[i] for i in order[start:start + batch_size]] for start in range(0, len(order), batch_size)]
    if context.enabled:
        usable = len(batches) - len(batches) % context.world_size
        batches = batches[context.rank:usable:context.world_size]
    return batches


def validate(encoder, sets: Sequence[EntitySet], device: str, batch_size: int) -> tuple[float, dict[str, float]]:
    """Sweep thresholds on ``sets``; returns the best threshold and its averaged scores."""
    sweep = validation_sweep(encoder, sets, device, batch_size)
    return sweep.best_threshold, sweep.best_scores


def validation_sweep(encoder, sets: Sequence[EntitySet], device: str, batch_size: int) -> ThresholdSweep:
    """The validation scores of ``sets`` at every threshold of the sweep, and the best threshold."""
    sims = set_similarities(encoder, [s.texts for s in sets], batch_size=batch_size, device=device)
    return sweep_thresholds(sims, [s.labels() for s in sets])


def sweep_curve(sweep: ThresholdSweep) -> list[dict[str, float]]:
    """The sweep as rows ``{"threshold", "NMI", "AMI", "RI", "ARI", "F1"}`` for the card's history (rounded)."""
    return [{"threshold": t, **{k: round(v, 5) for k, v in s.items() if k != "sets"}}
            for t, s in zip(sweep.thresholds, sweep.scores, strict=True)]


def score_at(encoder, sets: Sequence[EntitySet], threshold: float, device: str, batch_size: int,
             cut: str = "threshold") -> dict[str, float]:
    """Averaged scores of ``sets`` clustered at ``threshold`` under ``cut``."""
    sims = set_similarities(encoder, [s.texts for s in sets], batch_size=batch_size, device=device)
    return cut_scores(sims, [s.labels() for s in sets], threshold, cut)


def choose_model_cut(encoder, sets: Sequence[EntitySet], threshold: float | None, device: str, batch_size: int,
                     wanted: str = "auto") -> tuple[float, str, dict[str, dict[str, float]]]:
    """The threshold (``threshold``, or when None the best of a sweep on ``sets``), the cut a model keeps (``wanted``,
    or with "auto" the better on the labelled ``sets``) and both cuts' scores; the sets are embedded once."""
    sims = set_similarities(encoder, [s.texts for s in sets], batch_size=batch_size, device=device)
    gold = [s.labels() for s in sets]
    if threshold is None:
        threshold = sweep_thresholds(sims, gold).best_threshold
    choice = choose_cut(sims, gold, threshold)
    return threshold, (choice.cut if wanted == "auto" else wanted), choice.scores


#: Options added after runs were first saved, with the value an older run's progress stands for.
_ADDED_OPTIONS: dict[str, Any] = {"mix": "proportional", "wise_ft": None, "freeze_layers": 0, "backbone_lr_scale": 1.0,
                                  "selfsup_mix": 0.0, "cut": "auto"}


def check_out_dir(out_dir: Path, config_dict: dict[str, Any], *, force: bool) -> dict[str, Any] | None:
    """The progress to resume from, after checking ``out_dir`` may be written; None for a fresh start."""
    progress = read_progress(out_dir)
    if progress is not None:
        saved = progress.get("config", {})
        differing = sorted(k for k in config_dict if k not in ("epochs", "device")
                           and saved.get(k, _ADDED_OPTIONS.get(k)) != config_dict[k])
        if differing and not force:
            raise TrainingError(
                f"{out_dir} holds an interrupted run with other settings ({', '.join(differing)}); "
                "resume it with the same settings, choose another --out, or pass --force to start over"
            )
        if not differing:
            return progress
    elif (out_dir / CARD_FILE).exists() and not force:
        raise TrainingError(f"{out_dir} already holds a trained model; choose another --out or pass --force "
                            "to overwrite it")
    if force:
        for name in (CARD_FILE, BACKBONE_DIR):
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        clear_training_state(out_dir)
    return None


class _Timer:
    """Running loss and throughput for progress reports."""

    def __init__(self, window: int = 50) -> None:
        self.losses: list[float] = []
        self.window = window
        self.started = time.perf_counter()
        self.sets = 0

    def add(self, loss: float, sets: int) -> None:
        self.losses.append(loss)
        self.sets += sets

    @property
    def mean_loss(self) -> float | None:
        return float(np.mean(self.losses[-self.window:])) if self.losses else None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def sets_per_s(self, world_size: int) -> float | None:
        return self.sets * world_size / self.elapsed if self.elapsed > 0 and self.sets else None


@dataclass
class _Run:
    """What ``train`` and ``pretrain`` share once set up: device, ranks, model, optimizer, resume point."""

    device: str
    context: DistContext
    report: Callback
    resume: dict[str, Any] | None
    encoder: Any
    loss: nn.Module
    module: SetTrainingModule
    optimizer: torch.optim.Optimizer


@contextlib.contextmanager
def _training_run(config: TrainConfig | PretrainConfig, out_dir: Path, callback: Callback | None, *, force: bool,
                  init: str | None) -> Iterator[_Run]:
    """Join the process group, check ``out_dir``, seed, build encoder, loss and optimizer; leave the group after."""
    device = resolve_device(config.device)
    context = init_distributed(device)
    if context.enabled and device.startswith("cuda"):
        device = f"cuda:{context.local_rank}"
    report = callback if (callback is not None and context.is_main) else (lambda progress: None)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        options = config_options(config)
        resume = check_out_dir(out_dir, options, force=force) if context.is_main else read_progress(out_dir)
        context.barrier()
        seed_everything(config.seed)
        encoder = build_encoder(config.encoder, init)
        loss = build_loss(config.loss)
        freeze_lower_layers(encoder.backbone, getattr(config, "freeze_layers", 0))
        module = SetTrainingModule(encoder, loss).to(device)
        optimizer = optimizer_for(module, config.lr, config.weight_decay, getattr(config, "backbone_lr_scale", 1.0))
        yield _Run(device, context, report, resume, encoder, loss, module, optimizer)
    finally:
        shutdown_distributed(context)


def train(dataset_dir: str | Path | Sequence[str | Path], out_dir: str | Path, config: TrainConfig | None = None,
          *, callback: Callback | None = None, force: bool = False) -> TrainResult:
    """Fine-tune a set encoder on a labelled dataset folder and save the best epoch to ``out_dir``.

    Args:
        dataset_dir: folder with train.jsonl, val.jsonl and test.jsonl (all labelled), or several such folders,
            mixed as ``config.mix`` says (see :func:`mixed_dataset`).
        out_dir: model folder to write; an interrupted run there is resumed.
        config: training options.
        callback: receives :class:`Progress` after every step and epoch (main process only).
        force: overwrite a finished model or an interrupted run with other settings.

    Returns:
        The model folder, its card (validation and test scores, threshold) and the per-epoch history.
    """
    config = config or TrainConfig()
    dataset_dirs = [Path(dataset_dir)] if isinstance(dataset_dir, str | Path) else [Path(d) for d in dataset_dir]
    if not dataset_dirs:
        raise TrainingError("no dataset folder given")
    out_dir = Path(out_dir)
    dataset = mixed_dataset(dataset_dirs, config.mix, config.seed)
    dataset_dir = dataset_dirs[0] if len(dataset_dirs) == 1 else dataset_dirs
    train_sets = dataset.train[: config.limit_train] if config.limit_train else dataset.train
    with _training_run(config, out_dir, callback, force=force, init=config.init) as run:
        device, context, report = run.device, run.context, run.report
        encoder, loss, module, optimizer, resume = run.encoder, run.loss, run.module, run.optimizer, run.resume
        init_neutral(loss, config.init)
        config_dict = config_options(config)
        state = {"epoch": 0, "best_score": -math.inf, "best_epoch": None, "history": [], "config": config_dict}
        if resume is not None:
            state.update(load_training_state(out_dir, module, optimizer))
            state["config"] = config_dict
            report(Progress("train", 0, 0, state["epoch"], config.epochs,
                            message=f"resuming after epoch {state['epoch']} of {config.epochs}"))
        trained = nn.parallel.DistributedDataParallel(module) if context.enabled else module
        fingerprint = dataset_fingerprint(dataset_dirs)
        selfsup = _SelfSupMix(config, train_sets, context.rank)
        steps_per_epoch = len(epoch_batches(train_sets, config.batch_size, config.seed, 0, context))
        total_steps = steps_per_epoch * config.epochs
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            module.train()
            timer = _Timer(window=10**9)
            for step, sets in enumerate(epoch_batches(train_sets, config.batch_size, config.seed, epoch, context), 1):
                timer.add(train_step(trained, encoder, sets, optimizer, device, config.grad_clip), len(sets))
                if selfsup.draw(epoch, step):
                    train_step(trained, encoder, selfsup.batch(), optimizer, device, config.grad_clip)
                done = (epoch - 1) * steps_per_epoch + step
                seconds_per_step = timer.elapsed / step
                report(Progress("train", done, total_steps, epoch, config.epochs, loss=timer.mean_loss,
                                eta_s=seconds_per_step * (total_steps - done),
                                sets_per_s=timer.sets_per_s(context.world_size)))
            epoch_seconds = timer.elapsed
            row: dict[str, Any] = {"epoch": epoch, "loss": timer.mean_loss, "seconds": round(epoch_seconds, 2),
                                   "sets_per_s": timer.sets_per_s(context.world_size)}
            if context.is_main:
                report(Progress("validate", epoch * steps_per_epoch, total_steps, epoch, config.epochs,
                                loss=timer.mean_loss, message="validating"))
                sweep = validation_sweep(encoder, dataset.val, device, config.eval_batch_size)
                threshold, scores = sweep.best_threshold, sweep.best_scores
                row.update({"threshold": threshold, "validation": scores, "sweep": sweep_curve(sweep),
                            "s_neu": loss.neutral.item() if hasattr(loss, "neutral") else None})
                improved = selection_score(scores) > state["best_score"]
                if improved:
                    state["best_score"], state["best_epoch"] = selection_score(scores), epoch
                    save_backbone(encoder, out_dir / BACKBONE_DIR)
                    write_card(out_dir, _card(config, threshold, loss, scores, epoch, dataset_dir, fingerprint,
                                              len(train_sets), len(dataset.val), len(dataset.test),
                                              state["history"] + [row]))
                state["history"].append(row)
                state["epoch"] = epoch
                save_training_state(out_dir, module, optimizer, state)
                report(Progress("train", epoch * steps_per_epoch, total_steps, epoch, config.epochs,
                                loss=timer.mean_loss, metrics=scores,
                                eta_s=(epoch_seconds + 0.0) * (config.epochs - epoch),
                                sets_per_s=row["sets_per_s"],
                                message=f"epoch {epoch}/{config.epochs}: loss {timer.mean_loss:.4f}, "
                                f"{row['sets_per_s']:.1f} sets/s, {epoch_seconds:.1f} s; validation "
                                f"NMI+AMI+RI+ARI {selection_score(scores):.3f} at threshold {threshold:+.1f}"
                                + (" (best so far)" if improved else "")))
            context.barrier()
        digest = weights_digest(module)
        result = _finish(out_dir, dataset, dataset_dirs, device, config, report) if context.is_main else None
        context.barrier()
        result = result if result is not None else TrainResult(out_dir, read_card(out_dir))
        result.weights_digest = digest
        return result


def _card(config: TrainConfig | PretrainConfig, threshold: float, loss: nn.Module, scores: dict[str, float],
          epoch: int | None, dataset_dir: Path | list[Path] | None, fingerprint: str | None, n_train: int, n_val: int,
          n_test: int, history: list[dict[str, Any]], extra_data: dict[str, Any] | None = None) -> ModelCard:
    several = isinstance(dataset_dir, list)
    data: dict[str, Any] = {"dataset": str(dataset_dir[0] if several else dataset_dir) if dataset_dir else None,
                            **({"datasets": [str(d) for d in dataset_dir], "mix": config.mix} if several else {}),
                            "fingerprint": fingerprint,
                            "train_sets": n_train, "val_sets": n_val, "test_sets": n_test,
                            "init": getattr(config, "init", None)}
    data.update(extra_data or {})
    return ModelCard(
        backbone=config.encoder.backbone if getattr(config, "init", None) is None else _init_backbone(config.init),
        mode=config.encoder.mode, loss=config.loss, max_tokens=config.encoder.max_tokens, threshold=threshold,
        s_neu=loss.neutral.item() if hasattr(loss, "neutral") else None,
        validation={k: v for k, v in scores.items()}, epoch=epoch, training_data=data, seed=config.seed,
        config=config_options(config), history=history, versions=software_versions(), created=now_iso(),
    )


def _init_backbone(init: str) -> str:
    return read_card(init).backbone


class _SelfSupMix:
    """``selfsup_mix``: after a supervised step, with probability P, a step on self-supervised sets made from the
    training entities (a seeded draw per epoch and step, so a resumed run draws the same)."""

    def __init__(self, config: TrainConfig, train_sets: Sequence[EntitySet], rank: int) -> None:
        self.config = config
        self.stream = (_batched(self_supervised_sets(entity_texts(train_sets), seed=config.seed * 1000 + 500 + rank),
                                config.batch_size) if config.selfsup_mix > 0 else None)

    def draw(self, epoch: int, step: int) -> bool:
        if self.stream is None:
            return False
        return bool(np.random.default_rng([self.config.seed, epoch, step, 7]).random() < self.config.selfsup_mix)

    def batch(self) -> list[EntitySet]:
        assert self.stream is not None
        return next(self.stream)


def domain_fingerprints(encoder, sources: Sequence[tuple[str | None, Sequence[Sequence[str]]]], device: str,
                        batch_size: int) -> list[dict[str, Any]]:
    """One fingerprint per (source name, sets of texts) for the card (see :mod:`cactus.inference.domain`)."""
    from cactus.inference.domain import model_fingerprint

    return [model_fingerprint(encoder, sets, source=source, device=device, batch_size=batch_size)
            for source, sets in sources if any(len(s) for s in sets)]


def _apply_wise_ft(model, card: ModelCard, out_dir: Path, dataset, device: str, config: TrainConfig) -> None:
    """Average the best epoch's backbone with the starting one (at the alpha given, or the best of
    :data:`WISE_FT_ALPHAS` on validation under "auto"), save it, and put its threshold and cut in ``card``."""
    alphas = WISE_FT_ALPHAS if config.wise_ft == "auto" else (float(config.wise_ft),)
    start = build_encoder(config.encoder, config.init)
    choice = choose_wise_ft(model.encoder, start.backbone, dataset.val, alphas, device, config.eval_batch_size,
                            config.cut)
    save_backbone(model.encoder, out_dir / BACKBONE_DIR)
    card.training_data["wise_ft"] = {"alpha": choice.alpha, "chosen_on_validation": config.wise_ft == "auto",
                                     "tried": choice.by_alpha, "fine_tuned_threshold": card.threshold,
                                     "fine_tuned_validation": card.validation}
    card.threshold, card.cut = choice.threshold, choice.cut
    card.training_data["cut_validation"] = choice.cut_scores
    card.validation = dict(choice.cut_scores[choice.cut])


def _finish(out_dir: Path, dataset, dataset_dirs: Sequence[Path], device: str, config: TrainConfig,
            report: Callback) -> TrainResult:
    """Reload the best epoch (WiSE-FT-averaged when asked), score the test split at its threshold, store the
    domain fingerprints, complete the card, drop the resume state."""
    from cactus.inference.model import ClusteringModel

    card = read_card(out_dir)
    model = ClusteringModel.load(out_dir, device=device)
    if config.wise_ft is not None and "wise_ft" not in card.training_data:
        report(Progress("validate", 1, 1, config.epochs, config.epochs,
                        message="averaging with the starting weights (WiSE-FT, "
                        + ("alpha chosen on validation)" if config.wise_ft == "auto" else f"alpha {config.wise_ft})")))
        _apply_wise_ft(model, card, out_dir, dataset, device, config)
        write_card(out_dir, card)
    if "cut_validation" not in card.training_data:
        report(Progress("validate", 1, 1, config.epochs, config.epochs,
                        message="choosing between the threshold and a per-set cut on validation"))
        _, card.cut, both = choose_model_cut(model.encoder, dataset.val, card.threshold, device,
                                             config.eval_batch_size, config.cut)
        card.training_data["cut_validation"] = both
        card.validation = dict(both[card.cut])
        write_card(out_dir, card)
    report(Progress("test", 1, 1, config.epochs, config.epochs, message="scoring the test split"))
    card.test = score_at(model.encoder, dataset.test, card.threshold, device, config.eval_batch_size, card.cut)
    sources = ([(str(dataset_dirs[0]), [s.texts for s in dataset.train])] if len(dataset_dirs) == 1 else
               [(str(d), [s.texts for s in read_dataset(d, ("train",)).train]) for d in dataset_dirs])
    card.training_data["domains"] = domain_fingerprints(model.encoder, sources, device, config.eval_batch_size)
    state = read_progress(out_dir) or {}
    card.history = state.get("history", card.history)
    write_card(out_dir, card)
    clear_training_state(out_dir)
    report(Progress("done", 1, 1, config.epochs, config.epochs, metrics=card.test,
                    message=f"best epoch {card.epoch}, {describe_cut(card.threshold, card.cut)}; test "
                    + ", ".join(f"{k} {v:.3f}" for k, v in card.test.items() if k != "sets")))
    return TrainResult(out_dir, card, card.history)


def entity_texts(sets: Iterable[EntitySet]) -> list[str]:
    """All entity texts of some sets (the pool for self-supervised sets; labels are not used)."""
    return [text for s in sets for text in s.texts]


def pretrain(texts: Sequence[str], out_dir: str | Path, config: PretrainConfig | None = None, *,
             callback: Callback | None = None, force: bool = False, source: str | None = None) -> TrainResult:
    """Train on self-supervised sets built from ``texts`` for ``config.steps`` steps; save to ``out_dir``.

    The checkpoint's threshold is chosen on ``config.threshold_sets`` synthetic sets from another seed.
    """
    config = config or PretrainConfig()
    out_dir = Path(out_dir)
    with _training_run(config, out_dir, callback, force=force, init=None) as run:
        device, context, report = run.device, run.context, run.report
        encoder, loss, module, optimizer, resume = run.encoder, run.loss, run.module, run.optimizer, run.resume
        config_dict = config_options(config)
        state: dict[str, Any] = {"step": 0, "config": config_dict, "history": []}
        if resume is not None:
            state.update(load_training_state(out_dir, module, optimizer))
            report(Progress("pretrain", state["step"], config.steps, message=f"resuming at step {state['step']}"))
        trained = nn.parallel.DistributedDataParallel(module) if context.enabled else module
        # every rank draws its own stream; a resumed run skips what was already drawn
        stream = self_supervised_sets(texts, seed=config.seed * 1000 + context.rank)
        batches = _batched(stream, config.batch_size)
        for _ in range(state["step"]):
            next(batches)
        module.train()
        timer = _Timer()
        first_step = state["step"] + 1
        for step in range(first_step, config.steps + 1):
            timer.add(train_step(trained, encoder, next(batches), optimizer, device, config.grad_clip),
                      config.batch_size)
            report(Progress("pretrain", step, config.steps, loss=timer.mean_loss,
                            eta_s=timer.elapsed / (step - first_step + 1) * (config.steps - step),
                            sets_per_s=timer.sets_per_s(context.world_size)))
            if step % config.save_every == 0 and step < config.steps and context.is_main:
                state["step"] = step
                save_training_state(out_dir, module, optimizer, state)
            if step % config.save_every == 0:
                context.barrier()
        result = None
        if context.is_main:
            held_out = list(itertools.islice(self_supervised_sets(texts, seed=config.seed * 1000 + 999),
                                             config.threshold_sets))
            report(Progress("validate", config.steps, config.steps, message="choosing the threshold"))
            threshold, scores = validate(encoder, held_out, device, config.eval_batch_size)
            save_backbone(encoder, out_dir / BACKBONE_DIR)
            chunks = [list(texts[i:i + 16]) for i in range(0, len(texts), 16)]
            card = _card(config, threshold, loss, scores, None, None, None, 0, len(held_out), 0, [],
                         {"self_supervised": {"pool_texts": len(texts), "steps": config.steps, "source": source},
                          "domains": domain_fingerprints(encoder, [(source, chunks)], device,
                                                         config.eval_batch_size)})
            write_card(out_dir, card)
            clear_training_state(out_dir)
            report(Progress("done", config.steps, config.steps, metrics=scores,
                            message=f"pretrained {config.steps} steps; threshold {threshold:+.1f} on "
                            f"{len(held_out)} synthetic sets"))
            result = TrainResult(out_dir, card)
        digest = weights_digest(module)
        context.barrier()
        result = result if result is not None else TrainResult(out_dir, read_card(out_dir))
        result.weights_digest = digest
        return result


def _batched(stream: Iterator[EntitySet], size: int) -> Iterator[list[EntitySet]]:
    while True:
        yield [next(stream) for _ in range(size)]


__all__ = [
    "CheckpointError",
    "PretrainConfig",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "config_from_dict",
    "config_options",
    "entity_texts",
    "pretrain",
    "train",
]
