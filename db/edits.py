"""The human clustering of a set and its append-only edit log, with undo and redo.

Design. Every change to a set's human clustering appends one :class:`db.models.EditRow`, numbered
``seq`` = 1, 2, ... within the set, holding the action, its parameters, who made it, when, and the
clustering before and after it. Rows are never updated or deleted (only with their set). The
current human clustering is also kept in a ``clusterings`` row (source "human") so that reads are one
query; :func:`rebuild_human_clustering` replays the log and must give the same partition.

Undo and redo are log entries too, not a cursor: ``undo`` appends an entry whose ``target_seq`` is the
edit it reverts (its "after" is that edit's "before"), ``redo`` appends one that re-applies an undone
edit. Which edit undo or redo acts on next follows from replaying the actions in order, like an
editor's two stacks:

- an edit (accept, move, merge, split, rename, create, delete) is pushed on the undo stack and clears
  the redo stack (a new edit after an undo drops the undone branch);
- undo pops the undo stack onto the redo stack; redo pops it back.

So the log keeps everything that happened, including who undid what, and undo works step by step back
to before the first accept (when the set has no human clustering again).

Edits that change nothing (moving an entity to its own cluster, renaming to the same name) are not
logged and do not clear the redo stack.

Concurrency: each change locks the set row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write
transaction does the same), so two people editing one set take turns. Pass ``expected_head`` (the
:attr:`db.views.SetDetail.edit_head` that the page showed) to refuse an edit made on a stale view. The
write is conditional on that head in one transaction on both databases: after the lock, the head and the
human clustering are read afresh (never from rows the session loaded before the lock), and the new entry
takes ``seq`` = head + 1, unique per set, so a write that raced past the lock anyway fails on commit as a
:class:`db.errors.ConflictError` instead of landing on a state its author did not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import ConflictError, EditError, NotFoundError
from db.models import ClusteringRow, EditRow, SetRow
from db.partition import Edit, Partition, edit_from_json
from db.types import utcnow
from db.views import ClusteringView, EditView

MAX_AUTHOR_LENGTH = 100
STATE_CHANGES = ("accept", "move", "merge", "split", "rename", "create", "delete")


@dataclass(frozen=True)
class EditStacks:
    """Where a set's edit log stands.

    Attributes:
        head: seq of the newest entry (0 when the log is empty).
        undo: seqs of the edits undo would revert, the next one last.
        redo: seqs of the undone edits redo would re-apply, the next one last.
    """

    head: int
    undo: tuple[int, ...]
    redo: tuple[int, ...]


def _stacks(entries: list[tuple[int, str, int | None]]) -> EditStacks:
    undo: list[int] = []
    redo: list[int] = []
    for seq, action, _target in entries:
        if action == "undo":
            redo.append(undo.pop())
        elif action == "redo":
            undo.append(redo.pop())
        else:
            undo.append(seq)
            redo.clear()
    return EditStacks(entries[-1][0] if entries else 0, tuple(undo), tuple(redo))


def edit_stacks(session: Session, set_id: int) -> EditStacks:
    """The undo and redo stacks of a set, from its log."""
    entries = session.execute(
        select(EditRow.seq, EditRow.action, EditRow.target_seq).where(EditRow.set_id == set_id).order_by(EditRow.seq)
    ).all()
    return _stacks(list(entries))


def _check_author(author: str) -> str:
    if not isinstance(author, str) or not author.strip():
        raise EditError("say who makes the edit (author): a user name")
    if len(author) > MAX_AUTHOR_LENGTH:
        raise EditError(f"author names are at most {MAX_AUTHOR_LENGTH} characters")
    return author.strip()


def _lock_set(session: Session, set_id: int, expected_head: int | None) -> tuple[SetRow, EditStacks]:
    row = session.execute(select(SetRow).where(SetRow.id == set_id).with_for_update()
                          .execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no set with id {set_id}")
    stacks = edit_stacks(session, set_id)
    if expected_head is not None and expected_head != stacks.head:
        raise ConflictError(f"set {row.name!r} was changed by someone else since you loaded it (edit "
                            f"{stacks.head}, you saw {expected_head}); reload the set and redo your change")
    return row, stacks


def _human_row(session: Session, set_id: int) -> ClusteringRow | None:
    # populate_existing: a row this session loaded before the set was locked may be stale (READ COMMITTED)
    return session.scalar(select(ClusteringRow).where(ClusteringRow.set_id == set_id, ClusteringRow.source == "human")
                          .execution_options(populate_existing=True))


def _record(session: Session, set_id: int, stacks: EditStacks, *, action: str, params: dict[str, Any],
            before: Partition | None, after: Partition | None, author: str, target_seq: int | None = None,
            ) -> ClusteringView | None:
    """Append a log entry and make the human clustering row match its "after"."""
    seq = stacks.head + 1
    session.add(EditRow(set_id=set_id, seq=seq, action=action, params=params,
                        before=before.to_json() if before is not None else None,
                        after=after.to_json() if after is not None else None,
                        target_seq=target_seq, author=author))
    try:
        session.flush()  # (set_id, seq) is unique: the entry lands right after the head it was based on, or fails
    except IntegrityError:
        raise ConflictError(f"set {set_id} was changed by someone else while this edit was made (edit {seq} "
                            "exists already); reload the set and redo your change") from None
    human = _human_row(session, set_id)
    if after is None:  # undone to before the first accept: no human clustering, so nothing reviewed either
        if human is not None:
            session.execute(delete(ClusteringRow).where(ClusteringRow.id == human.id))
        session.execute(update(SetRow).where(SetRow.id == set_id).values(reviewed=False, reviewed_at=None,
                                                                         reviewed_by=None))
        session.flush()
        return None
    if human is None:
        human = ClusteringRow(set_id=set_id, source="human", details={})
        session.add(human)
    human.clusters = after.to_json()["clusters"]
    human.names = list(after.names)
    human.producer = author
    human.details = {"edit_head": seq}
    human.updated_at = utcnow()
    session.flush()
    return ClusteringView.of(human)


def _current(session: Session, set_id: int) -> Partition | None:
    human = _human_row(session, set_id)
    return Partition.build(human.clusters, human.names) if human is not None else None


def accept_clustering(session: Session, set_id: int, clustering_id: int, *, author: str,
                      expected_head: int | None = None) -> ClusteringView:
    """Start (or restart) the human clustering from a teacher, model or reference clustering.

    Undo brings back what was there before.
    """
    author = _check_author(author)
    row, stacks = _lock_set(session, set_id, expected_head)
    source = session.get(ClusteringRow, clustering_id)
    if source is None or source.set_id != set_id:
        raise NotFoundError(f"set {row.name!r} has no clustering with id {clustering_id}")
    if source.source == "human":
        raise EditError("that is already the human clustering; edit it, or accept a teacher or model clustering")
    after = Partition.build(source.clusters, source.names, size=row.size)
    params = {"clustering_id": source.id, "source": source.source, "model_id": source.model_id}
    view = _record(session, set_id, stacks, action="accept", params=params, before=_current(session, set_id),
                   after=after, author=author)
    assert view is not None
    return view


def start_clustering(session: Session, set_id: int, *, author: str, together: bool = False,
                     expected_head: int | None = None) -> ClusteringView:
    """Start the human clustering from scratch: every entity alone, or all in one cluster (``together``)."""
    author = _check_author(author)
    row, stacks = _lock_set(session, set_id, expected_head)
    after = Partition(((*range(row.size),),), ("",)) if together else Partition.singletons(row.size)
    view = _record(session, set_id, stacks, action="accept",
                   params={"start": "one cluster" if together else "singletons"},
                   before=_current(session, set_id), after=after, author=author)
    assert view is not None
    return view


def apply_edit(session: Session, set_id: int, edit: Edit, *, author: str,
               expected_head: int | None = None) -> ClusteringView:
    """Apply a move, merge, split, rename, create or delete to the human clustering and log it.

    Args:
        edit: e.g. ``Move(entity=3, to=0)``; see :mod:`db.partition`.
        author: who makes it.
        expected_head: the ``edit_head`` the caller saw; the edit is refused if the set changed since.

    Returns:
        The new human clustering (cluster indices may have shifted: use it for the next edit).

    Raises:
        EditError: the set has no human clustering yet, or the edit does not fit it.
        ConflictError: ``expected_head`` is stale.
    """
    author = _check_author(author)
    row, stacks = _lock_set(session, set_id, expected_head)
    human = _human_row(session, set_id)
    if human is None:
        raise EditError(f"set {row.name!r} has no human clustering yet: accept the teacher's or the model's "
                        "clustering (or start from scratch) before editing")
    before = Partition.build(human.clusters, human.names)
    after = edit.apply(before)
    if after == before:
        return ClusteringView.of(human)
    view = _record(session, set_id, stacks, action=edit.action, params=edit.params(), before=before, after=after,
                   author=author)
    assert view is not None
    return view


def _entry(session: Session, set_id: int, seq: int) -> EditRow:
    return session.execute(select(EditRow).where(EditRow.set_id == set_id, EditRow.seq == seq)).scalar_one()


def undo(session: Session, set_id: int, *, author: str, expected_head: int | None = None) -> ClusteringView | None:
    """Revert the newest edit not yet undone; returns the human clustering (None when undone to nothing).

    Raises:
        ConflictError: nothing to undo.
    """
    author = _check_author(author)
    row, stacks = _lock_set(session, set_id, expected_head)
    if not stacks.undo:
        raise ConflictError(f"nothing to undo in set {row.name!r}")
    target = _entry(session, set_id, stacks.undo[-1])
    before = Partition.from_json(target.before) if target.before is not None else None
    return _record(session, set_id, stacks, action="undo", params={}, before=_current(session, set_id),
                   after=before, author=author, target_seq=target.seq)


def redo(session: Session, set_id: int, *, author: str, expected_head: int | None = None) -> ClusteringView | None:
    """Re-apply the newest undone edit; a new edit after an undo empties the redo stack.

    Raises:
        ConflictError: nothing to redo.
    """
    author = _check_author(author)
    row, stacks = _lock_set(session, set_id, expected_head)
    if not stacks.redo:
        raise ConflictError(f"nothing to redo in set {row.name!r}")
    target = _entry(session, set_id, stacks.redo[-1])
    after = Partition.from_json(target.after) if target.after is not None else None
    return _record(session, set_id, stacks, action="redo", params={}, before=_current(session, set_id),
                   after=after, author=author, target_seq=target.seq)


def edit_history(session: Session, set_id: int) -> list[EditView]:
    """A set's whole edit log, oldest first."""
    rows = session.scalars(select(EditRow).where(EditRow.set_id == set_id).order_by(EditRow.seq))
    return [EditView.of(row) for row in rows]


