"""``cactus baseline``: the unsupervised baselines of Table 2 on a dataset's test split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="score K-Means, Spectral and Agglomerative clustering of frozen embeddings on the test split",
        description="Embed every entity with a frozen encoder (mean-pooled), cluster each test set with K-Means "
        "and Spectral (k per set by silhouette or fixed to the training average, whichever scores better on "
        "validation) and average-link Agglomerative (threshold chosen on validation), and print NMI, AMI, RI, "
        "ARI and F1 averaged over test sets, like the paper's Table 2.",
    )
    parser.add_argument("dataset", type=Path, help="dataset folder with train.jsonl, val.jsonl, test.jsonl")
    parser.add_argument("--out", type=Path, help="write the table as JSON here ({\"rows\": [...], ...})")
    parser.add_argument("--backbone", default="minilm",
                        help="frozen encoder: 'minilm' (packaged all-MiniLM-L6-v2, default) or a local HF folder")
    parser.add_argument("--batch-size", type=int, default=16, help="sets per encoder batch (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random state of K-Means and Spectral (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cactus.data import read_dataset
    from cactus.evaluation.baselines import run_baselines
    from cactus.evaluation.intervals import few_sets_warning, interval_line
    from cactus.evaluation.tables import markdown_table
    from cactus.inference.embedding import frozen_embedder

    dataset = read_dataset(args.dataset)
    embed = frozen_embedder(args.backbone, batch_size=args.batch_size)
    report = run_baselines(dataset, embed, seed=args.seed,
                           progress=lambda message: print(message, file=sys.stderr, flush=True))
    report["dataset"] = str(args.dataset)
    report["backbone"] = args.backbone
    print(markdown_table(report["rows"]))
    print(f"({report['test_sets']} test sets; choices on validation: {json.dumps(report['choices'])})")
    for row in report["rows"]:
        print(f"{row['method']}: {interval_line(row['ci95'], report['test_sets'])}")
    for split in ("val", "test"):
        warning = few_sets_warning(len(dataset[split]), f"the {split} split of {args.dataset}")
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
