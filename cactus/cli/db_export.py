"""``cactus export-labels``: write a stored dataset's best labels as a train/val/test folder for ``cactus train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.cli.store_option import add_db_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-labels",
        help="write a stored dataset's best labels (human > teacher > reference) for `cactus train`",
        description="Write OUT/train.jsonl, val.jsonl and test.jsonl from the dataset NAME in the store. Each set "
        "gets its reviewed human clustering, else its newest teacher clustering, else its reference labels; "
        "unlabelled sets are left out. Sets in no split are dealt into train/val/test by a seeded shuffle "
        "(--seed, --fractions), and that choice is saved so later exports keep the same test sets.",
    )
    parser.add_argument("dataset", metavar="NAME", help="the dataset in the store")
    parser.add_argument("out", type=Path, help="folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split shuffle (default 0)")
    parser.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                        help="shares of unassigned sets per split (default 0.8 0.1 0.1)")
    parser.add_argument("--any-human", action="store_true",
                        help="use human clusterings of sets not yet marked reviewed too")
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from db.datasets import find_dataset
    from db.export import export_labels
    from db.session import session_scope

    with session_scope(args.db) as session:
        dataset = find_dataset(session, args.dataset)
        summary = export_labels(session, dataset.id, args.out, seed=args.seed, fractions=tuple(args.fractions),
                                human="any" if args.any_human else "reviewed")
    counts = ", ".join(f"{split} {n}" for split, n in summary.sets.items())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(summary.sources.items()))
    print(f"wrote {args.out}: {counts} sets (labels: {sources})")
    if summary.newly_assigned:
        print("gave a split to unassigned sets: " + ", ".join(f"{k} {v}" for k, v in summary.newly_assigned.items()))
    return 0
