"""Replies already paid for, in one SQLite file keyed by (model, prompt).

Every reply the endpoint returned is stored the moment it arrives, before it is parsed: replies
that parse and replies that do not (so a discarded set is not paid for twice either; ask again
with ``retry_discarded``). Failed requests are not stored. Each write is one SQLite transaction
(write-ahead log), so a process killed mid-write leaves the file as it was before that reply, and a
rerun sends only the prompts that have no reply yet.

Batches sent through the Message Batches API are recorded here too, write-ahead: a submission (its
token, what output it is for, and each request's ``custom_id`` with the cache key of its prompt) is
committed *before* the batch is created, and the batch id right after. A crash at any point therefore
leaves either a submission with its batch id (a rerun polls that batch) or one without (a rerun looks
for it among the account's batches by its custom ids), never a set sent twice unknowingly.

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

_BATCH_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS batch_submissions (
    token TEXT PRIMARY KEY,
    batch_id TEXT,
    output TEXT NOT NULL,
    model TEXT NOT NULL,
    max_tokens INTEGER NOT NULL,
    n_requests INTEGER NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS batch_requests (
    custom_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT,
    error TEXT
)
""",
    "CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests (key)",
    "CREATE INDEX IF NOT EXISTS batch_requests_token ON batch_requests (token)",
)


@dataclass(frozen=True)
class Submission:
    """A batch of requests recorded before it was created; ``batch_id`` is None until create answered."""

    token: str
    batch_id: str | None
    output: str
    model: str
    max_tokens: int
    n_requests: int
    created: float


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
            for statement in _BATCH_SCHEMA:
                self._db.execute(statement)
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

    # --- Message Batches (write-ahead records) ---------------------------------------------------

    def begin_submission(self, token: str, *, output: str, model: str, max_tokens: int,
                         requests: list[tuple[str, str, int]]) -> None:
        """Record a batch about to be created: ``requests`` are (custom_id, cache key, attempt); one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO batch_submissions VALUES (?, NULL, ?, ?, ?, ?, ?, 'open')",
                                 (token, output, model, max_tokens, len(requests), time.time()))
                self._db.executemany("INSERT INTO batch_requests VALUES (?, ?, ?, ?, NULL, NULL)",
                                     [(custom_id, token, key, attempt) for custom_id, key, attempt in requests])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_batch_id(self, token: str, batch_id: str) -> None:
        """The batch the API created for submission ``token``."""
        with self._lock:
            self._db.execute("UPDATE batch_submissions SET batch_id = ? WHERE token = ?", (batch_id, token))

    def drop_submission(self, token: str) -> None:
        """Forget a submission whose batch was never created (its requests may be sent again)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM batch_requests WHERE token = ?", (token,))
            self._db.execute("DELETE FROM batch_submissions WHERE token = ?", (token,))
            self._db.execute("COMMIT")

    def open_submissions(self, output: str | None = None) -> list[Submission]:
        """Submissions whose results were not collected yet (of ``output`` only, when given), oldest first."""
        query = ("SELECT token, batch_id, output, model, max_tokens, n_requests, created FROM batch_submissions "
                 "WHERE state = 'open'")
        args: tuple[str, ...] = ()
        if output is not None:
            query, args = query + " AND output = ?", (output,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [Submission(*row) for row in rows]

    def known_batch_ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute(
                "SELECT batch_id FROM batch_submissions WHERE batch_id IS NOT NULL")}

    def open_requests(self) -> dict[str, str]:
        """Cache key -> token of the open submission that holds a request for it."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.key, r.token FROM batch_requests r JOIN batch_submissions s ON s.token = r.token "
                "WHERE s.state = 'open' AND r.outcome IS NULL").fetchall()
        return dict(rows)

    def submission_requests(self, token: str) -> dict[str, tuple[str, int]]:
        """custom_id -> (cache key, attempt) of one submission's requests that have no result yet."""
        with self._lock:
            rows = self._db.execute("SELECT custom_id, key, attempt FROM batch_requests "
                                    "WHERE token = ? AND outcome IS NULL",
                                    (token,)).fetchall()
        return {custom_id: (key, attempt) for custom_id, key, attempt in rows}

    def store_batch_results(self, model: str, max_tokens: int, replies: list[tuple[str, str, Reply]],
                            failures: list[tuple[str, str, str]]) -> None:
        """Results of batched requests, in one transaction: ``replies`` (custom_id, cache key, reply) become
        cached replies and ``failures`` (custom_id, outcome, error) close their requests without one."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key, model, max_tokens, r.text, r.stop_reason, r.input_tokens, r.output_tokens, r.model, now)
                     for _cid, key, r in replies])
                self._db.executemany("UPDATE batch_requests SET outcome = 'succeeded' WHERE custom_id = ?",
                                     [(cid,) for cid, _key, _r in replies])
                self._db.executemany("UPDATE batch_requests SET outcome = ?, error = ? WHERE custom_id = ?",
                                     [(outcome, error, cid) for cid, outcome, error in failures])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close_submission(self, token: str) -> None:
        """Every result of the submission's batch was read."""
        with self._lock:
            self._db.execute("UPDATE batch_submissions SET state = 'collected' WHERE token = ?", (token,))

    def batched_keys(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` whose cached reply came from a Message Batch."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in self._db.execute(
                    f"SELECT key FROM batch_requests WHERE outcome = 'succeeded' AND key IN ({marks})", chunk))
        return found

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
