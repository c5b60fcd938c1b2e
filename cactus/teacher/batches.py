"""Labelling through Anthropic's Message Batches API: half the price, results within 24 hours.

:func:`label_sets_batched` takes the same sets and settings as :func:`label_sets` and returns the
same results, but sends every set that has no cached reply in batches (``client.messages.batches``:
create, retrieve, results), at most ``max_requests`` requests per batch. It needs the reply cache:
each submission is recorded there before the batch is created (see :mod:`cactus.teacher.cache`), so
after a crash, a kill or Ctrl-C the same call polls the batches already created and sends no set twice.
A submission whose batch id was never recorded (the process died while ``create`` was in flight) is
found again among the account's batches (``batches.list``: created since, with as many requests) and
confirmed by its ``custom_id`` prefix once it ends; if none matches, its sets are sent again.

Requests that come back ``errored`` with a passing error (server error, overload, rate limit) or
``expired`` are sent again in a new batch, at most ``retries`` times; others fail with the reason.
``canceled`` requests (``--cancel``) are not retried in the same run: a later run sends them again.
Budgets do not apply (a batch is billed when it ends), so a config with a budget is refused.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cactus.data import EntitySet
from cactus.teacher.cache import ReplyCache, cache_key
from cactus.teacher.client import Reply, make_client, public_url
from cactus.teacher.config import MissingAPIKeyError, TeacherConfig, TeacherError
from cactus.teacher.labelling import ProgressCallback, TeacherResult, interpret_reply
from cactus.teacher.prompt import build_prompt

if TYPE_CHECKING:
    import anthropic

BATCH_LIMIT = 100_000
"""Most requests the API takes in one batch."""

BATCH_BYTES_LIMIT = 256 * 1024 * 1024
"""Largest batch create request the API takes, in bytes (its JSON body)."""

BATCH_DISCOUNT = 0.5
"""Batched requests are billed at this fraction of the standard price."""

STORE_CHUNK = 500
"""Batch results stored per transaction."""

RETRYABLE_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


@dataclass(frozen=True)
class BatchOptions:
    """How to send batches.

    Args:
        output: what the batches are for (the output file, a dataset); ``--cancel`` finds them by it.
        max_requests: most requests per batch (the API's limit by default).
        max_bytes: largest JSON body of one batch create, in bytes (the API's limit by default); a batch
            closes at whichever of the two limits it reaches first.
        retries: how many more batches an errored or expired request may go into.
        poll_interval: seconds between polls at first (the first poll follows the create at once); the
            wait grows by ``backoff`` after each poll in which no batch ended, up to ``max_poll_interval``.
        max_poll_interval: longest wait between polls.
        backoff: factor by which the wait grows after a poll that found the batches still running.
        orphan_window: seconds before a lost submission's record within which its batch may have been created.
    """

    output: str
    max_requests: int = BATCH_LIMIT
    max_bytes: int = BATCH_BYTES_LIMIT
    retries: int = 2
    poll_interval: float = 10.0
    max_poll_interval: float = 300.0
    backoff: float = 1.5
    orphan_window: float = 600.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests <= BATCH_LIMIT:
            raise TeacherError(f"requests per batch must lie in [1, {BATCH_LIMIT}], got {self.max_requests}")
        if not 1 <= self.max_bytes <= BATCH_BYTES_LIMIT:
            raise TeacherError(f"bytes per batch must lie in [1, {BATCH_BYTES_LIMIT}], got {self.max_bytes}")
        if self.retries < 0:
            raise TeacherError(f"batch retries must be 0 or more, got {self.retries}")
        if self.poll_interval < 0 or self.max_poll_interval < self.poll_interval:
            raise TeacherError("poll interval must be 0 or more and no longer than the longest poll interval")


@dataclass(frozen=True)
class BatchProgress:
    """Request counts summed over the batches polled in one round."""

    batches: int
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    next_poll: float | None  # seconds until the next poll; None: nothing left to poll

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    @property
    def done(self) -> int:
        return self.total - self.processing

    def line(self) -> str:
        """One human line: ``2 batches: 1500 of 2000 requests done (1490 succeeded, 10 errored, ...)``."""
        line = (f"{self.batches} batch{'es' if self.batches != 1 else ''}: {self.done} of {self.total} requests done "
                f"({self.succeeded} succeeded, {self.errored} errored, {self.expired} expired, "
                f"{self.canceled} canceled)")
        return line if self.next_poll is None else f"{line}; next poll in {self.next_poll:.0f} s"


BatchProgressCallback = Callable[[BatchProgress], None]


def batch_params(config: TeacherConfig, prompt: str) -> dict[str, Any]:
    """The Messages API parameters of one batched request (as :func:`request_clustering` sends them)."""
    params: dict[str, Any] = {"model": config.model, "max_tokens": config.max_tokens,
                              "messages": [{"role": "user", "content": prompt}]}
    if config.temperature is not None:
        params["temperature"] = config.temperature
    return params


def request_bytes(params: dict[str, Any], custom_id: str) -> int:
    """Bytes one request adds to a batch create's JSON body (its object and a separating comma)."""
    return len(json.dumps({"custom_id": custom_id, "params": params}, ensure_ascii=False).encode()) + 1


def plan_batches(sizes: Sequence[int], max_requests: int, max_bytes: int, overhead: int = 64) -> list[range]:
    """Cut requests of ``sizes`` bytes, in order, into batches of at most ``max_requests`` requests and
    ``max_bytes`` bytes (``overhead``: the body's own bytes around the requests).

    Raises:
        TeacherError: a single request is larger than a batch may be.
    """
    batches: list[range] = []
    start, used = 0, overhead
    for i, size in enumerate(sizes):
        if size + overhead > max_bytes:
            raise TeacherError(f"request {i + 1} alone is {size:,} bytes, over the {max_bytes:,} bytes a batch may "
                               "hold; shorten the set or label it without --batch")
        if i > start and (i - start >= max_requests or used + size > max_bytes):
            batches.append(range(start, i))
            start, used = i, overhead
        used += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


def label_sets_batched(
    sets: Sequence[EntitySet],
    config: TeacherConfig,
    options: BatchOptions,
    *,
    on_progress: ProgressCallback | None = None,
    on_batch_progress: BatchProgressCallback | None = None,
    api_key: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[TeacherResult]:
    """Label every set, sending those without a cached reply through the Message Batches API.

    Returns one :class:`TeacherResult` per set, in input order, as :func:`label_sets` does; sets whose
    reply came from a batch have ``batch`` set and their cost at the batch discount.

    Raises:
        TeacherError: no cache (batches need it), a budget was set, a batch cannot be created
            (bad key, unknown model), or a batch vanished.
        MissingAPIKeyError: some sets need a request and no key is set (nothing was sent).
    """
    if config.cache_path is None:
        raise TeacherError("labelling through batches needs the reply cache (it records the batches); drop --no-cache")
    if config.budget_usd is not None or config.budget_tokens is not None:
        raise TeacherError("budgets apply to interactive labelling only (a batch is billed when it ends); "
                           "leave out --budget-usd/--budget-tokens or --batch")
    import anthropic

    run = _BatchRun(list(sets), config, options, on_progress, on_batch_progress, sleep)
    with ReplyCache(config.cache_path) as cache:
        run.cache = cache
        run.start()
        if run.pending:
            try:
                client = make_client(config, api_key=api_key)
            except MissingAPIKeyError:
                raise MissingAPIKeyError(sum(len(v) for v in run.pending.values())) from None
            run.client = client
            try:
                run.send_and_collect()
            except anthropic.APIError as exc:  # after the SDK's own retries
                raise TeacherError(
                    f"the Message Batches API at {public_url(str(client.base_url))} failed ({type(exc).__name__}: "
                    f"{exc}); the batches are recorded in {config.cache_path}: rerun the same command to go on "
                    "polling them, nothing is sent twice") from None
    return [r for r in run.results if r is not None]


def cancel_batches(config: TeacherConfig, output: str, *, api_key: str | None = None) -> list[str]:
    """Cancel the open batches recorded for ``output``; returns their ids.

    Their results (requests done before the cancel, already paid) are collected by the next run.
    """
    if config.cache_path is None:
        raise TeacherError("--cancel reads the batches from the reply cache; drop --no-cache")
    import anthropic

    with ReplyCache(config.cache_path) as cache:
        open_ = [s for s in cache.open_submissions(output) if s.batch_id]
        if not open_:
            return []
        client = make_client(config, api_key=api_key)
        cancelled = []
        for submission in open_:
            assert submission.batch_id is not None
            try:
                batch = client.messages.batches.cancel(submission.batch_id)
            except anthropic.APIError as exc:
                raise TeacherError(f"batch {submission.batch_id}: the cancel failed ({exc})") from None
            if batch.processing_status != "ended":
                cancelled.append(submission.batch_id)
        return cancelled


class _BatchRun:
    """The state of one batched labelling call (sets, results, what is pending where)."""

    cache: ReplyCache
    client: anthropic.Anthropic

    def __init__(self, sets: list[EntitySet], config: TeacherConfig, options: BatchOptions,
                 on_progress: ProgressCallback | None, on_batch_progress: BatchProgressCallback | None,
                 sleep: Callable[[float], None]) -> None:
        self.sets, self.config, self.options = sets, config, options
        self.on_progress, self.on_batch_progress, self.sleep = on_progress, on_batch_progress, sleep
        self.results: list[TeacherResult | None] = [None] * len(sets)
        self.done = 0
        self.pending: dict[str, list[int]] = {}  # cache key -> indices of the sets waiting for it
        self.prompts: dict[str, str] = {}
        self.attempts: dict[str, int] = {}  # batches each key went into in this run
        self.to_submit: list[str] = []
        self.suspects: dict[str, str] = {}  # batch id -> token of a lost submission it may be
        self.create_failures = 0

    # --- results ---------------------------------------------------------------------------------

    def record(self, index: int, result: TeacherResult) -> None:
        self.results[index] = result
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, len(self.sets), result)

    def fail(self, key: str, error: str) -> None:
        for index in self.pending.pop(key, []):
            self.record(index, TeacherResult(self.sets[index].id, "failed", error=f"set '{self.sets[index].id}': "
                                             f"{error}", model=self.config.model,
                                             batch_attempts=self.attempts.get(key, 0)))

    def answer(self, key: str, reply: Reply, *, cached: bool, batch: bool) -> None:
        """Interpret ``reply`` for every set waiting on ``key`` (the first one billed, unless cached)."""
        for n, index in enumerate(self.pending.pop(key, [])):
            result = interpret_reply(self.sets[index], reply, self.config, cached=cached or n > 0)
            if batch and result.cost_usd is not None:
                result.cost_usd *= BATCH_DISCOUNT
            self.record(index, replace(result, batch=batch, batch_attempts=self.attempts.get(key, 0)))

    # --- steps -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Refuse oversized sets, answer cached ones, and group the rest by prompt."""
        config = self.config
        for index, entity_set in enumerate(self.sets):
            if len(entity_set) > config.max_set_size:
                self.record(index, TeacherResult(entity_set.id, "refused_size", error=(
                    f"the set has {len(entity_set)} entities, more than max_set_size={config.max_set_size}; "
                    "split it into smaller sets (e.g. `cactus make-sets`) or raise --max-set-size")))
                continue
            prompt = build_prompt(entity_set.texts, config.noun)
            key = cache_key(config.model, prompt)
            self.prompts[key] = prompt
            self.pending.setdefault(key, []).append(index)
        batched = self.cache.batched_keys(list(self.pending))
        for key in list(self.pending):
            hit = self.cache.get(config.model, self.prompts[key], max_tokens=config.max_tokens)
            if hit is None:
                continue
            first = interpret_reply(self.sets[self.pending[key][0]], hit.reply, config, cached=True)
            if config.retry_discarded and first.status == "discarded":
                continue
            # a reply paid through a batch by an earlier (interrupted) run still counts as batched
            self.answer(key, hit.reply, cached=True, batch=key in batched)

    def send_and_collect(self) -> None:
        """Find lost submissions, submit what is not in a batch yet, then poll until every set has a result."""
        for submission in self.cache.open_submissions(self.options.output):  # another output's may be in flight
            if submission.batch_id is None and submission.model == self.config.model:
                self.find_lost(submission.token, submission.created, submission.n_requests)
        in_batches = self.cache.open_requests()
        for key in self.pending:
            if key in in_batches:
                self.attempts[key] = 1
            else:
                self.to_submit.append(key)
        self.submit()
        wait: float | None = None
        while True:
            tokens = self.relevant_tokens()
            if not tokens and not self.suspects and not self.to_submit:
                break
            ended, totals = self.poll(tokens)
            self.submit()
            waiting = bool(self.relevant_tokens() or self.suspects)
            wait = self.options.poll_interval if wait is None or ended else min(wait * self.options.backoff,
                                                                                 self.options.max_poll_interval)
            if self.on_batch_progress is not None and (tokens or self.suspects):
                self.on_batch_progress(BatchProgress(len(tokens) + len(self.suspects),
                                                     next_poll=wait if waiting else None, **totals))
            if waiting:
                self.sleep(wait)
        for key in list(self.pending):  # cannot happen; but every set gets a result
            self.fail(key, "its request is in a batch whose id was never recorded (another output's run, killed "
                           "while creating it); run that command again first, then this one")

    def relevant_tokens(self) -> dict[str, str]:
        """Token -> batch id of the open, created batches holding a request this run waits for."""
        by_token = {s.token: s.batch_id for s in self.cache.open_submissions() if s.batch_id}
        return {token: by_token[token] for key, token in self.cache.open_requests().items()
                if key in self.pending and token in by_token}

    def submit(self) -> None:
        """Create batches for the keys in ``to_submit`` (recorded first, then created)."""
        import anthropic

        in_batches = self.cache.open_requests()
        keys = [k for k in dict.fromkeys(self.to_submit) if k in self.pending and k not in in_batches]
        self.to_submit = []
        client = self.client.with_options(max_retries=0)  # a retried create could make a second batch
        widest_id = f"c{'0' * 12}-{len(keys)}"
        sizes = [request_bytes(batch_params(self.config, self.prompts[key]), widest_id) for key in keys]
        for span in plan_batches(sizes, self.options.max_requests, self.options.max_bytes):
            chunk = keys[span.start:span.stop]
            token = "c" + secrets.token_hex(6)
            for key in chunk:
                self.attempts[key] = self.attempts.get(key, 0) + 1
            custom_ids = [f"{token}-{n}" for n in range(len(chunk))]
            self.cache.begin_submission(
                token, output=self.options.output, model=self.config.model, max_tokens=self.config.max_tokens,
                requests=[(cid, key, self.attempts[key]) for cid, key in zip(custom_ids, chunk, strict=True)])
            requests = [{"custom_id": cid, "params": batch_params(self.config, self.prompts[key])}
                        for cid, key in zip(custom_ids, chunk, strict=True)]
            try:
                batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            except anthropic.APIStatusError as exc:
                if exc.status_code in (429, 529):  # rate limited or overloaded: certainly not created
                    self.cache.drop_submission(token)
                    for key in chunk:
                        self.attempts[key] -= 1
                    self.to_submit.extend(chunk)
                    self.count_create_failure(exc)
                    self.sleep(min(60.0, 2.0 ** self.create_failures))
                    continue
                if exc.status_code < 500 and exc.status_code != 408:  # refused: not created
                    self.cache.drop_submission(token)
                    where = public_url(str(self.client.base_url))
                    raise TeacherError(
                        f"{where} refused to create a batch of {len(chunk)} requests ({exc.status_code}: "
                        f"{exc.message}); nothing of it was sent; check the key, --model and --base-url, then rerun"
                    ) from None
                self.count_create_failure(exc)  # a server error: the batch may or may not exist
                self.find_lost(token, time.time(), len(chunk))
                continue
            except anthropic.APIError as exc:  # no answer: the batch may or may not exist
                self.count_create_failure(exc)
                self.find_lost(token, time.time(), len(chunk))
                continue
            self.cache.record_batch_id(token, batch.id)

    def count_create_failure(self, exc: Exception) -> None:
        self.create_failures += 1
        if self.create_failures > self.config.max_retries:
            raise TeacherError(f"could not create a batch {self.create_failures} times (the last: {exc}); rerun "
                               "later: the batches already created are recorded and will be polled") from None

    def find_lost(self, token: str, created: float, n_requests: int) -> None:
        """Look for the batch of a submission whose id was never recorded; drop it if there is none."""
        known = self.cache.known_batch_ids() | set(self.suspects)
        found = False
        for batch in self.client.messages.batches.list(limit=100):
            if batch.created_at.timestamp() < created - self.options.orphan_window:
                break
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if batch.id not in known and total == n_requests:
                self.suspects[batch.id] = token
                found = True
        if not found:
            self.drop(token)

    def drop(self, token: str) -> None:
        """Forget a submission that no batch holds; its requests go into the next batch."""
        keys = [key for key, _attempt in self.cache.submission_requests(token).values()]
        self.cache.drop_submission(token)
        for key in keys:
            if self.attempts.get(key):  # counted when this run submitted it: it never went out
                self.attempts[key] -= 1
        self.to_submit.extend(keys)

    def poll(self, tokens: dict[str, str]) -> tuple[bool, dict[str, int]]:
        """Retrieve each batch once and collect those that ended; (whether some ended, summed request counts)."""
        totals = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        ended = False
        batches = self.client.messages.batches
        for token, batch_id in tokens.items():
            batch = batches.retrieve(batch_id)
            for name in totals:
                totals[name] += getattr(batch.request_counts, name)
            if batch.processing_status == "ended":
                self.collect(token, batch_id)
                ended = True
        for batch_id, token in list(self.suspects.items()):
            batch = batches.retrieve(batch_id)
            if batch.processing_status != "ended":
                continue
            del self.suspects[batch_id]
            ended = True
            if self.is_ours(batch_id, token):
                self.cache.record_batch_id(token, batch_id)
                self.collect(token, batch_id)
            elif token not in self.suspects.values() and any(s.token == token and s.batch_id is None
                                                              for s in self.cache.open_submissions()):
                self.drop(token)  # no batch holds it: never created
        return ended, totals

    def is_ours(self, batch_id: str, token: str) -> bool:
        for entry in self.client.messages.batches.results(batch_id):
            return entry.custom_id.startswith(f"{token}-")
        return False

    def collect(self, token: str, batch_id: str) -> None:
        """Store every result of an ended batch, answer the sets waiting on it, queue retries.

        Results are stored a chunk at a time, each chunk in one transaction before its replies are parsed;
        the submission is closed only after the last, so a run killed here reads the results again.
        """
        requests = self.cache.submission_requests(token)
        seen: set[str] = set()
        replies: list[tuple[str, str, Reply]] = []
        failures: list[tuple[str, str, str, str, str]] = []  # custom_id, outcome, why, key, error kind
        model = self.config.model
        for entry in self.client.messages.batches.results(batch_id):
            if entry.custom_id not in requests or entry.custom_id in seen:
                continue
            seen.add(entry.custom_id)
            key, _attempt = requests[entry.custom_id]
            result = entry.result
            if result.type == "succeeded":
                message = result.message
                text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
                usage = message.usage
                replies.append((entry.custom_id, key, Reply(text, int(usage.input_tokens or 0),
                                                            int(usage.output_tokens or 0), message.stop_reason,
                                                            str(message.model or model))))
            elif result.type == "errored":
                error = result.error.error
                why = f"errored in batch {batch_id} ({error.type}: {error.message})"
                failures.append((entry.custom_id, "errored", why, key, error.type))
            elif result.type == "expired":
                why = f"expired in batch {batch_id} (not processed within 24 hours)"
                failures.append((entry.custom_id, "expired", why, key, "expired"))
            else:
                why = f"canceled in batch {batch_id}; rerun to send it again"
                failures.append((entry.custom_id, "canceled", why, key, "canceled"))
            if len(replies) + len(failures) >= STORE_CHUNK:
                self.store(replies, failures)
        for custom_id, (key, _attempt) in requests.items():
            if custom_id not in seen:
                failures.append((custom_id, "errored", f"batch {batch_id} returned no result for it", key,
                                 "api_error"))
        self.store(replies, failures)
        self.cache.close_submission(token)

    def store(self, replies: list[tuple[str, str, Reply]], failures: list[tuple[str, str, str, str, str]]) -> None:
        """Commit a chunk of results, then answer its sets; empties both lists."""
        self.cache.store_batch_results(self.config.model, self.config.max_tokens, replies,
                                       [(cid, outcome, why) for cid, outcome, why, _key, _kind in failures])
        for _cid, key, reply in replies:
            self.answer(key, reply, cached=False, batch=True)
        for _cid, _outcome, why, key, kind in failures:
            self.retry_or_fail(key, kind, why)
        replies.clear()
        failures.clear()

    def retry_or_fail(self, key: str, kind: str, why: str) -> None:
        if key not in self.pending:
            return
        retryable = kind == "expired" or kind in RETRYABLE_ERRORS
        if retryable and self.attempts.get(key, 1) <= self.options.retries:
            self.to_submit.append(key)
        else:
            tries = self.attempts.get(key, 1)
            self.fail(key, why + (f"; gave up after {tries} batches" if retryable else ""))


__all__ = ["BATCH_BYTES_LIMIT", "BATCH_DISCOUNT", "BATCH_LIMIT", "BatchOptions", "BatchProgress", "cancel_batches",
           "label_sets_batched", "plan_batches"]
