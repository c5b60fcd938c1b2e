"""``cactus report``: the paper's Table 2 on one dataset, baselines and trained variants in one run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="train and score the paper's comparison (Table 2) on a dataset",
        description="Score K-Means, Spectral and Agglomerative on frozen embeddings, then train and score NIA + "
        "structural (SCL), NIA + aug_triplet, SIA + triplet, SIA + aug_triplet and SIA + aug_triplet with "
        "self-supervised pretraining, all on the same splits. Prints a markdown table and writes JSON. Models go "
        "to --work-dir; a rerun reuses the finished ones.",
    )
    parser.add_argument("dataset", type=Path, help="dataset folder with train.jsonl, val.jsonl, test.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="report JSON to write")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--work-dir", type=Path, help="where the trained models go (default: beside --out)")
    parser.add_argument("--backbone", default="minilm", help="'minilm' (default) or a local HF BERT/T5 folder")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs per variant (default 5)")
    parser.add_argument("--pretrain-steps", type=int, default=200,
                        help="self-supervised steps before the last variant (default 200)")
    parser.add_argument("--batch-size", type=int, default=4, help="sets per step (default 4)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    parser.add_argument("--limit-train", type=int, help="use only the first N training sets")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    parser.add_argument("--only", nargs="+", metavar="SLUG", help="train only these variants (slugs: "
                        "nia-structural nia-aug_triplet sia-triplet sia-aug_triplet sia-aug_triplet-pretrained)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the unsupervised baselines")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cactus.cli.progress import ProgressBar
    from cactus.errors import CactusError
    from cactus.evaluation.intervals import few_sets_warning, interval_line
    from cactus.evaluation.report import VARIANTS, run_report
    from cactus.evaluation.tables import markdown_table
    from cactus.inference.embedding import frozen_embedder
    from cactus.training.trainer import TrainConfig, config_from_dict

    variants = VARIANTS
    if args.only:
        known = {v.slug: v for v in VARIANTS}
        unknown = [s for s in args.only if s not in known]
        if unknown:
            raise CactusError(f"unknown variant {', '.join(unknown)}; choose from {', '.join(known)}")
        variants = tuple(known[s] for s in args.only)
    base = config_from_dict(TrainConfig, {"backbone": args.backbone, "epochs": args.epochs,
                                          "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                                          "limit_train": args.limit_train, "device": args.device})
    work_dir = args.work_dir or args.out.with_suffix("").with_name(args.out.stem + "-models")
    bars: list[ProgressBar] = []

    def callback_for(name: str) -> ProgressBar:
        bar = ProgressBar(disable=args.quiet)
        bars.append(bar)
        return bar

    started = time.perf_counter()
    try:
        report = run_report(args.dataset, work_dir, base, pretrain_steps=args.pretrain_steps,
                            embed=frozen_embedder(args.backbone, device=args.device, show_progress=not args.quiet),
                            variants=variants,
                            include_baselines=not args.no_baselines, callback_for=callback_for,
                            say=lambda message: print(message, file=sys.stderr, flush=True))
    finally:
        for bar in bars:
            bar.close()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown_table(report["rows"])
    print(table)
    print(f"({report['test_sets']} test sets, {report['total_seconds']:.0f} s)")
    for row in report["rows"]:
        print(f"{row['method']}: {interval_line(row.get('ci95'), report['test_sets'])}")
    warning = few_sets_warning(report["test_sets"], f"the test split of {args.dataset}")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(f"wrote {args.out}")
    return 0
