"""Crash-safe output of a long run: records go to a partial file that becomes the output only when complete.

``OUT.jsonl`` is written as ``OUT.jsonl.partial`` (a line per set, flushed after every window). ``OUT.parquet`` is
written as a folder ``OUT.parquet.partial/`` of numbered parts of 4,096 sets, each renamed into place when written.
``resume=True`` keeps the complete records of a partial output (a cut-off last line is dropped) and says how many
there are, so the run can skip that many input sets. :meth:`PartialOutput.finish` renames (JSONL) or joins the
parts (Parquet) into ``OUT``; an existing ``OUT`` is replaced only then.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from cactus.data.errors import DataError
from cactus.data.set_files import file_format, load_pyarrow, parquet_row, parquet_schema
from cactus.data.sets import EntitySet
from cactus.files import plain_mode

PART_ROWS = 4096  # sets per Parquet part


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


class PartialOutput:
    """Append clustered sets to the partial form of ``out``; see the module docstring."""

    def __init__(self, out: str | Path, *, resume: bool = False) -> None:
        self.out = Path(out)
        self.format = file_format(self.out)
        self.partial = partial_path(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.done = 0  # complete records kept from an earlier run
        self.written = 0  # records appended by this run
        self._rows: list[dict] = []
        if self.format == "jsonl":
            self._open_jsonl(resume)
        else:
            self._open_parquet(resume)

    # ------------------------------------------------------------------ JSONL
    def _open_jsonl(self, resume: bool) -> None:
        if resume and self.partial.is_file():
            with open(self.partial, "rb+") as handle:
                data = handle.read()
                keep = data.rfind(b"\n") + 1  # drop a line cut off by the crash
                handle.truncate(keep)
                self.done = data.count(b"\n", 0, keep)
        elif self.partial.exists():
            _remove(self.partial)
        self._handle = open(self.partial, "a", encoding="utf-8")  # noqa: SIM115 - closed by finish/close

    # ---------------------------------------------------------------- Parquet
    def _open_parquet(self, resume: bool) -> None:
        _, pq = load_pyarrow()
        if self.partial.exists() and not (resume and self.partial.is_dir()):
            _remove(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        for stale in self.partial.glob(".*.tmp"):
            stale.unlink()
        self._parts = sorted(self.partial.glob("part-*.parquet"))
        self.done = sum(pq.ParquetFile(p).metadata.num_rows for p in self._parts)

    def _flush_part(self) -> None:
        if not self._rows:
            return
        pa, pq = load_pyarrow()
        part = self.partial / f"part-{len(self._parts):06d}.parquet"
        tmp = self.partial / f".{part.name}.tmp"
        pq.write_table(pa.Table.from_pylist(self._rows, schema=parquet_schema()), tmp)
        os.replace(tmp, part)
        self._parts.append(part)
        self._rows = []

    # ------------------------------------------------------------------ both
    def write(self, entity_set: EntitySet) -> None:
        if self.format == "jsonl":
            self.write_record(json.dumps(entity_set.to_json(), ensure_ascii=False))
        else:
            self.write_record(parquet_row(entity_set))

    def write_record(self, record: str | dict) -> None:
        """Append a set already serialised: its JSON line without the newline (JSONL) or its Parquet row."""
        if self.format == "jsonl":
            self._handle.write(record + "\n")
        else:
            self._rows.append(record)
            if len(self._rows) >= PART_ROWS:
                self._flush_part()
        self.written += 1

    def flush(self) -> None:
        """Make what was written so far survive a crash (JSONL; Parquet keeps up to a part's rows in memory)."""
        if self.format == "jsonl":
            self._handle.flush()

    def close(self) -> None:
        """Stop writing and keep the partial output (for ``--resume``)."""
        if self.format == "jsonl":
            self._handle.close()
        else:
            self._flush_part()

    def abandon(self) -> int:
        """Close after a failed run: keep the partial output for ``--resume`` when it holds sets, else remove it.

        Returns the number of sets kept.
        """
        self.close()
        kept = self.done + self.written
        if kept == 0:
            _remove(self.partial)
        return kept

    def finish(self) -> int:
        """Turn the partial output into ``out``; returns the number of sets it holds. Refuses an empty output."""
        self.close()
        total = self.done + self.written
        if total == 0:
            _remove(self.partial)
            raise DataError("no valid sets to write: the input is empty or every set was invalid; "
                            f"{self.out} was left as it was", path=self.out)
        if self.format == "jsonl":
            with open(self.partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(self.partial, plain_mode(self.out))
            os.replace(self.partial, self.out)
            return total
        _, pq = load_pyarrow()
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        try:
            with pq.ParquetWriter(tmp, parquet_schema()) as writer:
                for part in self._parts:  # one part in memory at a time
                    writer.write_table(pq.read_table(part, schema=parquet_schema()))
            os.chmod(tmp, plain_mode(self.out))
            os.replace(tmp, self.out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        shutil.rmtree(self.partial)
        return total


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)

