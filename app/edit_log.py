"""The edit log as the Correct page shows it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def edit_details(params: dict[str, Any], texts: Sequence[str]) -> str:
    """An edit's parameters as the page shows them: clusters numbered from 1 (#1, #2), entities by their text."""
    def cluster(c: Any) -> str:
        return f"#{c + 1}" if isinstance(c, int) else "a new cluster"

    def entity(i: Any) -> str:
        return repr(texts[i]) if isinstance(i, int) and 0 <= i < len(texts) else str(i)

    shown = []
    for key, value in params.items():
        if key in ("to", "cluster"):
            shown.append(f"{key} {cluster(value)}")
        elif key == "clusters":
            shown.append("clusters " + ", ".join(cluster(c) for c in value))
        elif key == "entity":
            shown.append(f"entity {entity(value)}")
        elif key == "entities":
            shown.append("entities " + ", ".join(entity(i) for i in value))
        elif value not in (None, ""):
            shown.append(f"{key} {value!r}" if isinstance(value, str) else f"{key} {value}")
    return "; ".join(shown)
