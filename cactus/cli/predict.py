"""``cactus predict``: cluster every set of a file with a trained model, streaming."""

from __future__ import annotations

import argparse
from pathlib import Path

from cactus.inference.streaming_defaults import DEFAULT_MAX_BATCH_TOKENS, DTYPES
from cactus.inference.threshold import CUTS, describe_cut, resolve_cut

ENGINES = ("local", "ray")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="cluster the sets of a file with a trained model (writes a predictions file)",
        description="Embed every set with the model, compute pairwise cosine similarities and cluster them by "
        "average link at the model's validation threshold. Reads and writes JSONL or Parquet (by extension) "
        "as a stream, in input order, with memory that does not grow with the number of sets. The output is "
        "written as OUT.partial and renamed when complete; after a crash or Ctrl-C, --resume continues after "
        "the last complete record. Input sets may be unlabelled. On CUDA the encoder runs from CUDA graphs "
        "under bf16 autocast. --engine ray runs the same prediction on Ray Data (a local Ray, or the cluster "
        "of RAY_ADDRESS / --ray-address) with one model per actor.",
    )
    parser.add_argument("model", type=Path, help="model folder (written by `cactus train`)")
    parser.add_argument("sets", type=Path,
                        help="sets file (.jsonl or .parquet); with --engine ray also a folder of shards or a glob")
    parser.add_argument("--out", type=Path, required=True,
                        help="predictions file to write (.jsonl or .parquet); with --engine ray a path without "
                        "that extension is a folder of shards")
    parser.add_argument("--resume", action="store_true",
                        help="continue the partial output of an interrupted run instead of starting over")
    parser.add_argument("--with-similarity", action="store_true", help="add each set's N x N similarity matrix")
    parser.add_argument("--name-clusters", action="store_true",
                        help="name every predicted cluster (cluster_names, marked \"cluster_names_generated\"): "
                        "a labelled input set's own named cluster when it overlaps enough, else the nearest named "
                        "cluster of --names-from, else its most distinctive keywords")
    parser.add_argument("--names-from", type=Path, metavar="FILE",
                        help="labelled sets with cluster_names (e.g. the training file) whose names the predicted "
                        "clusters may take (implies --name-clusters)")
    parser.add_argument("--threshold", type=threshold_option, metavar="T|auto",
                        help="override the model's similarity threshold (-1..1); 'auto' chooses it on the first "
                        "sets of this file without labels (the threshold whose clusters have the highest mean "
                        "silhouette), for data far from what the model was trained on")
    parser.add_argument("--cut", choices=CUTS,
                        help="where each set is cut: 'threshold' (one threshold for every set) or 'silhouette' (each "
                        "set of 3+ entities where its clusters have the highest silhouette, 2 to 10 clusters); "
                        "default: the model's choice on validation, or 'threshold' when --threshold is given")
    parser.add_argument("--mode", help="run with another attention mode than the trained one (e.g. nia)")
    parser.add_argument("--max-batch-tokens", type=int, default=DEFAULT_MAX_BATCH_TOKENS, metavar="T",
                        help="tokens per encoder batch, padding included; sets of similar size are batched "
                        f"together (default {DEFAULT_MAX_BATCH_TOKENS})")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="auto: bf16 autocast on CUDA, float32 on the CPU; float32 turns autocast off")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process; ray: Ray Data with an actor pool (pip install "
                        "'cactus-workbench[ray]')")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray is started)")
    parser.add_argument("--actors", type=int, metavar="N",
                        help="Ray actors, one model each (default: one per GPU, else half the CPUs)")
    parser.add_argument("--shard-format", choices=("jsonl", "parquet"),
                        help="format of the shards when --out is a folder (default: the input's)")
    parser.add_argument("--skip-invalid", action="store_true", help="skip invalid set lines (each is reported)")
    parser.set_defaults(func=run)


