"""The one error type for bad input files, and the record of a line skipped on request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cactus.errors import CactusError


class DataError(CactusError, ValueError):
    """Invalid input data, located by file, line and field.

    The message reads ``path:line: field: reason`` so that a user can jump to the spot.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
        parts = [p for p in (where, f"field '{self.field}'" if self.field else "") if p]
        return ": ".join([*parts, self.reason])

    def describe(self) -> str:
        """The field and reason without the location (for reports that list locations apart)."""
        return f"field '{self.field}': {self.reason}" if self.field else self.reason

    def located(self, *, path: str | Path | None = None, line: int | None = None) -> DataError:
        """The same error with the file and line filled in where they were unknown."""
        return DataError(
            self.reason,
            path=self.path if self.path is not None else path,
            line=self.line if self.line is not None else line,
            field=self.field,
        )


@dataclass(frozen=True)
class SkippedLine:
    """A line left out by ``skip_invalid`` loading, with the reason a user sees."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}:{self.line}: {self.reason}"
