"""The thin client: build ``anthropic.Anthropic`` and send one clustering prompt.

Retries are the SDK's own: with ``max_retries`` > 0 it retries timeouts, connection errors, 408, 409,
429 and 5xx (529 "overloaded" included) with exponential backoff, honouring ``retry-after`` headers.
Whatever still fails is re-raised here as :class:`TeacherRequestError`, naming the set and the next
step. The API key comes from ``ANTHROPIC_API_KEY`` only; it is scrubbed from every message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from cactus.teacher.config import MissingAPIKeyError, TeacherConfig, TeacherError

if TYPE_CHECKING:
    import anthropic

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"


class TeacherRequestError(TeacherError):
    """A request for one set failed after the SDK's retries.

    Attributes:
        set_id: the set the request was for.
        status: the HTTP status, when the endpoint answered.
        fatal: every further request would fail the same way (bad key, unknown model), so a batch
            stops sending.
    """

    def __init__(self, message: str, *, set_id: str, status: int | None = None, fatal: bool = False) -> None:
        super().__init__(f"set '{set_id}': {message}")
        self.set_id = set_id
        self.status = status
        self.fatal = fatal


@dataclass(frozen=True)
class Reply:
    """What the endpoint answered: the text blocks joined, token usage and why it stopped."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    model: str


def api_key_from_env() -> str | None:
    """``ANTHROPIC_API_KEY``, or None when unset or blank."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


def resolve_base_url(config: TeacherConfig) -> str | None:
    """``config.base_url``, else ``ANTHROPIC_BASE_URL``, else None (Anthropic's own endpoint)."""
    return config.base_url or os.environ.get(BASE_URL_ENV, "").strip() or None


def public_url(url: str | None) -> str:
    """A URL safe to print or store: any ``user:password@`` part is removed."""
    if not url:
        return "https://api.anthropic.com"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def make_client(config: TeacherConfig, *, api_key: str | None = None) -> anthropic.Anthropic:
    """The SDK client for ``config``: its timeout, retries and endpoint.

    Args:
        config: the teacher settings.
        api_key: the key; None reads ``ANTHROPIC_API_KEY``.

    Raises:
        MissingAPIKeyError: no key was given or set.
    """
    import anthropic

    key = api_key or api_key_from_env()
    if not key:
        raise MissingAPIKeyError()
    return anthropic.Anthropic(
        api_key=key,
        base_url=resolve_base_url(config),
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


def request_clustering(client: anthropic.Anthropic, config: TeacherConfig, prompt: str, *, set_id: str) -> Reply:
    """Send one clustering prompt and return the reply.

    Raises:
        TeacherRequestError: the request failed after the SDK's retries (the set id and the next
            step are in the message; ``fatal`` says whether other sets would fail alike).
    """
    import anthropic

    extra: dict[str, Any] = {}
    if config.temperature is not None:
        extra["extra_body"] = {"temperature": config.temperature}
    try:
        message = client.messages.create(
            model=config.model,
            max_tokens=config.max_tokens,
            messages=[{"role": "user", "content": prompt}],
            **extra,
        )
    except anthropic.APIError as exc:
        raise _explain(exc, client, config, set_id) from None
    except json.JSONDecodeError as exc:  # a 200 whose body is not JSON: the SDK lets this through
        where = public_url(str(client.base_url))
        raise TeacherRequestError(
            f"{where} answered with something that is not a Messages API reply ({_scrub(str(exc), client)}); "
            "check --base-url",
            set_id=set_id,
        ) from None
    text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
    usage = message.usage
    return Reply(
        text=text,
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        stop_reason=message.stop_reason,
        model=str(message.model or config.model),
    )


def _explain(exc: Exception, client: anthropic.Anthropic, config: TeacherConfig, set_id: str) -> TeacherRequestError:
    """The SDK error as a message that names the failure and what to do about it."""
    import anthropic

    where = public_url(str(client.base_url))
    tries = f"after {config.max_retries} retries" if config.max_retries else "(retries are off)"
    status = getattr(exc, "status_code", None)
    detail = _scrub(getattr(exc, "api_message", None) or getattr(exc, "message", None) or str(exc), client)
    fatal = False
    if isinstance(exc, anthropic.AuthenticationError):
        message, fatal = f"{where} rejected the API key (401: {detail}); check ANTHROPIC_API_KEY", True
    elif isinstance(exc, anthropic.PermissionDeniedError):
        message, fatal = f"the API key may not use model '{config.model}' at {where} (403: {detail})", True
    elif isinstance(exc, anthropic.NotFoundError):
        message = (
            f"{where} does not know model '{config.model}' or the Messages API path (404: {detail}); "
            "check --model / CACTUS_TEACHER_MODEL and --base-url / ANTHROPIC_BASE_URL"
        )
        fatal = True
    elif isinstance(exc, anthropic.RateLimitError):
        message = f"rate limited {tries} (429: {detail}); lower --concurrency or rerun later"
    elif isinstance(exc, anthropic.BadRequestError):
        hint = (
            "; this endpoint may not accept a temperature: leave --temperature out"
            if config.temperature is not None and "temperature" in detail.lower()
            else "; the prompt or settings were refused"
        )
        message = f"the request was refused (400: {detail}){hint}"
    elif isinstance(exc, anthropic.APIStatusError):
        kind = "overloaded" if status == 529 else "a server error"
        message = f"{where} answered {kind} {tries} ({status}: {detail}); rerun later"
    elif isinstance(exc, anthropic.APITimeoutError):
        message = f"no reply within {config.timeout:g} s {tries}; raise --timeout or lower --concurrency"
    elif isinstance(exc, anthropic.APIConnectionError):
        message = f"could not reach {where} {tries} ({detail}); check the network and --base-url"
    elif isinstance(exc, anthropic.APIResponseValidationError):
        message = f"{where} answered with something that is not a Messages API reply ({detail})"
    else:
        message = f"the request failed: {type(exc).__name__}: {detail}"
    return TeacherRequestError(message, set_id=set_id, status=status, fatal=fatal)


def _scrub(text: str, client: anthropic.Anthropic) -> str:
    """``text`` with the API key (should an endpoint echo it) replaced by ``***``."""
    key = getattr(client, "api_key", None)
    return text.replace(key, "***") if key else text
