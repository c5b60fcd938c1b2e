"""Batch labelling: every set gets a result, whatever happens to its request.

For each set, in order: refuse it if it is larger than ``max_set_size``; else take its reply from
the cache, or send the prompt (``concurrency`` requests at once; sets with the same texts share one
request) and cache the reply the moment it arrives; then parse the reply into a labelled set. A set
whose reply cannot be used is *discarded* with its raw reply; a request that fails after the SDK's
retries is *failed*; sets not sent because the budget was spent are *skipped_budget*. Nothing is
dropped silently.

Budget: a request starts only while the tokens (or estimated dollars) billed in this run are below
the budget, so a run overshoots by at most the requests already in flight (``concurrency``).
Cached replies cost nothing and are used even after the budget is spent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from cactus.data import EntitySet
from cactus.teacher.cache import ReplyCache
from cactus.teacher.client import Reply, TeacherRequestError, make_client, request_clustering
from cactus.teacher.config import MissingAPIKeyError, TeacherConfig, TeacherError
from cactus.teacher.parser import ReplyParseError, parse_reply
from cactus.teacher.prompt import build_prompt

if TYPE_CHECKING:
    import anthropic

Status = Literal["labelled", "discarded", "failed", "skipped_budget", "refused_size"]
STATUSES: tuple[Status, ...] = ("labelled", "discarded", "failed", "skipped_budget", "refused_size")


@dataclass
class TeacherResult:
    """What became of one set.

    Attributes:
        set_id: the input set's id.
        status: ``labelled`` (``labelled`` holds the set), ``discarded`` (the reply could not be
            used; see ``error`` and ``raw_reply``), ``failed`` (no reply; see ``error``),
            ``skipped_budget`` (not sent: the budget was spent) or ``refused_size`` (too large).
        labelled: the set with the teacher's clusters and names, holding only the entities the
            reply placed (input order kept); None unless labelled.
        dropped_entity_ids: ids of entities the reply left out (removed from ``labelled``).
        invented: how many member lines matched no entity (ignored).
        raw_reply: the reply text as received (None when there was no reply).
        error: why the set is not labelled, or a warning.
        input_tokens: the reply's input tokens (as billed when it was first received).
        output_tokens: the reply's output tokens.
        cost_usd: estimated cost of the reply (None: no price known). Billed in this run only
            when ``cached`` is False.
        cached: the reply came from the cache, not from a request in this run.
        model: the model that wrote the reply.
        stop_reason: why the reply ended (``end_turn``, ``max_tokens``, ...).
        invented_texts: the invented member lines themselves.
        duplicates: how many entities the reply listed more than once (the first place is kept).
        approximate: ``(member text, entity id, similarity)`` of members matched inexactly.
        batch: the reply came through the Message Batches API (billed at the batch discount).
        batch_attempts: how many batches the set's request went into (more than 1: retried).
    """

    set_id: str
    status: Status
    labelled: EntitySet | None = None
    dropped_entity_ids: list[str] = field(default_factory=list)
    invented: int = 0
    raw_reply: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cached: bool = False
    model: str = ""
    stop_reason: str | None = None
    invented_texts: list[str] = field(default_factory=list)
    duplicates: int = 0
    approximate: list[tuple[str, str, float]] = field(default_factory=list)
    batch: bool = False
    batch_attempts: int = 0

    @property
    def billed(self) -> bool:
        """Whether this run paid for the reply."""
        return self.raw_reply is not None and not self.cached

    def to_json(self, *, with_reply: bool | None = None) -> dict[str, Any]:
        """A JSON-ready record for reports; the raw reply is kept for sets not labelled by default."""
        keep_reply = self.status != "labelled" if with_reply is None else with_reply
        row: dict[str, Any] = {
            "set_id": self.set_id,
            "status": self.status,
            "error": self.error,
            "dropped_entity_ids": self.dropped_entity_ids,
            "invented": self.invented,
            "invented_texts": self.invented_texts,
            "duplicates": self.duplicates,
            "approximate": [list(a) for a in self.approximate],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "cached": self.cached,
            "model": self.model,
            "stop_reason": self.stop_reason,
            "batch": self.batch,
            "batch_attempts": self.batch_attempts,
        }
        if keep_reply:
            row["raw_reply"] = self.raw_reply
        return row


ProgressCallback = Callable[[int, int, TeacherResult], None]


def interpret_reply(entity_set: EntitySet, reply: Reply, config: TeacherConfig, *, cached: bool) -> TeacherResult:
    """Turn one reply into a labelled or discarded result (no network)."""
    result = TeacherResult(
        set_id=entity_set.id,
        status="discarded",
        raw_reply=reply.text,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cost_usd=config.estimate_cost(reply.input_tokens, reply.output_tokens),
        cached=cached,
        model=reply.model,
        stop_reason=reply.stop_reason,
    )
    n = len(entity_set)
    if reply.stop_reason == "max_tokens":
        result.error = (
            f"the reply hit its max_tokens limit before it listed all {n} entities; raise --max-tokens "
            f"(now {config.max_tokens}) and rerun: the set will be asked again"
        )
        return result
    if reply.stop_reason == "refusal":
        result.error = "the model declined to answer (stop_reason 'refusal')"
        return result
    try:
        parsed = parse_reply(reply.text, entity_set.texts, match_cutoff=config.match_cutoff)
    except ReplyParseError as exc:
        result.error = "the reply had no text (empty content)" if not reply.text.strip() else str(exc)
        return result
    entities = entity_set.entities
    result.invented = len(parsed.invented)
    result.invented_texts = list(parsed.invented)
    result.duplicates = len(parsed.duplicates)
    result.approximate = [(text, entities[i].id, score) for text, i, score in parsed.approximate]
    result.dropped_entity_ids = [entities[i].id for i in parsed.missing]
    if parsed.coverage() < config.min_coverage:
        result.error = (
            f"the reply clustered only {parsed.n_clustered} of the {n} entities "
            f"(less than min_coverage={config.min_coverage:g})"
        )
        return result
    kept = sorted(i for cluster in parsed.clusters for i in cluster)
    if len(kept) < 2:
        result.error = f"the reply clustered only {len(kept)} of the {n} entities; a set needs 2"
        return result
    position = {old: new for new, old in enumerate(kept)}
    extra = dict(entity_set.extra)
    extra["teacher"] = {
        "model": reply.model,
        "dropped_entity_ids": result.dropped_entity_ids,
        "invented": result.invented,
    }
    result.labelled = EntitySet(
        id=entity_set.id,
        entities=[entities[i] for i in kept],
        clusters=[sorted(position[i] for i in cluster) for cluster in parsed.clusters],
        cluster_names=list(parsed.names),
        extra=extra,
    )
    result.status = "labelled"
    return result


@dataclass
class _RunState:
    """Spending and stopping, shared by the request threads (guard with ``lock``)."""

    config: TeacherConfig
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: int = 0
    usd: float = 0.0
    stopped: str | None = None  # why no further request is sent
    failures_in_a_row: int = 0

    def budget_spent(self) -> str | None:
        c = self.config
        if c.budget_tokens is not None and self.tokens >= c.budget_tokens:
            return f"token budget spent ({self.tokens} of {c.budget_tokens} tokens used in this run)"
        if c.budget_usd is not None and self.usd >= c.budget_usd:
            return f"dollar budget spent (about ${self.usd:.4f} of ${c.budget_usd:g} used in this run)"
        return None


def label_sets(
    sets: Sequence[EntitySet],
    config: TeacherConfig,
    *,
    on_progress: ProgressCallback | None = None,
    api_key: str | None = None,
) -> list[TeacherResult]:
    """Ask Claude to cluster every set; one result per set, in input order.

    Args:
        sets: the sets to label (existing clusters are ignored and replaced).
        config: model, limits, budget and cache.
        on_progress: called as ``on_progress(done, total, result)`` after each set, from the
            calling thread (cached and refused sets first, then as replies arrive).
        api_key: the key; None reads ``ANTHROPIC_API_KEY``. Only needed when some set has no
            cached reply.

    Returns:
        One :class:`TeacherResult` per input set, in input order.

    Raises:
        MissingAPIKeyError: some sets need a request and no key is set (nothing was sent).
        TeacherError: the cache cannot be opened.
    """
    sets = list(sets)
    results: list[TeacherResult | None] = [None] * len(sets)
    done = 0

    def record(index: int, result: TeacherResult) -> None:
        nonlocal done
        results[index] = result
        done += 1
        if on_progress is not None:
            on_progress(done, len(sets), result)

    cache = ReplyCache(config.cache_path) if config.cache_path is not None else None
    try:
        to_send: list[tuple[int, str]] = []
        for index, entity_set in enumerate(sets):
            if len(entity_set) > config.max_set_size:
                record(index, TeacherResult(entity_set.id, "refused_size", error=(
                    f"the set has {len(entity_set)} entities, more than max_set_size={config.max_set_size}; "
                    "split it into smaller sets (e.g. `cactus make-sets`) or raise --max-set-size"
                )))
                continue
            prompt = build_prompt(entity_set.texts, config.noun)
            hit = cache.get(config.model, prompt, max_tokens=config.max_tokens) if cache else None
            if hit is not None:
                result = interpret_reply(entity_set, hit.reply, config, cached=True)
                if not (config.retry_discarded and result.status == "discarded"):
                    record(index, result)
                    continue
            to_send.append((index, prompt))
        if to_send:
            try:
                client = make_client(config, api_key=api_key)
            except MissingAPIKeyError:
                raise MissingAPIKeyError(len(to_send)) from None
            _send_all(sets, to_send, client, config, cache, record)
    finally:
        if cache is not None:
            cache.close()
    return [r for r in results if r is not None]


def _send_all(
    sets: list[EntitySet],
    to_send: list[tuple[int, str]],
    client: anthropic.Anthropic,
    config: TeacherConfig,
    cache: ReplyCache | None,
    record: Callable[[int, TeacherResult], None],
) -> None:
    state = _RunState(config)
    same_prompt: dict[str, list[int]] = {}  # sets with equal texts share one request
    for index, prompt in to_send:
        same_prompt.setdefault(prompt, []).append(index)
    executor = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="cactus-teacher")
    futures = {
        executor.submit(_label_one, sets[indices[0]], prompt, client, config, cache, state): indices
        for prompt, indices in same_prompt.items()
    }
    try:
        for future in as_completed(futures):
            first, *others = futures[future]
            result = future.result()
            record(first, result)
            for other in others:
                record(other, _share(result, sets[other], config))
    except BaseException:
        with state.lock:
            state.stopped = "the run was interrupted"
        # Unsent sets are cancelled; requests in flight are waited for, so that their replies (paid
        # for) reach the cache before this returns. A second Ctrl-C stops the wait.
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _share(result: TeacherResult, entity_set: EntitySet, config: TeacherConfig) -> TeacherResult:
    """The result for a set whose prompt equals that of ``result``'s set (its reply is not billed twice)."""
    if result.raw_reply is None:
        note = f"{result.error} (the same prompt as set '{result.set_id}')"
        return replace(result, set_id=entity_set.id, error=note)
    reply = Reply(result.raw_reply, result.input_tokens, result.output_tokens, result.stop_reason, result.model)
    return interpret_reply(entity_set, reply, config, cached=True)


