"""Adapting a trained model to a new domain's unlabelled texts without forgetting what it learnt.

Self-supervised sets alone (word-dropped copies, :mod:`cactus.training.selfsup`) teach a near-duplicate
granularity and pull a fine-tuned model away from the clusters it was trained for. So every step of
:func:`adapt` sums two losses: the model's own loss on self-supervised sets from the new texts, and, weighted by
``replay_weight``, its supervised loss on labelled sets replayed from its source data (the dataset folders its
card names, or ``replay`` when those are not reachable). The threshold is chosen again on the replayed
validation sets, and the card records what the model was adapted on, from which model, and a fingerprint of the
new domain beside the old ones (so the domain-shift warning knows it).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cactus.encoders.config import EncoderConfig
from cactus.errors import CactusError
from cactus.inference.model import resolve_device
from cactus.inference.threshold import describe_cut
from cactus.losses import build_loss
from cactus.training.checkpoint import (
    BACKBONE_DIR,
    CARD_FILE,
    ModelCard,
    now_iso,
    read_card,
    save_backbone,
    software_versions,
    write_card,
)
from cactus.training.config import AdaptConfig, TrainingError
from cactus.training.distributed import DistContext
from cactus.training.selfsup import self_supervised_sets
from cactus.training.trainer import (
    Callback,
    Progress,
    SetTrainingModule,
    TrainResult,
    _batched,
    _Timer,
    autocast_for,
    build_encoder,
    choose_model_cut,
    domain_fingerprints,
    epoch_batches,
    init_neutral,
    mixed_dataset,
    optimizer_for,
    padded_labels,
    score_at,
    seed_everything,
)
from cactus.training.wise_ft import wise_ft_average


def source_datasets(card: ModelCard) -> list[Path]:
    """The dataset folders a card says its model was trained on (none for a pretrained-only model)."""
    data = card.training_data
    named = data.get("datasets") or ([data["dataset"]] if data.get("dataset") else [])
    return [Path(d) for d in named]


def replay_datasets(card: ModelCard, replay: Sequence[str | Path] | None) -> list[Path]:
    """The labelled dataset folders to replay: ``replay`` when given, else the card's, which must be reachable."""
    if replay:
        folders = [Path(r) for r in replay]
    else:
        folders = source_datasets(card)
        if not folders:
            raise TrainingError("this model's card names no labelled training data to replay (a pretrained-only "
                                "model?); give --replay DATASET_DIR so adaptation does not forget")
    missing = [str(f) for f in folders if not all((f / f"{s}.jsonl").is_file() for s in ("train", "val"))]
    if missing:
        hint = "" if replay else " (the model's training data is not reachable here: give --replay DATASET_DIR)"
        raise TrainingError(f"replay dataset folder(s) without train.jsonl and val.jsonl: {', '.join(missing)}"
                            + hint)
    return folders


def starting_backbone(card: ModelCard) -> nn.Module:
    """The backbone the card's model was fine-tuned from (its ``backbone``, or its ``init`` model's), as it started."""
    backbone, init = card.config.get("backbone", "minilm"), card.config.get("init")
    try:
        return build_encoder(EncoderConfig(backbone=backbone, mode=card.mode, max_tokens=card.max_tokens),
                             init).backbone
    except (OSError, ValueError, CactusError) as exc:
        raise TrainingError(f"WiSE-FT needs the backbone this model started from ({init or backbone}), which does not "
                            f"load here ({exc}); adapt with --wise-ft 1 to skip the average") from None