def rebuild_human_clustering(session: Session, set_id: int) -> Partition | None:
    """Replay a set's edit log from the start and return the human clustering it leads to.

    Accepts take their logged snapshot; every other edit is re-applied from its parameters; undo restores
    the "before" of its target; redo re-applies its target.

    Raises:
        EditError: the log is inconsistent (an entry's replay differs from the "after" it logged).
    """
    entries = {row.seq: row for row in session.scalars(
        select(EditRow).where(EditRow.set_id == set_id).order_by(EditRow.seq))}
    state: Partition | None = None

    def replay(entry: EditRow, state: Partition | None) -> Partition | None:
        if entry.action == "accept":
            return Partition.from_json(entry.after) if entry.after is not None else None
        if state is None:
            raise EditError(f"edit {entry.seq} ({entry.action}) of set {set_id} has no clustering to apply to")
        return edit_from_json(entry.action, entry.params).apply(state)

    for seq, entry in entries.items():
        if entry.action == "undo":
            target = entries[entry.target_seq]  # type: ignore[index]
            state = Partition.from_json(target.before) if target.before is not None else None
        elif entry.action == "redo":
            state = replay(entries[entry.target_seq], state)  # type: ignore[index]
        else:
            state = replay(entry, state)
        logged = Partition.from_json(entry.after) if entry.after is not None else None
        if state != logged:
            raise EditError(f"the edit log of set {set_id} is inconsistent at entry {seq} ({entry.action})")
    return state