def threshold_option(value: str) -> float | str:
    """``--threshold``: a number, or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a similarity in -1..1 or 'auto', got {value!r}") from None


def auto_threshold(model, sets_file: Path, mode: str | None) -> float:
    """The threshold chosen without labels on the first sets of ``sets_file`` (the model's own when none can be
    chosen); says what it chose on stderr."""
    import itertools
    import sys

    from cactus.data.set_files import iter_sets
    from cactus.inference.unlabelled_threshold import SAMPLE_SETS, unlabelled_threshold

    sample = [s.texts for s in itertools.islice(iter_sets(sets_file, on_skip=lambda skipped: None), SAMPLE_SETS)]
    choice = unlabelled_threshold(model.similarities(sample, mode=mode))  # sets under 3 entities are skipped there
    if choice is None:
        print(f"--threshold auto: no set of 3 or more entities among the first {len(sample)} shows cluster "
              f"structure at any threshold; keeping the model's {model.threshold:+.2f}", file=sys.stderr)
        return model.threshold
    print(f"--threshold auto: {choice.threshold:+.2f} (mean silhouette {choice.silhouette:.3f} on the first "
          f"{choice.sets} sets, no labels used; the model's own threshold is {model.threshold:+.2f})",
          file=sys.stderr)
    return choice.threshold


def run(args: argparse.Namespace) -> int:
    import itertools
    import sys

    from tqdm import tqdm

    from cactus.data.partial_output import PartialOutput, partial_path
    from cactus.data.set_files import count_records, file_format, iter_sets
    from cactus.errors import CactusError
    from cactus.inference.model import ClusteringModel
    from cactus.inference.streaming import StreamOptions, predict_stream

    if args.engine == "ray":
        return run_ray(args)
    for option in ("ray_address", "actors", "shard_format"):
        if getattr(args, option) is not None:
            raise CactusError(f"--{option.replace('_', '-')} goes with --engine ray")
    file_format(args.sets)
    file_format(args.out)
    if not args.sets.is_file():
        raise CactusError(f"{args.sets}: no such file")
    if args.out.resolve() == args.sets.resolve():
        raise CactusError("--out must differ from the input file (the input is never overwritten)")
    model = ClusteringModel.load(args.model, device=args.device)
    if args.threshold == "auto":
        threshold = auto_threshold(model, args.sets, args.mode)
    else:
        threshold = model.threshold if args.threshold is None else args.threshold
    cut = model.cut_for(None if args.threshold is None else threshold, args.cut)
    namer = None
    if args.name_clusters or args.names_from is not None:
        from cactus.inference.names import set_namer
        from cactus.inference.streaming import name_book

        book = None
        if args.names_from is not None:
            file_format(args.names_from)
            if not args.names_from.is_file():
                raise CactusError(f"{args.names_from}: no such file")
            book = name_book(model.encoder, iter_sets(args.names_from), mode=args.mode,
                             max_batch_tokens=args.max_batch_tokens)
            print(f"{len(book)} cluster names from {args.names_from}", file=sys.stderr)
        namer = set_namer(book)
    try:
        options = StreamOptions(threshold=threshold, cut=cut, mode=args.mode, with_similarity=args.with_similarity,
                                max_batch_tokens=args.max_batch_tokens, dtype=args.dtype, namer=namer)
    except ValueError as exc:
        raise CactusError(str(exc)) from None
    if args.mode is not None:
        from cactus.encoders.config import check_mode

        try:
            check_mode(args.mode)
        except ValueError as exc:
            raise CactusError(str(exc)) from None
    warning = domain_warning(model, args.sets)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    output = PartialOutput(args.out, resume=args.resume)
    if output.done:
        print(f"resuming: {output.done} sets already in {partial_path(args.out)}", file=sys.stderr)
    sets = iter_sets(args.sets, on_skip=(lambda skipped: print(skipped)) if args.skip_invalid else None)
    with tqdm(total=max(0, count_records(args.sets) - output.done), unit="set", desc="predicting",
              disable=None, dynamic_ncols=True) as bar:

        def on_window(count: int) -> None:
            output.flush()
            bar.update(count)

        try:
            predict_stream(model.encoder, itertools.islice(sets, output.done, None), output.write, options,
                           progress=on_window)
        except BaseException as exc:
            kept = output.abandon()
            if kept:
                print(f"stopped: {kept} sets are kept in {partial_path(args.out)}; rerun with --resume to "
                      "continue", file=sys.stderr)
            if isinstance(exc, ValueError) and not isinstance(exc, CactusError):
                raise CactusError(str(exc)) from None
            raise
    total = output.finish()
    print(f"wrote {total} clustered sets to {args.out} ({describe_cut(threshold, cut)})")
    return 0


def run_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: the options checked here, the run in :mod:`cactus.inference.ray_engine`."""
    from cactus.errors import CactusError
    from cactus.inference.ray_engine import RayRun, predict_ray
    from cactus.training.checkpoint import read_card

    if args.resume:
        raise CactusError("--resume goes with --engine local (a Ray run writes its output whole)")
    if args.device is not None:
        raise CactusError("--device goes with --engine local (Ray actors take a GPU each where the cluster has GPUs)")
    if args.actors is not None and args.actors < 1:
        raise CactusError(f"--actors must be at least 1, got {args.actors}")
    if args.threshold == "auto":
        from cactus.inference.model import ClusteringModel

        if not Path(args.sets).is_file():
            raise CactusError("--threshold auto with --engine ray reads the first sets of one input file; give a "
                              "number (e.g. chosen by a local run on one shard) for a folder or a glob")
        threshold = auto_threshold(ClusteringModel.load(args.model, device="cpu"), Path(args.sets), args.mode)
    else:
        threshold = read_card(args.model).threshold if args.threshold is None else args.threshold
    cut = resolve_cut(read_card(args.model).cut, args.threshold is not None, args.cut)
    run = RayRun(model=args.model.resolve(), sets=str(args.sets), out=args.out, threshold=threshold, cut=cut,
                 mode=args.mode,
                 with_similarity=args.with_similarity, max_batch_tokens=args.max_batch_tokens, dtype=args.dtype,
                 skip_invalid=args.skip_invalid, address=args.ray_address, actors=args.actors,
                 shard_format=args.shard_format)
    total = predict_ray(run)
    print(f"wrote {total} clustered sets to {args.out} ({describe_cut(run.threshold, run.cut)}, Ray)")
    return 0


def domain_warning(model, sets_file: Path) -> str | None:
    """The domain-shift warning for the first sets of ``sets_file`` under ``model`` (None when near, or when the
    model's card has no fingerprint of its training data)."""
    import itertools

    from cactus.data.set_files import iter_sets
    from cactus.inference.domain import SAMPLE_SETS, check_shift, shift_warning, stored_domains

    if not stored_domains(model.card.training_data):
        return None
    sample = [s.texts for s in itertools.islice(iter_sets(sets_file, on_skip=lambda skipped: None), SAMPLE_SETS)]
    return shift_warning(check_shift(model.encoder, sample, model.card.training_data, device=model.device))
