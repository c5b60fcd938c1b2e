"""``cactus make-sets``: build a labelled dataset folder from a category taxonomy or from baskets."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-sets",
        help="build labelled entity sets (train/val/test) from a category taxonomy or user baskets",
        description="Build labelled entity sets whose ground truth depends on the set. Taxonomy mode picks an "
        "anchor category with 2+ subcategories, k ~ U(2, kmax) of its subcategories and U(1, smax) entities from "
        "each; the clusters are the subcategories. With --baskets, every basket is a set clustered at the deepest "
        "category level giving 2..kmax clusters (else the coarsest). Writes OUT_DIR/{train,val,test}.jsonl.",
    )
    parser.add_argument("entities", type=Path, help="entities file (.jsonl or .csv) with category paths in 'labels'")
    parser.add_argument("out_dir", type=Path, help="dataset folder to write")
    parser.add_argument("--sets", type=int, default=500, help="sets in all splits together (default 500; "
                        "with --baskets: at most this many baskets)")
    parser.add_argument("--kmax", type=int, default=6, help="most clusters per set (default 6)")
    parser.add_argument("--smax", type=int, default=5, help="most entities per cluster (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same sets")
    parser.add_argument("--split", default="0.6,0.2,0.2", help="train,val,test fractions (default 0.6,0.2,0.2)")
    parser.add_argument("--split-by", choices=("entities", "sets"), default="entities",
                        help="'entities' (default): each split draws from its own disjoint entity pool, so test "
                        "entities are never seen in training; 'sets': all splits share the pool")
    parser.add_argument("--anchors", choices=("entities", "uniform"), default="entities",
                        help="how anchor categories are drawn: 'entities' (default): in proportion to the entities "
                        "below them, so sets that need a coarse clustering are common; 'uniform': every anchor alike")
    parser.add_argument("--baskets", type=Path, help="JSONL of baskets {\"user\", \"entity_ids\"}: one set per "
                        "basket; a user's baskets stay in one split")
    parser.add_argument("--skip-invalid", action="store_true", help="skip invalid entity lines (each is reported)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset in OUT_DIR")
    parser.set_defaults(func=run)


def parse_split(text: str) -> tuple[float, float, float]:
    from cactus.data.errors import DataError  # here, not at the top: cactus.data imports numpy, --help needs none

    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise DataError(f"--split takes three comma-separated fractions (train,val,test), got '{text}'")
    return parts  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from cactus.data import SPLITS, DataError, read_entities, write_dataset
    from cactus.data.builder import BuilderConfig, build_basket_sets, build_taxonomy_sets

    existing = [s for s in SPLITS if (args.out_dir / f"{s}.jsonl").exists()]
    if existing and not args.force:
        raise DataError(f"{args.out_dir} already holds {', '.join(f'{s}.jsonl' for s in existing)}; "
                        "choose another folder or pass --force to overwrite")
    try:
        config = BuilderConfig(sets=args.sets, kmax=args.kmax, smax=args.smax, seed=args.seed,
                               split=parse_split(args.split), split_by=args.split_by,
                               anchors=args.anchors)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    loaded = read_entities(args.entities, skip_invalid=args.skip_invalid)
    for skipped in loaded.skipped:
        print(skipped)
    if not loaded.entities:
        invalid = f" (all {len(loaded.skipped)} lines are invalid)" if loaded.skipped else ""
        raise DataError(f"the entities file is empty: it holds no entities{invalid}", path=args.entities)
    if args.baskets:
        report = build_basket_sets(loaded.entities, args.baskets, config)
    else:
        report = build_taxonomy_sets(loaded.entities, config)
    write_dataset(args.out_dir, report.splits)
    print(f"wrote {args.out_dir}/{{train,val,test}}.jsonl from {len(loaded.entities)} entities"
          + (f" ({len(loaded.skipped)} invalid lines skipped)" if loaded.skipped else ""))
    print(report.summary_text())
    return 0
