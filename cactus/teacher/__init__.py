"""The teacher (LLM_c): Claude clusters entity sets through the ``anthropic`` SDK.

Tipirneni et al. (2024) label training sets with a strong closed LLM and distil it into an open
encoder. This package sends the paper's prompt (appendix A) for each set, parses the free-text reply
into clusters, and keeps what it costs under control. It works from files (``cactus label``) and is
called by the job worker and the app through this API:

    from cactus.teacher import (TeacherConfig, label_sets, TeacherResult, TeacherError,
                                MissingAPIKeyError, build_prompt, parse_reply)

    config = TeacherConfig(model="claude-sonnet-4-6", noun="products", cache_path=Path("teacher-cache.sqlite"),
                           budget_usd=5.0)
    results = label_sets(sets, config, on_progress=lambda done, total, result: ...)
    labelled = [r.labelled for r in results if r.status == "labelled"]

- :class:`TeacherConfig` (frozen): ``model`` (default ``CACTUS_TEACHER_MODEL`` or
  :data:`DEFAULT_MODEL`), ``max_tokens``, ``temperature`` (None: not sent), ``noun``, ``base_url``
  (None: ``ANTHROPIC_BASE_URL`` or Anthropic's), ``timeout``, ``max_retries``, ``concurrency``,
  ``max_set_size``, ``budget_usd``, ``budget_tokens``, ``price_in``/``price_out`` (USD per million
  tokens; default from :data:`PRICES_PER_MTOK`, an estimate), ``cache_path`` (None: no cache),
  ``retry_discarded``, ``match_cutoff``, ``min_coverage``, ``max_consecutive_failures``.
- :func:`label_sets` ``(sets, config, *, on_progress=None, api_key=None) -> list[TeacherResult]``:
  one result per set, in input order; ``on_progress(done, total, result)`` is called from the
  calling thread. Raises :class:`MissingAPIKeyError` (before sending anything) when some set has no
  cached reply and ``ANTHROPIC_API_KEY`` is unset.
- :class:`TeacherResult`: ``set_id``, ``status`` (``"labelled" | "discarded" | "failed" |
  "skipped_budget" | "refused_size"``), ``labelled`` (the set with clusters and names, only the
  entities kept), ``dropped_entity_ids``, ``invented``, ``raw_reply``, ``error``, ``input_tokens``,
  ``output_tokens``, ``cost_usd`` (estimate; billed in this run iff not ``cached``), ``cached``,
  ``model``, plus ``stop_reason``, ``invented_texts``, ``duplicates``, ``approximate`` and
  ``to_json()``.
- :func:`build_prompt` ``(entity_texts, noun="products") -> str`` and :func:`parse_reply`
  ``(reply_text, entity_texts, *, match_cutoff=0.8) -> ParsedClustering`` (pure, no network; raises
  :class:`ReplyParseError` for a reply with no clustering in it).
- :func:`summarize`, :func:`build_report`, :func:`write_report`: the run's summary and sidecar report.
- :func:`label_sets_batched` ``(sets, config, BatchOptions(output=...), *, on_progress=None,
  on_batch_progress=None, api_key=None)``: the same results through the Message Batches API (half
  price; ``TeacherResult.batch`` set), with each batch recorded in the cache before it is created so
  a rerun resumes polling; :func:`cancel_batches` ``(config, output)`` cancels an output's open batches
  (see :mod:`cactus.teacher.batches`).

Errors: :class:`TeacherError` (a :class:`cactus.errors.CactusError`) and its subclasses
:class:`MissingAPIKeyError`, :class:`ReplyParseError` and :class:`TeacherRequestError` (one request
failed after the SDK's retries; ``label_sets`` records it as a failed set and goes on).

The cache (:class:`ReplyCache`, SQLite) stores every reply received, parseable or not, keyed by
(model, prompt), so a rerun or a crash never pays twice; failed requests are not stored. The API key
is read from ``ANTHROPIC_API_KEY`` only and never written to the cache, a report, a log or an error.
"""

from cactus.teacher.batches import BatchOptions, BatchProgress, cancel_batches, label_sets_batched
from cactus.teacher.cache import ReplyCache
from cactus.teacher.client import Reply, TeacherRequestError, make_client, request_clustering
from cactus.teacher.config import (
    DEFAULT_MODEL,
    PRICES_PER_MTOK,
    MissingAPIKeyError,
    TeacherConfig,
    TeacherError,
    default_cache_path,
    default_model,
    lookup_price,
)
from cactus.teacher.labelling import STATUSES, TeacherResult, interpret_reply, label_sets
from cactus.teacher.parser import ParsedClustering, ReplyParseError, parse_reply
from cactus.teacher.prompt import build_prompt
from cactus.teacher.report import build_report, format_summary, summarize, write_report

__all__ = [
    "DEFAULT_MODEL",
    "PRICES_PER_MTOK",
    "STATUSES",
    "BatchOptions",
    "BatchProgress",
    "MissingAPIKeyError",
    "ParsedClustering",
    "Reply",
    "ReplyCache",
    "ReplyParseError",
    "TeacherConfig",
    "TeacherError",
    "TeacherRequestError",
    "TeacherResult",
    "build_prompt",
    "build_report",
    "cancel_batches",
    "default_cache_path",
    "default_model",
    "format_summary",
    "interpret_reply",
    "label_sets",
    "label_sets_batched",
    "lookup_price",
    "make_client",
    "parse_reply",
    "request_clustering",
    "summarize",
    "write_report",
]
