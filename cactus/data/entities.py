"""Entity files: JSONL ``{"id", "text", "labels"?}`` or CSV ``id,text[,labels]``.

``labels`` is a category path from coarse to fine, e.g. ``["Arts & Crafts", "Colouring Pencils"]``;
in CSV it is one cell joined by `` > `` (``Arts & Crafts > Colouring Pencils``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cactus.data.errors import DataError, SkippedLine
from cactus.data.hygiene import check_text, iter_csv_rows
from cactus.data.jsonl import iter_text_lines, parse_json_line

LABEL_SEPARATOR = " > "


@dataclass(frozen=True)
class LabelledEntity:
    """An entity of a pool, with its category path (empty when unknown)."""

    id: str
    text: str
    labels: tuple[str, ...] = ()


@dataclass
class LoadedEntities:
    entities: list[LabelledEntity]
    skipped: list[SkippedLine] = field(default_factory=list)


def parse_entity(obj: Any) -> LabelledEntity:
    """Validate one decoded JSON object of an entities file."""
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object per line, got {type(obj).__name__}")
    entity_id = obj.get("id")
    if isinstance(entity_id, int) and not isinstance(entity_id, bool):
        entity_id = str(entity_id)
    if not isinstance(entity_id, str) or not entity_id.strip():
        raise DataError("missing or empty entity id", field="id")
    text = obj.get("text")
    if not isinstance(text, str):
        raise DataError("missing text" if text is None else f"expected a string, got {type(text).__name__}",
                        field="text")
    if not text.strip():
        raise DataError("empty text", field="text")
    labels = obj.get("labels", [])
    if labels is None:
        labels = []
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise DataError("expected a list of non-empty strings (category path, coarse to fine)", field="labels")
    return LabelledEntity(entity_id, text, tuple(labels))


def read_entities(path: str | Path, *, skip_invalid: bool = False) -> LoadedEntities:
    """Read an entities file (``.jsonl`` or ``.csv``, by extension), validating every line.

    Raises:
        DataError: ``path:line: field: reason`` for the first invalid line (unless ``skip_invalid``),
            and for duplicate ids.
    """
    path = Path(path)
    rows = _iter_csv(path) if path.suffix.lower() == ".csv" else _iter_jsonl(path)
    loaded = LoadedEntities([])
    first_line: dict[str, int] = {}
    for number, parse in rows:
        try:
            entity = parse()
            if entity.id in first_line:
                raise DataError(f"duplicate entity id '{entity.id}' (first on line {first_line[entity.id]})",
                                field="id")
        except DataError as exc:
            located = exc.located(path=path, line=number)
            if not skip_invalid:
                raise located from None
            loaded.skipped.append(SkippedLine(str(path), number, located.describe()))
            continue
        first_line[entity.id] = number
        loaded.entities.append(entity)
    return loaded


def _iter_jsonl(path: Path):
    for number, text in iter_text_lines(path):
        def parse(text=text, number=number) -> LabelledEntity:
            if isinstance(text, DataError):
                raise text
            return parse_entity(parse_json_line(text, path=path, line=number))

        yield number, parse


def _iter_csv(path: Path):
    if not path.is_file():
        raise DataError("file not found", path=path)
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"invalid UTF-8 at byte {exc.start + 1} of the file; save the file as UTF-8",
                        path=path, line=line) from None
    if not content.strip():
        return  # no entities; the caller says whether that is an error
    rows = iter_csv_rows(content)
    try:
        _, header = next(rows, (1, []))
    except DataError as exc:
        raise exc.located(path=path) from None
    columns = [c.strip() for c in header]
    if "text" not in columns:
        raise DataError(f"the CSV has no 'text' column (columns: {', '.join(columns) or 'none'}); "
                        "expected a header id,text[,labels]", path=path, line=1)
    while True:
        try:
            number, cells = next(rows)
        except StopIteration:
            return
        except DataError as exc:  # an unclosed quote or broken CSV ends the file: not a line to skip
            raise exc.located(path=path) from None
        if not cells:
            continue

        def parse(cells=cells, number=number) -> LabelledEntity:
            if len(cells) > len(columns):
                raise DataError(f"{len(cells)} cells for {len(columns)} columns (quote cells that contain commas)")
            row = dict(zip(columns, cells, strict=False))
            for name, value in row.items():
                check_text(value, name)
            labels = row.get("labels") or ""
            return parse_entity({
                "id": (row.get("id") or "").strip() or f"row-{number}",
                "text": row.get("text") or "",
                "labels": [x.strip() for x in labels.split(LABEL_SEPARATOR.strip())] if labels.strip() else [],
            })

        yield number, parse
