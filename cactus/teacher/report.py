"""The summary of a labelling run and its sidecar report (JSON, written atomically).

The report lists every set that did not come out labelled (with the raw reply where there was one),
the entities dropped from labelled sets, invented counts, tokens and the estimated cost. It holds
no API key: settings are copied field by field, and URLs lose any ``user:password@`` part.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cactus.files import atomic_text
from cactus.teacher.client import public_url, resolve_base_url
from cactus.teacher.config import PRICES_CHECKED, TeacherConfig
from cactus.teacher.labelling import STATUSES, TeacherResult

COST_NOTE = (
    f"estimate from list prices per million tokens (table checked {PRICES_CHECKED}, or --price-in/--price-out); "
    "replies through the Message Batches API at half that price; the invoice is the authority"
)


def summarize(results: Sequence[TeacherResult], config: TeacherConfig) -> dict[str, Any]:
    """Counts, tokens and estimated cost of a run; tokens and cost count only replies billed in it."""
    counts = {status: sum(r.status == status for r in results) for status in STATUSES}
    billed = [r for r in results if r.billed]
    costs = [r.cost_usd for r in billed]
    return {
        "sets": len(results),
        **counts,
        "cached": sum(r.cached for r in results),
        "batched": sum(r.batch for r in results),
        "batch_retried": sum(r.batch_attempts > 1 for r in results),
        "entities_dropped": sum(len(r.dropped_entity_ids) for r in results if r.status == "labelled"),
        "invented": sum(r.invented for r in results),
        "requests_billed": len(billed),
        "input_tokens": sum(r.input_tokens for r in billed),
        "output_tokens": sum(r.output_tokens for r in billed),
        "cost_usd": round(sum(c for c in costs if c is not None), 6) if config.prices else None,
        "model": config.model,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few human lines for the terminal."""
    cost = "unknown (no price for this model; give --price-in/--price-out)"
    if summary["cost_usd"] is not None:
        cost = f"about ${summary['cost_usd']:.4f} (estimate)"
    lines = [
        f"{summary['labelled']} of {summary['sets']} sets labelled by {summary['model']} "
        f"({summary['cached']} from the cache), {summary['discarded']} discarded, {summary['failed']} failed, "
        f"{summary['skipped_budget']} skipped for budget, {summary['refused_size']} refused as too large",
        f"{summary['entities_dropped']} entities dropped from labelled sets, {summary['invented']} invented "
        "members ignored",
        *([f"{summary['batched']} sets through the Message Batches API (half price), "
           f"{summary['batch_retried']} of them retried in a later batch"] if summary.get("batched") else []),
        f"this run: {summary['requests_billed']} requests, {summary['input_tokens']} input + "
        f"{summary['output_tokens']} output tokens, cost {cost}",
    ]
    return "\n".join(lines)


def build_report(
    results: Sequence[TeacherResult],
    config: TeacherConfig,
    *,
    input_path: str | Path | None = None,
    output_path: str | Path | None = None,
    skipped_lines: Sequence[str] = (),
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    prices = config.prices
    return {
        "input": str(input_path) if input_path is not None else None,
        "output": str(output_path) if output_path is not None else None,
        "summary": summarize(results, config),
        "cost_note": COST_NOTE,
        "settings": {
            "model": config.model,
            "endpoint": public_url(resolve_base_url(config)),
            "noun": config.noun,
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "max_set_size": config.max_set_size,
            "budget_usd": config.budget_usd,
            "budget_tokens": config.budget_tokens,
            "price_in_per_mtok": prices[0] if prices else None,
            "price_out_per_mtok": prices[1] if prices else None,
            "cache": str(config.cache_path) if config.cache_path is not None else None,
            "match_cutoff": config.match_cutoff,
            "min_coverage": config.min_coverage,
        },
        "skipped_input_lines": list(skipped_lines),
        "not_labelled": [r.to_json() for r in results if r.status != "labelled"],
        "labelled": [r.to_json() for r in results if r.status == "labelled"],
    }


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write the report as indented JSON, atomically (a crash leaves the old file or none)."""
    with atomic_text(path) as handle:
        json.dump(report, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
