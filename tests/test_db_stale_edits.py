"""An edit made on a stale view of a set is refused on both databases, even when another edit commits while the
view is being read (issue 12: on PostgreSQL the clusterings and the edit head were read in two statements under
READ COMMITTED, so a commit in between paired the old clustering with the new head and a stale edit went through)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from db import (
    ConflictError,
    Move,
    apply_edit,
    create_dataset,
    get_set,
    import_sets,
    list_sets,
    rebuild_human_clustering,
    session_scope,
    start_clustering,
)
from db.session import get_engine
from tests.jobs_helpers import make_set


def one_set(url: str) -> int:
    with session_scope(url) as session:
        dataset = create_dataset(session, "race", "products")
        import_sets(session, dataset.id, [make_set("s", ["glue", "tape", "pens", "ink"])])
        set_id = list_sets(session, dataset.id).items[0].id
        start_clustering(session, set_id, author="ana")  # every entity alone: 4 clusters
    return set_id


@pytest.mark.parametrize("readonly", [True, False], ids=["readonly", "read-write"])
def test_a_commit_between_the_reads_of_a_set_never_lets_a_stale_edit_through(store_url, readonly):
    if not readonly and store_url.startswith("sqlite"):
        pytest.skip("a read-write SQLite session holds the write lock from its BEGIN IMMEDIATE: no edit can "
                    "commit while it reads")
    set_id = one_set(store_url)
    engine = get_engine(store_url)
    fired = []

    def concurrent_edit(conn, cursor, statement, parameters, context, executemany):
        # right after the reader's first statement on the edit log or the clusterings, another user edits
        if fired or ("FROM edits" not in statement and "FROM clusterings" not in statement):
            return
        fired.append(statement)
        with session_scope(store_url) as other:
            apply_edit(other, set_id, Move(entity=0, to=1), author="bo")

    event.listen(engine, "after_cursor_execute", concurrent_edit)
    try:
        with session_scope(store_url, readonly=readonly) as session:
            seen = get_set(session, set_id)
    finally:
        event.remove(engine, "after_cursor_execute", concurrent_edit)
    assert fired, "the concurrent edit did not run"
    with session_scope(store_url, readonly=True) as session:
        now = get_set(session, set_id)
    missed_clustering = seen.human.clusters != now.human.clusters
    missed_head = seen.edit_head != now.edit_head
    if readonly:  # one snapshot: all of the set as it was, or all of it as it is
        assert missed_clustering == missed_head
    if missed_clustering:  # never the old clustering with the new head: an edit made on it must be refused
        assert missed_head
        with pytest.raises(ConflictError, match="changed by someone else"), session_scope(store_url) as session:
            apply_edit(session, set_id, Move(entity=3, to=0), author="ana", expected_head=seen.edit_head)


def test_an_edit_after_a_read_in_the_same_transaction_applies_to_the_clustering_as_it_is_now(store_url):
    """The set is read, then edited, in one read-write session while another user's edit commits in between
    (PostgreSQL, READ COMMITTED): the edit must apply to the clustering after that commit, not to the copy the
    session read first, or the other user's edit would be silently undone and the log would not replay."""
    if store_url.startswith("sqlite"):
        pytest.skip("a read-write SQLite session holds the write lock from its first read: no edit commits between")
    set_id = one_set(store_url)
    with session_scope(store_url) as session:
        seen = get_set(session, set_id)
        with session_scope(store_url) as other:
            apply_edit(other, set_id, Move(entity=0, to=1), author="bo")  # {0,1} {2} {3}
        # a stale head is refused ...
        with pytest.raises(ConflictError, match="changed by someone else"), session.begin_nested():
            apply_edit(session, set_id, Move(entity=3, to=1), author="ana", expected_head=seen.edit_head)
        # ... and without one the edit applies to what is there now
        apply_edit(session, set_id, Move(entity=3, to=1), author="ana")
    with session_scope(store_url, readonly=True) as session:
        now = get_set(session, set_id)
        assert sorted(map(sorted, now.human.clusters)) == [[0, 1], [2, 3]]
        assert rebuild_human_clustering(session, set_id).clusters == now.human.clusters
