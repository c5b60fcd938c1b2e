"""The teacher's settings and its price table (an estimate, overridable).

Prices are US dollars per million tokens, copied from Anthropic's public price list for standard
(non-batch, uncached) requests. They are an **estimate** for budgeting and reports, not a bill:
prices change, and the invoice is the only authority. Override them with ``price_in``/``price_out``
(``--price-in``/``--price-out`` on the command line), which any model needs that the table lacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cactus.errors import CactusError

DEFAULT_MODEL = "claude-sonnet-4-6"
"""Claude model used when neither ``--model`` nor ``CACTUS_TEACHER_MODEL`` names one."""

MODEL_ENV = "CACTUS_TEACHER_MODEL"
CACHE_DIR_ENV = "CACTUS_CACHE_DIR"
CACHE_FILE_NAME = "teacher-cache.sqlite"

PRICES_CHECKED = "2026-07"
"""When the table below was last compared with Anthropic's price list."""

# model id prefix -> (input, output) USD per million tokens; the longest matching prefix wins, so
# dated ids ("claude-haiku-4-5-20251001") and aliases share a row.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-8": (5.0, 25.0),
    "claude-opus-4-7": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}


class TeacherError(CactusError):
    """A teacher run cannot go on; the message says what to do."""


class MissingAPIKeyError(TeacherError):
    """``ANTHROPIC_API_KEY`` is not set but new labels were asked for."""

    def __init__(self, sets_needing_requests: int | None = None) -> None:
        need = (
            f"{sets_needing_requests} set(s) need new labels from Claude, but "
            if sets_needing_requests
            else ""
        )
        super().__init__(
            f"{need}ANTHROPIC_API_KEY is not set. Set it in the environment "
            "(export ANTHROPIC_API_KEY=sk-ant-...; it is read from there only and never stored), "
            "and ANTHROPIC_BASE_URL or --base-url to use another Messages-compatible endpoint. "
            "Everything else (training, evaluation, the app) works on stored labels without a key."
        )


def lookup_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for ``model`` from the table, or None if unknown."""
    best = max((p for p in PRICES_PER_MTOK if model.startswith(p)), key=len, default=None)
    return PRICES_PER_MTOK[best] if best is not None else None


def default_model() -> str:
    """The model named by ``CACTUS_TEACHER_MODEL``, else :data:`DEFAULT_MODEL`."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def default_cache_path(beside: str | Path | None = None) -> Path:
    """``$CACTUS_CACHE_DIR/teacher-cache.sqlite``, else that file in the folder of ``beside``."""
    folder = os.environ.get(CACHE_DIR_ENV, "").strip()
    if folder:
        return Path(folder).expanduser() / CACHE_FILE_NAME
    base = Path(beside).parent if beside is not None else Path.cwd()
    return base / CACHE_FILE_NAME


@dataclass(frozen=True)
class TeacherConfig:
    """How to ask Claude (LLM_c) for clusterings, and what a run may spend.

    Args:
        model: Claude model id (default :func:`default_model`).
        max_tokens: most tokens per reply; a reply cut at this limit is discarded, not half-used.
        temperature: sampling temperature, or None to send none. The anthropic SDK 2.x speaks API
            version 2026-10-21, which rejects sampling parameters, so the default sends none (the
            models answer near-deterministically at their default); set it only for an endpoint that
            accepts it (it goes in the request body as ``temperature``).
        noun: what the entities are, in the prompt ("Cluster these products:").
        base_url: a Messages-compatible endpoint; None uses ``ANTHROPIC_BASE_URL`` or Anthropic's.
        timeout: seconds to wait for one reply before the SDK retries.
        max_retries: SDK retries (with backoff) on 408/409/429/5xx/529 and timeouts.
        concurrency: requests in flight at once.
        max_set_size: sets with more entities are refused with a message, never truncated.
        budget_usd: stop sending once this much (estimated) has been spent in this run.
        budget_tokens: stop sending once this many tokens (input + output) were used in this run.
        price_in: USD per million input tokens (None: from the price table).
        price_out: USD per million output tokens (None: from the price table).
        cache_path: SQLite file of replies keyed by (model, prompt); None disables the cache.
        retry_discarded: ask again for sets whose cached reply could not be parsed.
        match_cutoff: least similarity (0..1) for a reworded or truncated member to count as an entity.
        min_coverage: least fraction of a set's entities a reply must cluster to be kept.
        max_consecutive_failures: stop sending after this many sets failed in a row (endpoint down).
    """

    model: str = field(default_factory=default_model)
    max_tokens: int = 8192
    temperature: float | None = None
    noun: str = "products"
    base_url: str | None = None
    timeout: float = 120.0
    max_retries: int = 4
    concurrency: int = 4
    max_set_size: int = 300
    budget_usd: float | None = None
    budget_tokens: int | None = None
    price_in: float | None = None
    price_out: float | None = None
    cache_path: Path | None = None
    retry_discarded: bool = False
    match_cutoff: float = 0.8
    min_coverage: float = 0.5
    max_consecutive_failures: int = 5

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise TeacherError("model must be a Claude model id such as 'claude-sonnet-4-6'")
        if self.max_tokens < 1:
            raise TeacherError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature is not None and not 0.0 <= self.temperature <= 1.0:
            raise TeacherError(f"temperature must lie in [0, 1], got {self.temperature}")
        if not self.noun.strip() or "\n" in self.noun:
            raise TeacherError(f"noun must be one word or phrase on one line (e.g. 'products'), got {self.noun!r}")
        if self.timeout <= 0:
            raise TeacherError(f"timeout must be positive (seconds), got {self.timeout}")
        if self.max_retries < 0:
            raise TeacherError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.concurrency < 1:
            raise TeacherError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_set_size < 2:
            raise TeacherError(f"max_set_size must be at least 2, got {self.max_set_size}")
        for name in ("budget_usd", "budget_tokens", "price_in", "price_out"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise TeacherError(f"{name} must be 0 or more, got {value}")
        if (self.price_in is None) != (self.price_out is None):
            raise TeacherError("give both price_in and price_out (USD per million tokens), or neither")
        if not 0.0 < self.match_cutoff <= 1.0:
            raise TeacherError(f"match_cutoff must lie in (0, 1], got {self.match_cutoff}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise TeacherError(f"min_coverage must lie in [0, 1], got {self.min_coverage}")
        if self.max_consecutive_failures < 1:
            raise TeacherError(f"max_consecutive_failures must be at least 1, got {self.max_consecutive_failures}")
        if self.budget_usd is not None and self.prices is None:
            raise TeacherError(
                f"a dollar budget needs prices, and the price table has none for model '{self.model}'; "
                "give --price-in and --price-out (USD per million tokens), or a --budget-tokens instead"
            )

    @property
    def prices(self) -> tuple[float, float] | None:
        """(input, output) USD per million tokens: the override, else the table, else None."""
        if self.price_in is not None and self.price_out is not None:
            return (self.price_in, self.price_out)
        return lookup_price(self.model)

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> float | None:
        """Estimated USD for one reply's tokens, or None when no price is known."""
        prices = self.prices
        if prices is None:
            return None
        return (input_tokens * prices[0] + output_tokens * prices[1]) / 1_000_000
