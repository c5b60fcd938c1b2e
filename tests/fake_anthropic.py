"""A local HTTP server that speaks the Anthropic Messages API, for tests of the real SDK.

It listens on 127.0.0.1 at a random port in a background thread and answers ``POST /v1/messages``
(any query string) like the real API: a message with text content and usage, or an error body with
the right status. Tests of the teacher, the job worker and the app share it::

    from tests.fake_anthropic import FakeAnthropic, error, text, cluster_by_first_word

    with FakeAnthropic() as server:                       # answers with cluster_by_first_word
        server.push(error(429), error(529))               # one-shot answers, used first, in order
        server.push_for("glue stick", text("**Glue**\\n- glue stick"))  # one-shot, for prompts holding it
        server.respond_with(lambda prompt, body: text("..."))  # the answer when nothing was pushed
        os.environ["ANTHROPIC_BASE_URL"] = server.url     # or TeacherConfig(base_url=server.url)
        ...
        server.count                                      # POST /v1/messages received (retries included)
        server.prompts                                    # their user messages, in arrival order

Answers: :func:`text` (a reply; ``stop_reason`` settable), :func:`error` (status with the API's
error type; ``retry-after-ms: 1`` by default so the SDK's backoff stays short in tests),
:func:`malformed` (200 with a body that is not JSON), :func:`empty_content` (200, ``content: []``),
:func:`slow` (answer after a delay, to trip a client timeout). With ``expected_key`` set, a request
with another key gets 401. The server keeps the keys it saw (``keys_seen``) only in memory.

Message Batches (``/v1/messages/batches``): create, retrieve, list (newest first, ``limit``/``after_id``),
results (JSONL at the batch's ``results_url``) and cancel. Each request of a batch is answered when the
batch is created, by the same pushed answers and responder as ``/v1/messages``: :func:`error` gives an
``errored`` entry, :func:`expired` an ``expired`` one, anything else a ``succeeded`` message. A batch ends
after ``batch_polls`` retrieves (its ``request_counts`` move from processing to done step by step);
cancelling ends it at the next retrieve with its unfinished requests ``canceled``. ``create_delay`` holds
the create reply back after the batch is stored (to kill a client mid-create); :meth:`push_create`
makes the next creates fail with an error status, ``batch_reads_fail = error(500)`` every read::

    server.batch_polls = 3
    server.batches_created                                # batches created
    server.batch_submitted                                # requests received in all batches
    server.batch_prompts                                  # their user messages, in arrival order
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Answer:
    """One way to answer a request (build with the functions below)."""

    kind: str  # "text" | "error" | "malformed" | "empty" | "slow"
    text: str = ""
    status: int = 200
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str = "end_turn"
    retry_after_ms: int | None = 1
    delay: float = 0.0
    then: Answer | None = None
    thinking: str | None = None


def text(reply: str, *, input_tokens: int | None = None, output_tokens: int | None = None,
         stop_reason: str = "end_turn", thinking: str | None = None) -> Answer:
    """A 200 reply with one text block (after a thinking block if ``thinking`` is given); tokens
    default to about one per 4 characters."""
    return Answer("text", text=reply, input_tokens=input_tokens, output_tokens=output_tokens, stop_reason=stop_reason,
                  thinking=thinking)


def error(status: int, message: str | None = None, *, retry_after_ms: int | None = 1) -> Answer:
    """An error status with the API's error body (``retry-after-ms`` keeps SDK backoff short)."""
    return Answer("error", text=message or f"fake {ERROR_TYPES.get(status, 'api_error')}", status=status,
                  retry_after_ms=retry_after_ms)


def expired() -> Answer:
    """In a Message Batch: the request expired before it was processed (``/v1/messages`` answers it normally)."""
    return Answer("expired")


def malformed() -> Answer:
    """A 200 whose body is not JSON."""
    return Answer("malformed")


def empty_content(*, output_tokens: int = 1) -> Answer:
    """A 200 message with an empty content list (still billed)."""
    return Answer("empty", output_tokens=output_tokens)


def slow(seconds: float, then: Answer | None = None) -> Answer:
    """Wait ``seconds`` before answering ``then`` (default: the responder's answer)."""
    return Answer("slow", delay=seconds, then=then)


def prompt_entities(prompt: str) -> list[str]:
    """The entity lines of a cactus clustering prompt (between the first and the last line)."""
    return prompt.splitlines()[1:-1]


