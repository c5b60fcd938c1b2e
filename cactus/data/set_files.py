"""Sets files read and written one set at a time: JSONL or Parquet, chosen by extension.

Parquet holds one row per set: ``id`` (string), ``entities`` (list of ``{id, text}`` structs), ``clusters`` (list of
lists of entity indices, null when unlabelled), ``cluster_names`` and ``similarity`` (null when absent) and
``extra`` (the set's other keys as a JSON object string). Readers yield sets in file order and never hold more than
one Parquet record batch; writers append and can be resumed (see :mod:`cactus.inference.streaming`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cactus.data.errors import DataError, SkippedLine
from cactus.data.hygiene import check_json
from cactus.data.jsonl import iter_text_lines, parse_json_line
from cactus.data.sets import EntitySet, parse_entity_set

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
PARQUET_BATCH = 1024  # rows per record batch read


def file_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"parquet"`` from the file's extension; a DataError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"unknown sets file type {suffix or '(no extension)'!r}: use .jsonl or .parquet", path=path)
    return FORMATS[suffix]


def load_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with streamlit and is a dependency
        raise DataError(f"Parquet needs pyarrow ({exc}); install it with `pip install pyarrow`") from None
    return pa, pq


def parquet_schema():
    pa, _ = load_pyarrow()
    entity = pa.struct([("id", pa.string()), ("text", pa.string())])
    return pa.schema([
        ("id", pa.string()),
        ("entities", pa.list_(entity)),
        ("clusters", pa.list_(pa.list_(pa.int64()))),
        ("cluster_names", pa.list_(pa.string())),
        ("similarity", pa.list_(pa.list_(pa.float64()))),
        ("extra", pa.string()),
    ])


def parquet_row(entity_set: EntitySet) -> dict[str, Any]:
    """A set as a row of :func:`parquet_schema`."""
    row = entity_set.to_json()
    known = {k: row.pop(k, None) for k in ("id", "entities", "clusters", "cluster_names", "similarity")}
    return {**known, "extra": json.dumps(row, ensure_ascii=False) if row else None}


def _from_parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    obj = {k: v for k, v in row.items() if v is not None and k != "extra"}
    if row.get("extra"):
        extra = json.loads(row["extra"])
        if not isinstance(extra, dict):
            raise DataError("expected a JSON object", field="extra")
        obj.update(extra)
    return check_json(obj)  # NUL characters pass Parquet's UTF-8 check but not PostgreSQL or the tokenizer


def iter_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line or row number, decoded object or DataError)`` for every record of a sets file, in order."""
    if file_format(path) == "jsonl":
        for number, text in iter_text_lines(path):
            if isinstance(text, DataError):
                yield number, text
                continue
            try:
                yield number, parse_json_line(text, path=path, line=number)
            except DataError as exc:
                yield number, exc
        return
    _, pq = load_pyarrow()
    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise DataError(f"not a readable Parquet file: {exc}", path=path) from None
    missing = {"id", "entities"} - set(reader.schema_arrow.names)
    if missing:
        raise DataError(f"Parquet sets need the columns id and entities; missing: {', '.join(sorted(missing))}",
                        path=path)
    number = 0
    for batch in reader.iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            try:
                yield number, _from_parquet_row(row)
            except (DataError, ValueError) as exc:
                yield number, exc if isinstance(exc, DataError) else DataError(f"invalid extra: {exc}")


def count_records(path: str | Path) -> int:
    """How many records the file holds (lines of JSONL, rows of Parquet), cheaply, for a progress bar's total."""
    if file_format(path) == "parquet":
        _, pq = load_pyarrow()
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return 0
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def iter_sets(path: str | Path, *, require_labels: bool = False,
              on_skip: Callable[[SkippedLine], None] | None = None) -> Iterator[EntitySet]:
    """Validated sets of a JSONL or Parquet file, one at a time.

    An invalid record raises ``path:line: field: reason``, or with ``on_skip`` is reported to it and left out.
    Set ids are not checked for uniqueness across the file (that would take memory growing with the file).
    """
    for number, obj in iter_records(path):
        try:
            if isinstance(obj, DataError):
                raise obj
            entity_set = parse_entity_set(obj, require_labels=require_labels)
        except DataError as exc:
            located = exc.located(path=path, line=number)
            if on_skip is None:
                raise located from None
            on_skip(SkippedLine(str(path), number, located.describe()))
            continue
        yield entity_set
