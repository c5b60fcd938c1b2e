"""Find and remove the work folders a store no longer needs: those of failed, cancelled or deleted jobs.

A job's folder is ``<jobs dir>/<id>-<uid>``. A folder is left over when its job failed or was cancelled, or when no
job of this store has its uid (the job was deleted, or the folder belongs to another store or an earlier one that
was reset). A folder that holds a registered model's checkpoint is always kept.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import JobRow, ModelRow


@dataclass(frozen=True)
class Leftover:
    """A folder ``cactus gc`` would remove, why, and how many bytes it holds."""

    path: Path
    reason: str
    size: int


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def leftovers(session: Session, jobs_dir: Path) -> list[Leftover]:
    """The folders under ``jobs_dir`` that no live job or registered model needs, oldest job first."""
    if not jobs_dir.is_dir():
        return []
    status = dict(session.execute(select(JobRow.uid, JobRow.status)).all())
    checkpoints = [Path(c).resolve() for c in session.scalars(select(ModelRow.checkpoint))]
    found: list[Leftover] = []
    for folder in sorted(jobs_dir.iterdir(), key=lambda p: p.name):
        number, _, uid = folder.name.partition("-")
        if not folder.is_dir() or not number.isdigit() or len(uid) != 32:
            continue  # not a job folder of ours: never touched
        if any(folder.resolve() in (c, *c.parents) for c in checkpoints):
            continue
        state = status.get(uid)
        if state is None:
            reason = "no job of this store has its id (deleted, or another store's)"
        elif state in ("failed", "cancelled"):
            reason = f"job {number} {state}"
        else:
            continue
        found.append(Leftover(folder, reason, folder_size(folder)))
    return found


def remove(found: list[Leftover]) -> int:
    """Delete the folders; returns the bytes freed."""
    for item in found:
        shutil.rmtree(item.path)
    return sum(item.size for item in found)
