"""Line-by-line reading of JSONL and UTF-8 text with exact line numbers, and atomic writing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cactus.data.errors import DataError
from cactus.data.hygiene import load_json
from cactus.files import atomic_text


def iter_text_lines(path: str | Path) -> Iterator[tuple[int, str | DataError]]:
    """Yield ``(line_number, text)`` for every non-blank line, decoding UTF-8 strictly.

    A line that is not valid UTF-8 is yielded as a located :class:`DataError` in place of its text
    (naming the byte offset), so that a reader can raise it or skip just that line.

    Raises:
        DataError: the file is missing or is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, DataError(
                    f"invalid UTF-8 at byte {exc.start + 1} of the line ({raw[exc.start:exc.start + 1]!r}); "
                    "save the file as UTF-8",
                    path=path,
                    line=number,
                )
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
            if text.strip():
                yield number, text


def parse_json_line(text: str, *, path: str | Path, line: int) -> Any:
    """Parse one JSONL line with :func:`cactus.data.hygiene.load_json`, its errors located by file and line."""
    try:
        return load_json(text)
    except DataError as exc:
        raise exc.located(path=path, line=line) from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically: a crash leaves the old file, never half of a new one."""
    with atomic_text(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
