"""``cactus import-sets``: load a sets file (or a train/val/test folder) into the store as a dataset.

Thin on purpose: the store is the top-level ``db`` package, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cactus.cli.store_option import add_db_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-sets",
        help="load a sets file or a dataset folder into the store (for the app and the jobs)",
        description="Validate every line of SOURCE (a sets .jsonl file, or a folder with train.jsonl, val.jsonl "
        "and test.jsonl) and store its sets as the dataset NAME, all or nothing: an invalid line or a set id "
        "that is already there stores nothing. Sets with clusters keep them as reference labels. The store "
        "is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db.",
    )
    parser.add_argument("source", type=Path, help="sets file (.jsonl) or dataset folder")
    parser.add_argument("--dataset", required=True, metavar="NAME", help="the dataset to create (or --append to)")
    parser.add_argument("--noun", choices=("products", "queries"), default="products",
                        help="what the entities are (default products)")
    parser.add_argument("--split", choices=("train", "val", "test", "unassigned"),
                        help="put every set in this split (default: each set's \"split\" key, else unassigned; "
                        "a folder keeps its files' splits)")
    parser.add_argument("--append", action="store_true", help="add to an existing dataset of that name")
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from db.datasets import import_dataset_folder, import_sets_file
    from db.session import session_scope

    def progress(done: int, total: int) -> None:
        print(f"\rstored {done}/{total} sets", end="", file=sys.stderr, flush=True)

    with session_scope(args.db) as session:
        if args.source.is_dir():
            if args.split is not None:
                from cactus.errors import CactusError

                raise CactusError("--split applies to a sets file; a dataset folder keeps the splits of its files")
            summary = import_dataset_folder(session, args.source, dataset=args.dataset, noun=args.noun,
                                            append=args.append, on_progress=progress)
        else:
            summary = import_sets_file(session, args.source, dataset=args.dataset, noun=args.noun, split=args.split,
                                       append=args.append, on_progress=progress)
    print(file=sys.stderr)
    print(f"dataset {args.dataset!r} (id {summary.dataset_id}): {summary.sets} sets, {summary.entities} entities, "
          f"{summary.labelled} with reference labels")
    return 0
