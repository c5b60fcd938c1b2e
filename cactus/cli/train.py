"""``cactus train``: fine-tune a set encoder on a labelled dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.errors import CactusError
from cactus.inference.threshold import describe_cut
from cactus.training.config import TRAIN_CUTS, WISE_FT_ALPHAS, check_wise_ft


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``train`` and ``pretrain``."""
    from cactus.encoders.config import MODES
    from cactus.losses.registry import LOSS_NAMES

    parser.add_argument("--backbone", default="minilm",
                        help="'minilm' (packaged all-MiniLM-L6-v2, default) or a local Hugging Face BERT/T5 folder")
    parser.add_argument("--mode", choices=MODES, default="sia",
                        help="inter-entity attention (default sia: scalable inter-entity attention)")
    parser.add_argument("--loss", choices=LOSS_NAMES, default="aug_triplet",
                        help="training loss (default aug_triplet: triplet loss plus neutral similarity)")
    parser.add_argument("--batch-size", type=int, default=4, help="sets per optimizer step (default 4)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random generator (default 0)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens kept per entity (default 32)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    parser.add_argument("--force", action="store_true", help="overwrite a model or an interrupted run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def wise_ft_option(value: str) -> float | str:
    """``--wise-ft``: "auto" or a number between 0 and 1, checked before any training starts."""
    try:
        alpha = value if value == "auto" else float(value)
        check_wise_ft(alpha)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 or auto, got {value!r}") from None
    return alpha


def add_robustness_options(parser: argparse.ArgumentParser) -> None:
    """Options that keep a fine-tuned model good off its home domain (all off by default)."""
    group = parser.add_argument_group("robustness off the training domain")
    group.add_argument("--wise-ft", type=wise_ft_option, metavar="ALPHA|auto",
                       help="after training, average the weights: ALPHA x fine-tuned + (1 - ALPHA) x starting "
                       "backbone (WiSE-FT), then re-choose the threshold and cut on validation; auto: the ALPHA of "
                       f"{', '.join(map(str, WISE_FT_ALPHAS))} that scores best on validation")
    group.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                       help="keep the embeddings and the lowest N backbone layers frozen (default 0)")
    group.add_argument("--backbone-lr-scale", type=float, default=1.0, metavar="S",
                       help="the backbone learns at lr x S, s_neu at lr (default 1)")
    group.add_argument("--selfsup-mix", type=float, default=0.0, metavar="P",
                       help="after each supervised step, with probability P, a step on self-supervised sets "
                       "made from the training entities (default 0)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a set encoder on labelled sets (keeps the best epoch, scores the test split)",
        description="Fine-tune a set encoder with AdamW on DATASET_DIR/train.jsonl; after every epoch sweep the "
        "clustering threshold on val.jsonl (by NMI+AMI+RI+ARI) and keep the best epoch in --out; finally score "
        "test.jsonl (each set cut at the threshold, or per set where its silhouette is highest when validation "
        "prefers that: --cut). An interrupted run resumes from its last epoch when started again with the same --out. "
        "Runs data-parallel under torchrun.",
    )
    parser.add_argument("dataset", type=Path, nargs="?",
                        help="dataset folder with train.jsonl, val.jsonl, test.jsonl (or use --datasets)")
    parser.add_argument("--datasets", type=Path, nargs="+", metavar="DIR",
                        help="several dataset folders trained on as one mix (validation and test splits joined)")
    parser.add_argument("--mix", choices=("proportional", "equal"), default="proportional",
                        help="with --datasets: all training sets of each (proportional, default) or as many "
                        "from each (equal)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--limit-train", type=int, help="use only the first N training sets")
    parser.add_argument("--init", help="model folder to start from (e.g. written by `cactus pretrain`)")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="first pretrain this many steps on self-supervised sets from the training entities "
                        "(into OUT/pretrained), then fine-tune from there")
    add_robustness_options(parser)
    parser.add_argument("--cut", choices=TRAIN_CUTS, default="auto",
                        help="where the model cuts each set's merge tree: 'threshold' (the validation threshold for "
                        "every set), 'silhouette' (each set of 3+ entities where its clusters have the highest "
                        "silhouette, 2 to 10 clusters) or 'auto' (the better of the two on validation; default)")
    parser.add_argument("--progress-jsonl", type=Path,
                        help="also append every progress report as a JSON line here (for job runners)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cactus.cli.progress import ProgressBar
    from cactus.data import read_dataset
    from cactus.training.trainer import PretrainConfig, TrainConfig, entity_texts, pretrain, train

    init = args.init
    if (args.dataset is None) == (not args.datasets):
        raise CactusError("give one dataset folder or --datasets DIR [DIR ...], not both and not neither")
    datasets = [args.dataset] if args.dataset is not None else list(args.datasets)
    bar = ProgressBar(disable=args.quiet)
    if args.progress_jsonl:
        bar = with_jsonl(bar, args.progress_jsonl)
    try:
        if args.pretrain_steps:
            if init:
                raise CactusError("--init and --pretrain-steps exclude each other: pretraining starts from --backbone")
            texts = [t for d in datasets for t in entity_texts(read_dataset(d, ("train",)).train)]
            pretrained = args.out / "pretrained"
            pretrain(texts, pretrained, _config(PretrainConfig, args, steps=args.pretrain_steps), callback=bar,
                     force=args.force, source=", ".join(str(d / "train.jsonl") for d in datasets))
            init = str(pretrained)
        robust = {"wise_ft": args.wise_ft, "freeze_layers": args.freeze_layers,
                  "backbone_lr_scale": args.backbone_lr_scale, "selfsup_mix": args.selfsup_mix, "mix": args.mix,
                  "cut": args.cut}
        result = train(datasets[0] if len(datasets) == 1 else datasets, args.out,
                       _config(TrainConfig, args, epochs=args.epochs, limit_train=args.limit_train, init=init,
                               **robust),
                       callback=bar, force=args.force)
    finally:
        bar.close()
    card = result.card
    print(f"saved {result.model_dir} (best epoch {card.epoch}, {describe_cut(card.threshold, card.cut)})")
    print("test: " + ", ".join(f"{k} {v:.3f}" for k, v in card.test.items() if k != "sets"))
    return 0


def with_jsonl(bar, path: Path):
    """A callback that draws ``bar`` and appends each report to ``path`` as one JSON line."""
    import dataclasses
    import json

    path.parent.mkdir(parents=True, exist_ok=True)

    def report(progress) -> None:
        bar(progress)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(dataclasses.asdict(progress)) + "\n")

    report.close = bar.close  # type: ignore[attr-defined]
    return report


def _config(cls, args: argparse.Namespace, **extra):
    from cactus.training.trainer import config_from_dict

    values = {"backbone": args.backbone, "mode": args.mode, "loss": args.loss, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed, "max_tokens": args.max_tokens, "device": args.device, **extra}
    return config_from_dict(cls, values)
