"""``cactus evaluate``: score a predictions file against a labelled sets file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted clusterings against gold ones (NMI, AMI, RI, ARI, F1)",
        description="Match the sets of PRED.jsonl to those of GOLD.jsonl by set id and entities by entity id, "
        "score each set and print the metrics averaged over sets with 95% bootstrap intervals over sets. Every "
        "gold set needs a prediction and every prediction a gold set.",
    )
    parser.add_argument("gold", type=Path, help="labelled sets file (the truth)")
    parser.add_argument("pred", type=Path, help="predictions: the sets format with predicted clusters")
    parser.add_argument("--json", type=Path, dest="json_out",
                        help="write the averaged scores here as JSON, with their 95%% bootstrap intervals (\"ci95\")")
    parser.add_argument("--per-set", type=Path, help="write one JSON line of scores per set here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cactus.data import read_sets
    from cactus.evaluation.intervals import bootstrap_intervals, few_sets_warning, interval_line
    from cactus.evaluation.scoring import evaluate_predictions
    from cactus.evaluation.tables import markdown_table

    gold = read_sets(args.gold, require_labels=True).sets
    pred = read_sets(args.pred, require_labels=True).sets
    result = evaluate_predictions(gold, pred, gold_name=str(args.gold), pred_name=str(args.pred))
    print(markdown_table([{"file": args.pred.name, **result.average}], label="file"))
    sets = int(result.average["sets"])
    intervals = bootstrap_intervals(result.per_set)
    print(f"({sets} sets)")
    print(interval_line(intervals, sets))
    warning = few_sets_warning(sets, str(args.gold))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({**result.average, "ci95": intervals}, indent=2) + "\n")
    if args.per_set:
        from cactus.data.jsonl import write_jsonl

        write_jsonl(args.per_set, result.per_set)
    return 0
