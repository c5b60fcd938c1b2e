"""Where a store's files live: model checkpoints and job folders belong to the store they were made for.

``$CACTUS_ARTIFACTS_DIR`` when set (for PostgreSQL, a folder every worker and the app see, e.g. a shared mount);
otherwise, for a SQLite store, the folder ``<file stem>-artifacts`` beside the database file; for a PostgreSQL store
without the setting, a folder per server, database and schema under ``$XDG_DATA_HOME/cactus/artifacts``
(only right when the app and every worker run on one machine).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url

ARTIFACTS_ENV = "CACTUS_ARTIFACTS_DIR"


def artifacts_dir(url: str) -> Path:
    """The folder that holds the files of the store at ``url`` (see the module docstring)."""
    chosen = os.environ.get(ARTIFACTS_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ValueError(f"an in-memory SQLite store has no folder for its files; set {ARTIFACTS_ENV}")
        path = Path(database).expanduser().resolve()
        return path.with_name(f"{path.stem}-artifacts")
    schema = (parsed.query.get("options") or "")
    name = "-".join(p for p in (parsed.host or "local", str(parsed.port or ""), parsed.database or "", schema) if p)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cactus" / "artifacts" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
