"""Checks shared by the job types' ``parse_params``: each raises :class:`JobParamsError` naming the job type
and the parameter at fault."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from jobs.base import JobParamsError


def refuse_unknown(job: str, raw: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse parameters the job type does not take, listing those it does."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise JobParamsError(f"{job}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def is_int(value: Any) -> bool:
    """True for a JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(job: str, raw: Mapping[str, Any], name: str, *, minimum: int = 1, default: int | None = None,
            required: bool = False) -> int | None:
    """``raw[name]`` as an integer of at least ``minimum``; ``default`` when absent (or an error if ``required``)."""
    value = raw.get(name, default)
    if value is None:
        if required:
            raise JobParamsError(f"{job}: the parameter {name!r} is required")
        return None
    if not is_int(value) or value < minimum:
        raise JobParamsError(f"{job}: {name} must be an integer of at least {minimum}, got {value!r}")
    return value


def boolean(job: str, raw: Mapping[str, Any], name: str, default: bool) -> bool:
    """``raw[name]`` as true or false."""
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise JobParamsError(f"{job}: {name} must be true or false, got {value!r}")
    return value


def ids(job: str, raw: Mapping[str, Any], name: str, *, what: str, allow_empty: bool = False
        ) -> tuple[int, ...] | None:
    """``raw[name]`` as a tuple of ids of ``what`` ("set", "model"), or None when absent."""
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not (value or allow_empty) or not all(is_int(i) for i in value):
        kind = "a list" if allow_empty else "a non-empty list"
        raise JobParamsError(f"{job}: {name} must be {kind} of {what} ids, got {value!r}")
    return tuple(value)
