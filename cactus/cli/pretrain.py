"""``cactus pretrain``: self-supervised pretraining on word-dropped copies of entities."""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.cli.train import _config, add_model_options
from cactus.errors import CactusError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a set encoder on self-supervised sets (no labels needed)",
        description="Build synthetic sets whose clusters are word-dropped copies of seed entities (2-10 clusters of "
        "1-5 copies, 20-70%% of the words dropped) from the entity texts of SOURCE (several are pooled), and "
        "train on them for --steps steps. SOURCE is an entities file (.jsonl/.csv), a sets file, or a dataset "
        "folder (its train split). "
        "Start fine-tuning from the result with `cactus train ... --init OUT`.",
    )
    parser.add_argument("source", type=Path, nargs="+",
                        help="entities file, sets file or dataset folder; several are pooled into one mix")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def source_texts(source: Path) -> list[str]:
    """Entity texts of an entities file, a sets file, or a dataset folder's train split."""
    from cactus.data import read_dataset, read_entities, read_sets
    from cactus.training.trainer import entity_texts

    if source.is_dir():
        return entity_texts(read_dataset(source, ("train",), require_labels=False).train)
    if source.suffix.lower() == ".csv":
        return [e.text for e in read_entities(source).entities]
    first = next((line for line in source.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()),
                 "") if source.is_file() else ""
    if '"entities"' in first:
        return entity_texts(read_sets(source).sets)
    if not source.exists():
        raise CactusError(f"{source} not found: give an entities file, a sets file or a dataset folder")
    return [e.text for e in read_entities(source).entities]


def run(args: argparse.Namespace) -> int:
    from cactus.cli.progress import ProgressBar
    from cactus.training.trainer import PretrainConfig, pretrain

    texts = [t for source in args.source for t in source_texts(source)]
    bar = ProgressBar(disable=args.quiet)
    try:
        result = pretrain(texts, args.out, _config(PretrainConfig, args, steps=args.steps), callback=bar,
                          force=args.force, source=", ".join(str(s) for s in args.source))
    finally:
        bar.close()
    print(f"saved {result.model_dir} (threshold {result.card.threshold:+.1f}); fine-tune with "
          f"`cactus train DATASET --init {result.model_dir} --out MODEL_DIR`")
    return 0