def mixed_step(module: nn.Module, encoder, parts: Sequence[tuple[Sequence[Any], float]],
               optimizer: torch.optim.Optimizer, device: str, grad_clip: float) -> float:
    """One optimizer step on the weighted sum of the loss over several batches of labelled sets."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for sets, weight in parts:
        if weight == 0:
            continue
        batch = encoder.tokenize([s.texts for s in sets]).to(device)
        with autocast_for(device):
            loss = module(batch, padded_labels(sets).to(device)) * weight
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    return total


def adapt(model_dir: str | Path, texts: Sequence[str], out_dir: str | Path, config: AdaptConfig | None = None, *,
          replay: Sequence[str | Path] | None = None, callback: Callback | None = None, force: bool = False,
          source: str | None = None) -> TrainResult:
    """Adapt the model in ``model_dir`` to the entity texts ``texts`` and save it to ``out_dir``.

    Args:
        model_dir: a trained model folder.
        texts: the new domain's entity texts (no labels needed).
        out_dir: the adapted model's folder (must not hold a model unless ``force``).
        config: steps, learning rate, replay weight, ...
        replay: labelled dataset folders to replay; default: the ones the model's card names.
        callback: receives :class:`Progress` after every step.
        force: overwrite a model in ``out_dir``.
        source: how to name the new texts in the card (e.g. the file they came from).
    """
    config = config or AdaptConfig()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    card = read_card(model_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise TrainingError("--out must differ from the model folder: adaptation writes a new model")
    if (out_dir / CARD_FILE).exists() and not force:
        raise TrainingError(f"{out_dir} already holds a model; choose another --out or pass --force to overwrite it")
    folders = replay_datasets(card, replay)
    replayed = mixed_dataset(folders, "proportional", config.seed)
    report = callback or (lambda progress: None)
    device = resolve_device(config.device)
    start = starting_backbone(card) if config.wise_ft is not None and config.wise_ft < 1.0 else None  # fail early
    seed_everything(config.seed)
    encoder = build_encoder(EncoderConfig(mode=card.mode, max_tokens=card.max_tokens), str(model_dir))
    loss = build_loss(card.loss)
    init_neutral(loss, str(model_dir))
    module = SetTrainingModule(encoder, loss).to(device)
    optimizer = optimizer_for(module, config.lr, config.weight_decay)
    selfsup = _batched(self_supervised_sets(texts, seed=config.seed * 1000 + 17), config.batch_size)
    single = DistContext()
    replay_batches = itertools.chain.from_iterable(
        epoch_batches(replayed.train, config.batch_size, config.seed, epoch, single) for epoch in itertools.count())
    module.train()
    timer = _Timer()
    for step in range(1, config.steps + 1):
        value = mixed_step(module, encoder, [(next(selfsup), 1.0), (next(replay_batches), config.replay_weight)],
                           optimizer, device, config.grad_clip)
        timer.add(value, 2 * config.batch_size)
        report(Progress("pretrain", step, config.steps, loss=timer.mean_loss,
                        eta_s=timer.elapsed / step * (config.steps - step), sets_per_s=timer.sets_per_s(1)))
    if start is not None:
        report(Progress("validate", config.steps, config.steps,
                        message=f"averaging with the starting weights (WiSE-FT, alpha {config.wise_ft})"))
        wise_ft_average(encoder.backbone, start, config.wise_ft)
    report(Progress("validate", config.steps, config.steps, message="choosing the threshold on the replayed sets"))
    threshold, cut, cut_scores = choose_model_cut(encoder, replayed.val, None, device, config.eval_batch_size,
                                                  config.cut)
    scores = cut_scores[cut]
    out_dir.mkdir(parents=True, exist_ok=True)
    if force:
        shutil.rmtree(out_dir / BACKBONE_DIR, ignore_errors=True)
    save_backbone(encoder, out_dir / BACKBONE_DIR)
    test = score_at(encoder, replayed.test, threshold, device, config.eval_batch_size, cut) if replayed.test else {}
    chunks = [list(texts[i:i + 16]) for i in range(0, len(texts), 16)]
    domains = domain_fingerprints(
        encoder, [(str(f), [s.texts for s in mixed_dataset([f], "proportional", 0).train]) for f in folders]
        + [(source, chunks)], device, config.eval_batch_size)
    adapted = {"from": str(model_dir), "on": source, "texts": len(texts), "replay": [str(f) for f in folders],
               "steps": config.steps, "lr": config.lr, "replay_weight": config.replay_weight, "seed": config.seed,
               "wise_ft": config.wise_ft,
               "source_validation_before": card.validation, "source_test_before": card.test}
    training_data = {**card.training_data, "adapted": [*card.training_data.get("adapted", []), adapted],
                     "domains": domains, "cut_validation": cut_scores}
    new_card = replace(card, threshold=threshold, cut=cut,
                       s_neu=loss.neutral.item() if hasattr(loss, "neutral") else None, validation=scores,
                       test=test, training_data=training_data, versions=software_versions(),
                       created=now_iso())
    write_card(out_dir, new_card)
    report(Progress("done", config.steps, config.steps, metrics=test or scores,
                    message=f"adapted {config.steps} steps on {len(texts)} texts; {describe_cut(threshold, cut)} on "
                    f"{len(replayed.val)} replayed validation sets"))
    return TrainResult(out_dir, new_card)
