"""``cactus adapt``: adapt a trained model to a new domain's unlabelled texts, replaying its labelled sets."""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.training.config import TRAIN_CUTS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt a trained model to a new domain's texts (self-supervised, with replay so it does not forget)",
        description="Start from MODEL and take --steps steps, each on self-supervised sets made from the entity "
        "texts of SOURCE (word-dropped copies) plus labelled sets replayed from the model's training data (the "
        "dataset folders its card names, or --replay when they are not reachable here). The threshold is chosen "
        "again on the replayed validation sets and the model cuts sets per set (--cut); the card records what the "
        "model was adapted on.",
    )
    parser.add_argument("model", type=Path, help="trained model folder")
    parser.add_argument("source", type=Path, nargs="+",
                        help="the new domain's entities file, sets file or dataset folder (labels unused)")
    parser.add_argument("--out", type=Path, required=True, help="adapted model folder to write")
    parser.add_argument("--replay", type=Path, nargs="+", metavar="DATASET_DIR",
                        help="labelled dataset folders to replay (default: the model's training data)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    parser.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate (default 2e-5)")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="self-supervised sets per step, and as many replayed sets (default 4)")
    parser.add_argument("--replay-weight", type=float, default=1.0,
                        help="weight of the replayed supervised loss (default 1)")
    parser.add_argument("--cut", choices=TRAIN_CUTS, default="silhouette",
                        help="how the adapted model cuts sets: 'silhouette' (each set of 3+ entities where its "
                        "clusters have the highest silhouette; default, since a threshold chosen on the replayed "
                        "source sets need not suit the new domain), 'threshold', or 'auto' (the better of the two "
                        "on the replayed validation sets)")
    parser.add_argument("--wise-ft", type=float, default=0.5, metavar="ALPHA",
                        help="then average the weights: ALPHA x adapted + (1 - ALPHA) x the backbone the model was "
                        "fine-tuned from (WiSE-FT; default 0.5, which kept most off the home domain in "
                        "docs/benchmarks.md; 1: no average)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random generator (default 0)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    parser.add_argument("--force", action="store_true", help="overwrite a model in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cactus.cli.pretrain import source_texts
    from cactus.cli.progress import ProgressBar
    from cactus.errors import CactusError
    from cactus.inference.threshold import describe_cut
    from cactus.training.adapt import adapt
    from cactus.training.config import AdaptConfig

    texts = [t for source in args.source for t in source_texts(source)]
    try:
        config = AdaptConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                             replay_weight=args.replay_weight, seed=args.seed, device=args.device, cut=args.cut,
                             wise_ft=args.wise_ft)
    except ValueError as exc:
        raise CactusError(str(exc)) from None
    bar = ProgressBar(disable=args.quiet)
    try:
        result = adapt(args.model, texts, args.out, config, replay=args.replay, callback=bar, force=args.force,
                       source=", ".join(str(s) for s in args.source))
    finally:
        bar.close()
    card = result.card
    print(f"saved {result.model_dir} ({describe_cut(card.threshold, card.cut)}, adapted on {len(texts)} texts)")
    if card.test:
        print("replayed test: " + ", ".join(f"{k} {v:.3f}" for k, v in card.test.items() if k != "sets"))
    return 0
