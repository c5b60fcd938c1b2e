"""Reading uploaded or pasted entity sets for the Data page, validated with messages that name the line.

Three inputs, all turned into :class:`cactus.data.EntitySet` lists:

- the sets JSONL format (validated by :func:`cactus.data.read_sets`, the same rules as the command line);
- CSV with a header ``set_id,text[,cluster]`` (an ``id`` column, if present, names the entities): rows of a
  set may be anywhere in the file, sets keep the order of their first row; a ``cluster`` value on every row
  of a set makes it labelled, named by those values;
- plain text, one entity a line, a blank line between sets (pasted into the page, or a ``.txt`` file).

Every error is a :class:`cactus.data.DataError` whose message reads ``NAME:LINE: field 'F': reason``.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cactus.data import DataError, Entity, EntitySet, read_sets
from cactus.data.hygiene import check_text, iter_csv_rows

FORMATS = {"jsonl": "sets JSONL", "csv": "CSV (set_id,text[,cluster])", "text": "text (blank line between sets)"}


@dataclass(frozen=True)
class ParsedUpload:
    """The sets read from one upload."""

    source: str  # the file name, or "pasted text"
    format: str  # one of FORMATS
    sets: list[EntitySet]

    @property
    def entities(self) -> int:
        return sum(len(s) for s in self.sets)

    @property
    def labelled(self) -> int:
        return sum(s.is_labelled for s in self.sets)

    @property
    def splits(self) -> dict[str, int]:
        """How many sets carry each ``split`` key (the rest go to "unassigned" unless a split is chosen)."""
        counts: dict[str, int] = {}
        for entity_set in self.sets:
            split = str(entity_set.extra.get("split", "none"))
            counts[split] = counts.get(split, 0) + 1
        return counts


class UploadProblems(DataError):
    """Every invalid line of an upload, not only the first: ``problems`` are ``file:line: field: reason`` strings."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the file; the first: {self.problems[0]}", path=name)


def _raise_all(name: str, problems: Sequence[DataError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise UploadProblems(name, [str(p) for p in problems])


def format_of(name: str) -> str:
    """The format an upload's file name suggests: jsonl, csv or text.

    Raises:
        DataError: an extension the page does not read.
    """
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".txt", ".text", ""):
        return "text"
    raise DataError(f"cannot read {suffix!r} files; upload sets as .jsonl, .csv (set_id,text[,cluster]) or .txt "
                    "(one entity a line, a blank line between sets)", path=name)


def parse_upload(name: str, data: bytes) -> ParsedUpload:
    """Read an uploaded file by its extension (see :func:`format_of`)."""
    kind = format_of(name)
    if kind == "jsonl":
        return parse_jsonl(name, data)
    if kind == "csv":
        return parse_csv(name, data)
    return parse_text(_decode(name, data), source=name)


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"invalid UTF-8 at byte {exc.start + 1} of the file; save it as UTF-8", path=name,
                        line=line) from None


def parse_jsonl(name: str, data: bytes) -> ParsedUpload:
    """Validate a sets JSONL upload exactly as ``cactus import-sets`` would."""
    with tempfile.TemporaryDirectory(prefix="cactus-upload-") as folder:
        path = Path(folder) / "upload.jsonl"
        path.write_bytes(data)
        try:
            loaded = read_sets(path, skip_invalid=True)
        except DataError as exc:  # the file as a whole (e.g. not UTF-8)
            raise DataError(exc.reason, path=name, line=exc.line, field=exc.field) from None
        _raise_all(name, [DataError(s.reason, path=name, line=s.line) for s in loaded.skipped])
        sets = loaded.sets
    if not sets:
        raise DataError("the file holds no sets (one JSON object per line, with \"id\" and \"entities\")", path=name)
    return ParsedUpload(name, "jsonl", sets)


def _column(header: Sequence[str], *names: str) -> int | None:
    normalized = [h.strip().lower() for h in header]
    for candidate in names:
        if candidate in normalized:
            return normalized.index(candidate)
    return None