def cluster_by_first_word(prompt: str, body: dict[str, Any] | None = None) -> Answer:
    """A plausible reply: entities grouped by their first word, bold titles, dashed members."""
    groups: dict[str, list[str]] = {}
    for line in prompt_entities(prompt):
        groups.setdefault(line.split()[0].lower() if line.split() else "", []).append(line)
    reply = "\n\n".join(f"**{word.title()} items**\n" + "\n".join(f"- {m}" for m in members)
                        for word, members in groups.items())
    return text(reply)


@dataclass
class FakeBatch:
    """A Message Batch held by the server: its requests' answers decided at creation."""

    id: str
    created_at: float
    custom_ids: list[str]
    answers: list[Answer]
    bodies: list[dict[str, Any]]
    retrieves: int = 0
    cancel_at: int | None = None  # requests done when cancelled
    canceling: bool = False
    ended: bool = False


@dataclass
class Request:
    """One POST received: the decoded body (None if it was not JSON) and its user prompt."""

    path: str
    body: dict[str, Any] | None
    prompt: str
    received: float = field(default_factory=time.monotonic)


class FakeAnthropic:
    """The server; use as a context manager (see the module docstring)."""

    def __init__(self, responder: Callable[[str, dict[str, Any]], Answer] = cluster_by_first_word, *,
                 expected_key: str | None = None) -> None:
        self.responder = responder
        self.expected_key = expected_key
        self.requests: list[Request] = []
        self.keys_seen: set[str] = set()
        self.max_in_flight = 0
        self._in_flight = 0
        self.batch_polls = 2
        self.create_delay = 0.0
        self.max_batch_bytes: int | None = None  # a create body larger than this is refused (413), as the API does
        self.batch_reads_fail: Answer | None = None  # an error for every retrieve/list/results while set
        self._create_answers: deque[Answer] = deque()
        self.batches: dict[str, FakeBatch] = {}
        self.batch_prompts: list[str] = []
        self.batch_calls: list[str] = []  # "create", "retrieve", "list", "results", "cancel"
        self._queue: deque[Answer] = deque()
        self._routes: list[tuple[str, deque[Answer]]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-anthropic", daemon=True)

    # --- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def prompts(self) -> list[str]:
        with self._lock:
            return [r.prompt for r in self.requests]

    @property
    def batches_created(self) -> int:
        with self._lock:
            return len(self.batches)

    @property
    def batch_submitted(self) -> int:
        """Requests received in all batches (resubmissions counted)."""
        with self._lock:
            return len(self.batch_prompts)

    def push_create(self, *answers: Answer) -> None:
        """Answers (errors) for the next batch creates, instead of creating them."""
        with self._lock:
            self._create_answers.extend(answers)

    def batch_requests_for(self, contains: str) -> int:
        """How many batched requests had a prompt holding ``contains``."""
        with self._lock:
            return sum(contains in p for p in self.batch_prompts)

    def respond_with(self, responder: Callable[[str, dict[str, Any]], Answer]) -> None:
        self.responder = responder

    def push(self, *answers: Answer) -> None:
        """Answers for the next requests, whatever their prompt, in order."""
        with self._lock:
            self._queue.extend(answers)

    def push_for(self, contains: str, *answers: Answer) -> None:
        """Answers for the next requests whose prompt holds ``contains``, in order."""
        with self._lock:
            self._routes.append((contains, deque(answers)))

    def requests_for(self, contains: str) -> int:
        """How many requests had a prompt holding ``contains``."""
        with self._lock:
            return sum(contains in r.prompt for r in self.requests)

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving -------------------------------------------------------------------------------

    def _choose(self, prompt: str, body: dict[str, Any]) -> Answer:
        with self._lock:
            for contains, answers in self._routes:
                if contains in prompt and answers:
                    return answers.popleft()
            if self._queue:
                return self._queue.popleft()
        return self.responder(prompt, body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if path.startswith("/v1/messages/batches"):
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client killed mid-create
                        fake._batch_post(self, path, raw)
                    return
                if path != "/v1/messages":
                    self._send_json(404, _error_body(404, f"no route {path}"))
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = None
                prompt = _user_text(body)
                key = self.headers.get("x-api-key") or re.sub(
                    r"^Bearer\s+", "", self.headers.get("authorization") or "")
                with fake._lock:
                    fake.requests.append(Request(path, body, prompt))
                    fake.keys_seen.add(key)
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    if fake.expected_key is not None and key != fake.expected_key:
                        self._answer(error(401, "invalid x-api-key", retry_after_ms=None), body or {})
                    else:
                        self._answer(fake._choose(prompt, body or {}), body or {})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

            def do_GET(self) -> None:
                fake._batch_get(self, self.path)

            def _answer(self, answer: Answer, body: dict[str, Any]) -> None:
                if answer.kind == "slow":
                    deadline = time.monotonic() + answer.delay
                    while time.monotonic() < deadline and not fake._closing.is_set():
                        time.sleep(0.01)
                    prompt = _user_text(body)
                    self._answer(answer.then or fake.responder(prompt, body), body)
                elif answer.kind == "error":
                    headers = {"retry-after-ms": str(answer.retry_after_ms)} if answer.retry_after_ms else {}
                    self._send_json(answer.status, _error_body(answer.status, answer.text), headers)
                elif answer.kind == "malformed":
                    self._send_raw(200, b'{"id": "msg_broken", "type": "message", "content": [', "application/json")
                else:
                    self._send_json(200, _message(answer, body, f"msg_fake_{fake.count}"))

            def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

            def _send_raw(self, status: int, data: bytes, content_type: str,
                          headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_fake_{fake.count}")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        return Handler


    # --- Message Batches -------------------------------------------------------------------------

    def _batch_json(self, batch: FakeBatch) -> dict[str, Any]:
        """The MessageBatch object as the API shows it now (call with the lock held)."""
        n = len(batch.answers)
        done = n if batch.ended and batch.cancel_at is None else min(n, -(-n * batch.retrieves // self.batch_polls))
        if batch.cancel_at is not None:
            done = batch.cancel_at
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for answer in batch.answers[:done]:
            counts[_outcome(answer)] += 1
        if batch.ended:
            counts["canceled"] = n - done
        else:
            counts["processing"] = n - done
        status = "ended" if batch.ended else "canceling" if batch.canceling else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + 86400),
            "ended_at": _iso(time.time()) if batch.ended else None,
            "cancel_initiated_at": _iso(batch.created_at) if batch.canceling or batch.cancel_at is not None else None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if batch.ended else None,
        }

    def _batch_post(self, handler: BaseHTTPRequestHandler, path: str, raw: bytes) -> None:
        send = handler._send_json  # type: ignore[attr-defined]
        parts = path.strip("/").split("/")  # v1 messages batches [id [cancel]]
        if len(parts) == 3:
            with self._lock:
                refusal = self._create_answers.popleft() if self._create_answers else None
            if refusal is not None:
                send(refusal.status, _error_body(refusal.status, refusal.text))
                return
            if self.max_batch_bytes is not None and len(raw) > self.max_batch_bytes:
                send(413, _error_body(413, f"request body of {len(raw)} bytes exceeds {self.max_batch_bytes}"))
                return
            body = json.loads(raw or b"{}")
            requests = body.get("requests") or []
            if not requests:
                send(400, _error_body(400, "requests: at least one request is required"))
                return
            bodies = [r["params"] for r in requests]
            answers = [self._choose(_user_text(b), b) for b in bodies]
            with self._lock:
                self.batch_calls.append("create")
                batch = FakeBatch(f"msgbatch_fake_{len(self.batches):04d}", time.time(),
                                  [r["custom_id"] for r in requests], answers, bodies)
                self.batches[batch.id] = batch
                self.batch_prompts.extend(_user_text(b) for b in bodies)
                payload = self._batch_json(batch)
            deadline = time.monotonic() + self.create_delay
            while time.monotonic() < deadline and not self._closing.is_set():
                time.sleep(0.01)
            send(200, payload)
        elif len(parts) == 5 and parts[4] == "cancel":
            with self._lock:
                self.batch_calls.append("cancel")
                batch = self.batches.get(parts[3])
                if batch is None:
                    payload = None
                else:
                    if not batch.ended:
                        n = len(batch.answers)
                        batch.cancel_at = min(n, -(-n * batch.retrieves // self.batch_polls))
                        batch.canceling = True
                    payload = self._batch_json(batch)
            if payload is None:
                send(404, _error_body(404, f"no batch {parts[3]}"))
            else:
                send(200, payload)
        else:
            send(404, _error_body(404, f"no route {path}"))

    def _batch_get(self, handler: BaseHTTPRequestHandler, full_path: str) -> None:
        send = handler._send_json  # type: ignore[attr-defined]
        path, _, query = full_path.partition("?")
        parts = path.strip("/").split("/")
        if parts[:3] != ["v1", "messages", "batches"]:
            send(404, _error_body(404, f"no route {path}"))
            return
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        failure = self.batch_reads_fail
        if failure is not None:
            send(failure.status, _error_body(failure.status, failure.text))
            return
        with self._lock:
            if len(parts) == 3:
                self.batch_calls.append("list")
                newest = sorted(self.batches.values(), key=lambda b: b.id, reverse=True)
                if "after_id" in params:
                    newest = [b for b in newest if b.id < params["after_id"]]
                limit = int(params.get("limit", 20))
                page = newest[:limit]
                payload: Any = {"data": [self._batch_json(b) for b in page], "has_more": len(newest) > limit,
                                "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}
                status = 200
            else:
                batch = self.batches.get(parts[3])
                if batch is None:
                    payload, status = _error_body(404, f"no batch {parts[3]}"), 404
                elif len(parts) == 4:
                    self.batch_calls.append("retrieve")
                    if batch.canceling:
                        batch.ended, batch.canceling = True, False
                    elif not batch.ended:
                        batch.retrieves += 1
                        batch.ended = batch.retrieves >= self.batch_polls
                    payload, status = self._batch_json(batch), 200
                elif len(parts) == 5 and parts[4] == "results" and batch.ended:
                    self.batch_calls.append("results")
                    done = len(batch.answers) if batch.cancel_at is None else batch.cancel_at
                    lines = []
                    for k, (custom_id, answer, body) in enumerate(zip(batch.custom_ids, batch.answers, batch.bodies,
                                                                     strict=True)):
                        outcome = _outcome(answer) if k < done else "canceled"
                        result: dict[str, Any] = {"type": outcome}
                        if outcome == "succeeded":
                            result["message"] = _message(answer, body, f"msg_fake_{batch.id}_{k}")
                        elif outcome == "errored":
                            result["error"] = _error_body(answer.status, answer.text)
                        lines.append(json.dumps({"custom_id": custom_id, "result": result}))
                    data = ("\n".join(lines) + "\n").encode("utf-8")
                    payload, status = None, 200
                else:
                    payload, status = _error_body(404, f"no route {path}"), 404
        if payload is None:
            handler._send_raw(200, data, "application/binary")  # type: ignore[attr-defined]
        else:
            send(status, payload)


class _QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a (killed) client drops its connection."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _outcome(answer: Answer) -> str:
    """What a batched request with this answer ends as."""
    return {"error": "errored", "expired": "expired"}.get(answer.kind, "succeeded")


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _message(answer: Answer, body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A Messages API message for a text-like answer."""
    if answer.kind == "slow":
        answer = answer.then or text("")
    content: list[dict[str, Any]] = [] if answer.kind == "empty" else [{"type": "text", "text": answer.text}]
    if answer.thinking is not None:
        content.insert(0, {"type": "thinking", "thinking": answer.thinking, "signature": "fake"})
    prompt = _user_text(body)
    usage = {
        "input_tokens": answer.input_tokens if answer.input_tokens is not None else max(1, len(prompt) // 4),
        "output_tokens": answer.output_tokens if answer.output_tokens is not None else max(1, len(answer.text) // 4),
    }
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _user_text(body: dict[str, Any] | None) -> str:
    """The text of the last user message of a Messages API request body."""
    if not body:
        return ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def teacher_test_env(monkeypatch: Any, key: str) -> None:
    """The environment of a teacher CLI test: API key ``key``, no model, cache or auth overrides from the caller's
    shell, the base URL on a closed port (never the real API), and only the ``label`` command registered."""
    import cactus.cli

    for name in ("CACTUS_TEACHER_MODEL", "CACTUS_CACHE_DIR", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(cactus.cli, "COMMANDS", ("label",))  # the other commands' imports are not under test


def serve_fake(monkeypatch: Any) -> Iterator[FakeAnthropic]:
    """A running :class:`FakeAnthropic` that ``ANTHROPIC_BASE_URL`` points to (for ``yield from`` in a fixture)."""
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake
