"""Replies already paid for, in one SQLite file keyed by (model, prompt).

Every reply the endpoint returned is stored the moment it arrives, before it is parsed: replies
that parse and replies that do not (so a discarded set is not paid for twice either; ask again
with ``retry_discarded``). Failed requests are not stored. Each write is one SQLite transaction
(write-ahead log), so a process killed mid-write leaves the file as it was before that reply, and a
rerun sends only the prompts that have no reply yet.

A reply cut off at ``max_tokens`` is reused only while ``max_tokens`` is not raised: asking with a
larger limit asks again. The API key is never stored; rows hold the model, a hash of the prompt,
the reply text and its usage.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cactus.teacher.client import Reply
from cactus.teacher.config import TeacherError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    max_tokens INTEGER NOT NULL,
    reply TEXT NOT NULL,
    stop_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    response_model TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(model: str, prompt: str) -> str:
    """SHA-256 of the model id and the exact prompt text."""
    return hashlib.sha256(json.dumps([model, prompt], ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    reply: Reply
    max_tokens: int


class ReplyCache:
    """A thread-safe SQLite store of replies; several processes may share the file.

    Args:
        path: the SQLite file (created with its folder).

    Raises:
        TeacherError: the file cannot be opened as a cache.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise TeacherError(
                f"{self.path}: cannot open the teacher cache ({exc}); point --cache elsewhere or pass --no-cache"
            ) from None
        self._lock = threading.Lock()

    def get(self, model: str, prompt: str, *, max_tokens: int) -> CachedReply | None:
        """The stored reply for (model, prompt), unless it was cut off below ``max_tokens``."""
        with self._lock:
            row = self._db.execute(
                "SELECT reply, stop_reason, input_tokens, output_tokens, response_model, max_tokens "
                "FROM replies WHERE key = ?",
                (cache_key(model, prompt),),
            ).fetchone()
        if row is None:
            return None
        text, stop_reason, input_tokens, output_tokens, response_model, stored_max = row
        if stop_reason == "max_tokens" and max_tokens > stored_max:
            return None  # cut off at a smaller limit: worth asking again
        return CachedReply(Reply(text, input_tokens, output_tokens, stop_reason, response_model), stored_max)

    def put(self, model: str, prompt: str, reply: Reply, *, max_tokens: int) -> None:
        """Store (or replace) the reply for (model, prompt) in one transaction."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cache_key(model, prompt), model, max_tokens, reply.text, reply.stop_reason,
                    reply.input_tokens, reply.output_tokens, reply.model, time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReplyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