def parse_csv(name: str, data: bytes) -> ParsedUpload:
    """Read ``set_id,text[,cluster]`` rows (optionally an ``id`` column) into sets."""
    text = _decode(name, data)
    dialect: Any = csv.excel_tab if Path(name).suffix.lower() == ".tsv" else csv.excel
    records = iter_csv_rows(text, dialect)
    try:
        header = next(records)[1]
    except StopIteration:
        raise DataError("the file is empty; the first line must be a header: set_id,text[,cluster]", path=name,
                        line=1) from None
    except DataError as exc:
        raise exc.located(path=name) from None
    set_col, text_col = _column(header, "set_id", "set"), _column(header, "text")
    cluster_col, id_col = _column(header, "cluster", "cluster_name", "label"), _column(header, "id", "entity_id")
    missing = [n for n, col in (("set_id", set_col), ("text", text_col)) if col is None]
    if missing:
        raise DataError(f"the header lacks the column(s) {', '.join(missing)}; it reads {','.join(header)!r} but "
                        "must name set_id and text (and optionally cluster)", path=name, line=1)
    assert set_col is not None and text_col is not None

    rows: dict[str, list[tuple[int, str, str, str | None]]] = {}
    problems: list[DataError] = []
    line = 2
    try:
        for line, row in records:
            try:
                if not any(cell.strip() for cell in row):
                    continue
                cells = [*row, *[""] * (len(header) - len(row))]
                for column, cell in zip(header, cells, strict=False):
                    check_text(cell, column.strip())
                set_id, entity_text = cells[set_col].strip(), cells[text_col].strip()
                if not set_id:
                    raise DataError("empty set id", line=line, field="set_id")
                if not entity_text:
                    raise DataError("empty text", line=line, field="text")
            except DataError as exc:
                problems.append(exc.located(path=name, line=line))
                continue
            entity_id = cells[id_col].strip() if id_col is not None else ""
            cluster = cells[cluster_col].strip() if cluster_col is not None else ""
            rows.setdefault(set_id, []).append((line, entity_text, entity_id, cluster or None))
    except DataError as exc:  # the CSV itself cannot be read on (e.g. a quote left open)
        problems.append(exc.located(path=name, line=line))

    _raise_all(name, problems)  # rows left out would make the checks of their sets misleading
    sets = []
    for set_id, members in rows.items():
        try:
            sets.append(_csv_set(name, set_id, members))
        except DataError as exc:
            problems.append(exc)
    _raise_all(name, problems)
    if not sets:
        raise DataError("the file has a header but no rows", path=name, line=2)
    return ParsedUpload(name, "csv", sets)


def _csv_set(name: str, set_id: str, members: list[tuple[int, str, str, str | None]]) -> EntitySet:
    first_line = members[0][0]
    if len(members) < 2:
        raise DataError(f"set {set_id!r} has only 1 entity; a set needs at least 2 to be clustered", path=name,
                        line=first_line, field="set_id")
    entities: list[Entity] = []
    seen: dict[str, int] = {}
    for position, (line, text, entity_id, _cluster) in enumerate(members):
        entity_id = entity_id or f"e{position}"
        if entity_id in seen:
            raise DataError(f"entity id {entity_id!r} appears twice in set {set_id!r} (also line {seen[entity_id]})",
                            path=name, line=line, field="id")
        seen[entity_id] = line
        entities.append(Entity(entity_id, text))
    labelled = [m for m in members if m[3] is not None]
    if not labelled:
        return EntitySet(set_id, entities)
    if len(labelled) != len(members):
        line = next(m[0] for m in members if m[3] is None)
        raise DataError(f"no cluster, but other rows of set {set_id!r} have one; give every row of a labelled set "
                        "a cluster, or none", path=name, line=line, field="cluster")
    names: list[str] = []
    clusters: list[list[int]] = []
    for position, (_line, _text, _id, cluster) in enumerate(members):
        assert cluster is not None
        if cluster not in names:
            names.append(cluster)
            clusters.append([])
        clusters[names.index(cluster)].append(position)
    return EntitySet(set_id, entities, clusters, names)


def parse_text(text: str, *, source: str = "pasted text", prefix: str = "set") -> ParsedUpload:
    """One entity a line, one or more blank lines between sets; sets are named ``{prefix}-1``, ``{prefix}-2``, ..."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            if blocks[-1]:
                blocks.append([])
            continue
        try:
            check_text(line)
        except DataError as exc:
            raise exc.located(path=source, line=number) from None
        blocks[-1].append((number, line))
    blocks = [b for b in blocks if b]
    if not blocks:
        raise DataError("no entities: write one entity a line, and a blank line between sets", path=source)
    width = max(1, len(str(len(blocks))))
    sets: list[EntitySet] = []
    for k, block in enumerate(blocks, start=1):
        if len(block) < 2:
            raise DataError(f"this set has only 1 entity ({block[0][1]!r}); a set needs at least 2. Put blank lines "
                            "only between sets", path=source, line=block[0][0])
        sets.append(EntitySet(f"{prefix}-{k:0{width}d}", [Entity(f"e{i}", t) for i, (_n, t) in enumerate(block)]))
    return ParsedUpload(source, "text", sets)


def default_dataset_name(source: str) -> str:
    """A dataset name suggested by an upload's file name ("toys-sets.jsonl" -> "toys-sets")."""
    stem = Path(source).stem if source != "pasted text" else "pasted sets"
    return re.sub(r"\s+", " ", stem).strip() or "uploaded sets"


def preview_rows(sets: Sequence[EntitySet], limit: int = 200) -> list[dict[str, Any]]:
    """One row per set for the preview table."""
    rows = []
    for entity_set in sets[:limit]:
        rows.append({
            "set": entity_set.id,
            "entities": len(entity_set),
            "clusters": len(entity_set.clusters) if entity_set.clusters is not None else None,
            "split": entity_set.extra.get("split", ""),
            "texts": " · ".join(entity_set.texts[:6]) + (" …" if len(entity_set) > 6 else ""),
        })
    return rows
