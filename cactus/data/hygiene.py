"""Checks every reader of user input shares: characters no store or tokenizer takes, JSON nested too deeply,
CSV quotes left open, and texts too long to tokenize whole.

Each check raises :class:`cactus.data.DataError` naming the field; the reader adds file and line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cactus.data.errors import DataError

if TYPE_CHECKING:
    from cactus.data.sets import EntitySet

#: Lists and objects inside each other a JSON line may hold; the formats need 3 (a set's similarity rows).
MAX_JSON_DEPTH = 64
#: An entity is cut to ``max_tokens * CHARS_PER_TOKEN`` characters before tokenizing: far more than its first
#: ``max_tokens`` tokens span in any text of words, so the kept tokens do not change, and a 10 MB text costs
#: no more than a short one.
CHARS_PER_TOKEN = 16

_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_TOKEN = re.compile(_STRING.pattern + r"|[\[\]{}]")
#: JSON escapes that decode to a NUL or to half of a surrogate pair (the walk then says which, and where).
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def check_text(value: str, field: str | None = None) -> str:
    """``value`` unchanged, or a DataError if it holds a NUL character or a lone surrogate.

    PostgreSQL refuses NUL in text, and a lone surrogate (half of a UTF-16 pair, e.g. JSON ``"\\ud800"``) cannot
    be written as UTF-8, so neither survives a save, a store or a tokenizer.
    """
    nul = value.find("\x00")
    if nul >= 0:
        raise DataError(f"contains a NUL character (\\x00) at character {nul + 1}; remove it", field=field)
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise DataError(
            f"contains a lone surrogate \\u{ord(surrogate.group()):04x} at character {surrogate.start() + 1} "
            "(half of a UTF-16 pair, not a character); remove it or write the whole character",
            field=field,
        )
    return value


def check_json(value: Any) -> Any:
    """``value`` unchanged, or a DataError for a string (key or value) failing :func:`check_text` or nesting
    deeper than :data:`MAX_JSON_DEPTH`; the field is the path to it, e.g. ``entities[2].text``."""
    try:
        _walk(value)
    except _TooDeep as exc:
        raise DataError(_too_deep(), field=re.split(r"[.\[]", exc.path, maxsplit=1)[0] or None) from None
    return value


def check_set(entity_set: EntitySet) -> EntitySet:
    """``entity_set`` unchanged, or a DataError naming the set and the field of its first bad string
    (for sets built in code or from a CSV, which no JSON check has seen)."""
    try:
        check_text(entity_set.id, "id")
        for i, entity in enumerate(entity_set.entities):
            check_text(entity.id, f"entities[{i}].id")
            check_text(entity.text, f"entities[{i}].text")
        for k, name in enumerate(entity_set.cluster_names or ()):
            check_text(name, f"cluster_names[{k}]")
        check_json(entity_set.extra)
    except DataError as exc:
        raise DataError(exc.reason, path=f"set {entity_set.id!r}", field=exc.field) from None
    return entity_set


def load_json(text: str) -> Any:
    """Parse one JSON document and :func:`check_json` it.

    Raises:
        DataError: invalid JSON (with its column), JSON nested too deeply (where the RecursionError of
            ``json.loads`` would come), a NUL or lone surrogate in a string.
    """
    text = text.rstrip("\r\n")  # a line's own end: inside a cut-off string json would call it a control character
    try:
        value = json.loads(text)
        if _too_deep_text(text):
            raise _TooDeep("")
        if _SUSPECT.search(text) or "\x00" in text or _SURROGATE.search(text):
            _walk(value)  # only then can a string hold one; most lines skip the walk
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Unterminated string"):
            raise DataError(f"invalid JSON: the line ends inside the string that starts at column {exc.colno} "
                            "(cut off, or split over several lines?)") from None
        if exc.pos >= len(text.rstrip()) - 1 and exc.msg != "Extra data":
            # json's own message ("Expecting ',' delimiter", "Unterminated string") hides the usual cause
            raise DataError(f"invalid JSON: the line ends before its JSON value does (cut off, or split over "
                            f"several lines?): {exc.msg.removesuffix(' at')} at column {exc.colno}") from None
        raise DataError(f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}") from None
    except (RecursionError, _TooDeep):
        raise DataError(_too_deep(_deep_column(text))) from None
    return value


def _too_deep_text(text: str) -> bool:
    """Whether valid JSON ``text`` nests deeper than MAX_JSON_DEPTH: strings dropped, innermost pairs removed
    MAX_JSON_DEPTH times over (string operations only, fast on long lines)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return False
        brackets = brackets.replace("[]", "").replace("{}", "")
    return bool(brackets)


class _TooDeep(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _walk(value: Any) -> None:
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            check_text(node, path or None)
            continue
        if depth > MAX_JSON_DEPTH:
            raise _TooDeep(path)
        if isinstance(node, list):
            children = [(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node)
                        if isinstance(item, (str, list, dict))]
        else:
            children = []
            for key, item in node.items():
                where = f"{path}.{_printable(key)}" if path else _printable(key)
                check_text(key, where)
                if isinstance(item, (str, list, dict)):
                    children.append((item, where, depth + 1))
        stack.extend(reversed(children))  # popped in document order, so the first bad string is the one named


def _printable(key: str) -> str:
    """A key as it can be printed in a message: NUL and lone surrogates escaped."""
    return key.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _too_deep(column: int | None = None) -> str:
    at = f" at column {column}" if column is not None else ""
    return (f"JSON nested deeper than {MAX_JSON_DEPTH} lists or objects inside each other{at}; "
            "the formats need at most 3")


def _deep_column(text: str) -> int | None:
    """The column where ``text`` opens its list or object number MAX_JSON_DEPTH + 1 (strings skipped)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return match.start() + 1
        elif token in "]}":
            depth -= 1
    return None


def iter_csv_rows(content: str, dialect: Any = csv.excel) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` for every CSV record of ``content``, ``line`` being where the record starts.

    Raises:
        DataError: located by line: a quoted cell never closed (Python's csv would swallow the rest of the file
            into it), or any other error of the csv module.
    """
    lines = io.StringIO(content, newline="").readlines()
    reader = csv.reader(lines, dialect)
    start = 1
    try:
        for row in reader:
            if reader.line_num == len(lines) and _quote_left_open(lines[start - 1:], dialect):
                raise _unclosed(start)
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        hint = "; is a quote left open there?" if "field limit" in str(exc) else ""
        raise DataError(f"not valid CSV: {exc}{hint}", line=start) from None


def _quote_left_open(tail: list[str], dialect: Any) -> bool:
    """Whether the record starting at ``tail[0]`` runs to the end of the file inside a quoted cell."""
    ending = [] if tail[-1].endswith(("\n", "\r")) else ["\n"]
    records = list(csv.reader([*tail, *ending, "cactus-end\n"], dialect))
    return records[-1] != ["cactus-end"]


def _unclosed(line: int) -> DataError:
    return DataError('a quoted cell opened here is never closed (its " runs to the end of the file); close it, or '
                     'write "" for a quote inside a quoted cell', line=line)


def cut_text(text: str, max_tokens: int) -> str:
    """``text`` cut to ``max_tokens * CHARS_PER_TOKEN`` characters, the most its first tokens can span."""
    limit = max_tokens * CHARS_PER_TOKEN
    return text if len(text) <= limit else text[:limit]
