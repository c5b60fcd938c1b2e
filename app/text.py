"""Words for the pages: counts with the right plural."""

from __future__ import annotations


def count(n: int | float | None, singular: str, plural: str | None = None) -> str:
    """``"1 set"``, ``"2 sets"``, ``"1 entity"``/``"3 entities"`` (give ``plural`` when it is not singular + s)."""
    if n is None:
        return f"? {plural or singular + 's'}"
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
