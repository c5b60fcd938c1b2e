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
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
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
        self._queue: deque[Answer] = deque()
        self._routes: list[tuple[str, deque[Answer]]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
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
                    content = [] if answer.kind == "empty" else [{"type": "text", "text": answer.text}]
                    if answer.thinking is not None:
                        content.insert(0, {"type": "thinking", "thinking": answer.thinking, "signature": "fake"})
                    prompt = _user_text(body)
                    usage = {
                        "input_tokens": answer.input_tokens if answer.input_tokens is not None
                        else max(1, len(prompt) // 4),
                        "output_tokens": answer.output_tokens if answer.output_tokens is not None
                        else max(1, len(answer.text) // 4),
                    }
                    self._send_json(200, {
                        "id": f"msg_fake_{fake.count}",
                        "type": "message",
                        "role": "assistant",
                        "model": body.get("model", "claude-fake"),
                        "content": content,
                        "stop_reason": answer.stop_reason,
                        "stop_sequence": None,
                        "usage": usage,
                    })

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
