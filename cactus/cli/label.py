"""``cactus label``: cluster entity sets with Claude (the teacher, LLM_c) and write them labelled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label",
        help="label entity sets with Claude (needs ANTHROPIC_API_KEY for sets not in the cache)",
        description="Ask Claude to cluster every set of SETS.jsonl with the CACTUS paper's prompt and write the "
        "sets with the teacher's clusters and cluster names to OUT. Entities a reply leaves out are dropped from "
        "their set; a set whose reply cannot be parsed is discarded. Nothing is lost silently: the report "
        "(OUT.report.json) lists every set not labelled, with the raw reply, and every dropped entity. Replies "
        "are cached by (model, prompt), so rerunning the same command after a crash, an interrupt or a budget "
        "stop resumes without paying twice. The API key is read from ANTHROPIC_API_KEY only and never stored. "
        "With --batch the sets go through the Message Batches API (half price, results within 24 hours); the "
        "batches are recorded in the cache, so an interrupted run rerun with the same command polls them instead of "
        "sending again, and --cancel cancels them. "
        "Exit status: 0 when every set was answered or skipped on purpose, 1 when some request failed, "
        "2 on bad input.",
    )
    parser.add_argument("sets", type=Path, help="sets file (.jsonl); existing clusters are replaced")
    parser.add_argument("--out", type=Path, required=True, help="labelled sets file to write (.jsonl)")
    parser.add_argument("--report", type=Path, help="report file (default: OUT.report.json)")
    model = parser.add_argument_group("model and prompt")
    model.add_argument("--model", help="Claude model id (default: $CACTUS_TEACHER_MODEL, else claude-sonnet-4-6)")
    model.add_argument("--noun", default="products",
                       help="what the entities are, in the prompt: 'Cluster these NOUN:' (default products)")
    model.add_argument("--max-tokens", type=int, default=8192,
                       help="most tokens per reply (default 8192); a reply cut off here is discarded")
    model.add_argument("--temperature", type=float, default=None,
                       help="sampling temperature; sent only when given (the API version of anthropic SDK 2.x "
                       "rejects it, other Messages-compatible endpoints may take it)")
    model.add_argument("--base-url", help="Messages-compatible endpoint (default: $ANTHROPIC_BASE_URL, else "
                       "Anthropic's API)")
    requests = parser.add_argument_group("requests")
    requests.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    requests.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a reply (default 120)")
    requests.add_argument("--max-retries", type=int, default=4,
                          help="retries with backoff on 429/5xx/overloaded/timeouts (default 4)")
    requests.add_argument("--max-set-size", type=int, default=300,
                          help="refuse sets with more entities than this, with a message (default 300)")
    batches = parser.add_argument_group("Message Batches API")
    batches.add_argument("--batch", action="store_true",
                         help="send the sets through the Message Batches API: half the price, results within 24 "
                         "hours; rerun the same command after an interrupt to keep polling the same batches")
    batches.add_argument("--cancel", action="store_true",
                         help="cancel the open batches of OUT and exit (a later --batch run collects what they "
                         "finished)")
    batches.add_argument("--batch-retries", type=int, default=2,
                         help="send errored (server-side) or expired requests again in a new batch at most this "
                         "many times (default 2)")
    batches.add_argument("--poll-interval", type=float, default=10.0,
                         help="seconds between polls at first; the wait grows 1.5x while no batch ends, up to "
                         "--max-poll-interval (default 10)")
    batches.add_argument("--max-poll-interval", type=float, default=300.0,
                         help="longest wait between polls, seconds (default 300)")
    batches.add_argument("--batch-size", type=int, default=100_000,
                         help="most requests per batch (default 100000, the API's limit)")
    cost = parser.add_argument_group("cost")
    cost.add_argument("--budget-usd", type=float, help="stop sending once about this many dollars were spent")
    cost.add_argument("--budget-tokens", type=int, help="stop sending once this many tokens were used")
    cost.add_argument("--price-in", type=float,
                      help="USD per million input tokens, for the cost estimate (default: built-in list prices)")
    cost.add_argument("--price-out", type=float,
                      help="USD per million output tokens, for the cost estimate (default: built-in list prices)")
    cache = parser.add_argument_group("cache")
    cache.add_argument("--cache", type=Path, help="SQLite reply cache (default: $CACTUS_CACHE_DIR/"
                       "teacher-cache.sqlite, else teacher-cache.sqlite beside OUT)")
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    cache.add_argument("--retry-discarded", action="store_true",
                       help="ask again for sets whose cached reply could not be parsed")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip invalid input lines (listed in the report) instead of stopping")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cactus.data import read_sets, write_sets
    from cactus.teacher import (
        TeacherConfig,
        TeacherError,
        build_report,
        default_cache_path,
        default_model,
        format_summary,
        label_sets,
        summarize,
        write_report,
    )

    if args.out.resolve() == args.sets.resolve():
        raise TeacherError(f"--out {args.out} is the input file; write the labelled sets elsewhere")
    if args.no_cache and args.cache:
        raise TeacherError("--cache and --no-cache contradict each other; give one")
    report_path = args.report or args.out.with_name(args.out.name + ".report.json")
    config = TeacherConfig(
        model=args.model or default_model(),
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        noun=args.noun,
        base_url=args.base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        concurrency=args.concurrency,
        max_set_size=args.max_set_size,
        budget_usd=args.budget_usd,
        budget_tokens=args.budget_tokens,
        price_in=args.price_in,
        price_out=args.price_out,
        cache_path=None if args.no_cache else (args.cache or default_cache_path(args.out)),
        retry_discarded=args.retry_discarded,
    )
    if args.cancel:
        return cancel(args, config)
    loaded = read_sets(args.sets, skip_invalid=args.skip_invalid)
    for skipped in loaded.skipped:
        print(skipped, file=sys.stderr)
    if not loaded.sets:
        raise TeacherError(f"{args.sets} holds no sets to label")

    bar = tqdm(total=len(loaded.sets), unit="set", desc="labelling", disable=True if args.no_progress else None,
               file=sys.stderr)

    def progress(done: int, total: int, result) -> None:
        bar.update(1)
        if result.status in ("failed", "discarded") and result.error:
            bar.write(f"{result.status}: {result.error}", file=sys.stderr)

    try:
        if args.batch:
            results = label_batched(args, config, loaded.sets, progress, bar)
        else:
            results = label_sets(loaded.sets, config, on_progress=progress)
    except KeyboardInterrupt:
        bar.close()
        if args.batch:
            print("stopped: the batches keep running at Anthropic and are recorded in the cache; rerun the same "
                  "command to collect them without sending again, or add --cancel to cancel them", file=sys.stderr)
        else:
            print("stopped: replies received so far are cached; rerun the same command to resume", file=sys.stderr)
        raise
    bar.close()

    write_sets(args.out, [r.labelled for r in results if r.labelled is not None])
    report = build_report(results, config, input_path=args.sets, output_path=args.out,
                          skipped_lines=[str(s) for s in loaded.skipped])
    write_report(report_path, report)
    summary = summarize(results, config)
    print(format_summary(summary))
    print(f"wrote {summary['labelled']} labelled sets to {args.out}; report: {report_path}")
    if summary["skipped_budget"]:
        print(f"budget reached: {summary['skipped_budget']} sets not sent (listed in the report); rerun with a "
              "larger budget to label them, cached replies are not paid again", file=sys.stderr)
    if summary["failed"]:
        print(f"{summary['failed']} sets failed (reasons in the report); rerun to retry them", file=sys.stderr)
        return 1
    return 0


def batch_output(args: argparse.Namespace) -> str:
    """What this output's batches are recorded under in the cache."""
    return str(args.out.resolve())


def label_batched(args: argparse.Namespace, config, sets, progress, bar) -> list:
    """``label_sets_batched`` with the command's options and a progress line per poll."""
    from cactus.teacher.batches import BatchOptions, label_sets_batched

    options = BatchOptions(output=batch_output(args), max_requests=args.batch_size, retries=args.batch_retries,
                           poll_interval=args.poll_interval, max_poll_interval=args.max_poll_interval)

    def batch_progress(counts) -> None:
        bar.write(counts.line(), file=sys.stderr)

    return label_sets_batched(sets, config, options, on_progress=progress, on_batch_progress=batch_progress)


def cancel(args: argparse.Namespace, config) -> int:
    """``--cancel``: cancel the open batches recorded for OUT."""
    from cactus.teacher.batches import cancel_batches

    cancelled = cancel_batches(config, batch_output(args))
    if not cancelled:
        print(f"no open batches for {args.out}")
    else:
        print(f"cancelled {len(cancelled)} batch(es) for {args.out}: {', '.join(cancelled)}; run the same command "
              "with --batch to collect what they finished (already paid) and send the rest again")
    return 0
