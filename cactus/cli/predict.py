"""``cactus predict``: cluster every set of a file with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="cluster the sets of a file with a trained model (writes a predictions file)",
        description="Embed every set with the model, compute pairwise cosine similarities and cluster them by "
        "average link at the model's validation threshold. Writes the sets format with the predicted clusters "
        "(and the similarity matrices with --with-similarity). Input sets may be unlabelled.",
    )
    parser.add_argument("model", type=Path, help="model folder (written by `cactus train`)")
    parser.add_argument("sets", type=Path, help="sets file (.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="predictions file to write")
    parser.add_argument("--with-similarity", action="store_true", help="add each set's N x N similarity matrix")
    parser.add_argument("--threshold", type=float, help="override the model's similarity threshold (-1..1)")
    parser.add_argument("--mode", help="run with another attention mode than the trained one (e.g. nia)")
    parser.add_argument("--batch-size", type=int, default=16, help="sets per encoder batch (default 16)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    parser.add_argument("--skip-invalid", action="store_true", help="skip invalid set lines (each is reported)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cactus.data import write_sets
    from cactus.data.sets import read_sets
    from cactus.errors import CactusError
    from cactus.inference.model import ClusteringModel

    loaded = read_sets(args.sets, skip_invalid=args.skip_invalid)
    for skipped in loaded.skipped:
        print(skipped)
    if args.out.resolve() == args.sets.resolve():
        raise CactusError("--out must differ from the input file (the input is never overwritten)")
    model = ClusteringModel.load(args.model, device=args.device)
    try:
        with tqdm(total=len(loaded.sets), unit="set", desc="predicting") as bar:
            predicted = model.predict(loaded.sets, threshold=args.threshold, with_similarity=args.with_similarity,
                                      mode=args.mode, batch_size=args.batch_size, progress=bar.update)
    except ValueError as exc:
        raise CactusError(str(exc)) from None
    write_sets(args.out, predicted)
    print(f"wrote {len(predicted)} clustered sets to {args.out} (threshold "
          f"{args.threshold if args.threshold is not None else model.threshold:+.2f})")
    return 0