def _label_one(
    entity_set: EntitySet,
    prompt: str,
    client: anthropic.Anthropic,
    config: TeacherConfig,
    cache: ReplyCache | None,
    state: _RunState,
) -> TeacherResult:
    """Send one set's prompt (unless stopped or over budget), cache and interpret the reply."""
    with state.lock:
        if state.stopped:
            return TeacherResult(entity_set.id, "failed", error=f"not sent: {state.stopped}")
        spent = state.budget_spent()
        if spent:
            return TeacherResult(entity_set.id, "skipped_budget", error=f"not sent: {spent}")
    try:
        reply = request_clustering(client, config, prompt, set_id=entity_set.id)
    except TeacherRequestError as exc:
        with state.lock:
            state.failures_in_a_row += 1
            if exc.fatal and not state.stopped:
                state.stopped = f"an earlier request failed in a way every request would ({exc})"
            elif state.failures_in_a_row >= config.max_consecutive_failures and not state.stopped:
                state.stopped = (
                    f"{state.failures_in_a_row} requests in a row failed (the last: {exc}); "
                    "rerun when the endpoint works again"
                )
        return TeacherResult(entity_set.id, "failed", error=str(exc), model=config.model)
    except Exception as exc:  # a bug or an unexpected transport error: record it, go on
        return TeacherResult(
            entity_set.id, "failed", error=f"set '{entity_set.id}': {type(exc).__name__}: {exc}", model=config.model
        )
    warning = None
    if cache is not None:
        try:
            cache.put(config.model, prompt, reply, max_tokens=config.max_tokens)
        except Exception as exc:  # the reply is still used; only a rerun would pay for it again
            warning = f"the reply could not be cached ({exc})"
    with state.lock:
        state.failures_in_a_row = 0
        state.tokens += reply.input_tokens + reply.output_tokens
        state.usd += config.estimate_cost(reply.input_tokens, reply.output_tokens) or 0.0
    result = interpret_reply(entity_set, reply, config, cached=False)
    if warning:
        result.error = f"{result.error}; {warning}" if result.error else warning
    return result


__all__ = ["STATUSES", "TeacherError", "TeacherResult", "interpret_reply", "label_sets"]
