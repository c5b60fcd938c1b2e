"""Partitions and the edits a person makes to them (pure functions, no database)."""

from __future__ import annotations

import pytest

from db.errors import EditError
from db.partition import Create, Delete, Merge, Move, Partition, Rename, Split, edit_from_json

BASE = Partition(((0, 1), (2, 3, 4), (5,)), ("Glue", "Candles", "Wick"))


def test_build_validates_the_sets_format():
    assert Partition.build([[0, 1], [2]], size=3) == Partition(((0, 1), (2,)), ("", ""))
    assert Partition.build([[1], [0]]).labels() == [1, 0]
    with pytest.raises(EditError, match="entity 1 is in two clusters"):
        Partition.build([[0, 1], [1]])
    with pytest.raises(EditError, match=r"entities \[1\] are in no cluster"):
        Partition.build([[0], [2]])
    with pytest.raises(EditError, match="cluster 1 is empty"):
        Partition.build([[0], []])
    with pytest.raises(EditError, match="2 names for 1 clusters"):
        Partition.build([[0, 1]], ["a", "b"])
    with pytest.raises(EditError, match="covers 2 entities but the set has 3"):
        Partition.build([[0, 1]], size=3)
    with pytest.raises(EditError, match="not an entity position"):
        Partition.build([[0, -1]])


@pytest.mark.parametrize(("edit", "clusters", "names"), [
    (Move(entity=0, to=1), ((1,), (0, 2, 3, 4), (5,)), ("Glue", "Candles", "Wick")),
    (Move(entity=5, to=1), ((0, 1), (2, 3, 4, 5)), ("Glue", "Candles")),  # emptied cluster removed
    (Move(entity=2, to=None, name="New"), ((0, 1), (3, 4), (5,), (2,)), ("Glue", "Candles", "Wick", "New")),
    (Merge(clusters=(2, 0)), ((2, 3, 4), (0, 1, 5)), ("Candles", "Wick")),  # into the first named
    (Merge(clusters=(0, 1, 2), name="All"), ((0, 1, 2, 3, 4, 5),), ("All",)),
    (Split(cluster=1, entities=(4, 2), name="Tea"), ((0, 1), (3,), (5,), (2, 4)), ("Glue", "Candles", "Wick", "Tea")),
    (Rename(cluster=2, name="  Wicks "), ((0, 1), (2, 3, 4), (5,)), ("Glue", "Candles", "Wicks")),
    (Create(entities=(1, 5), name="Mix"), ((0,), (2, 3, 4), (1, 5)), ("Glue", "Candles", "Mix")),
    (Delete(cluster=1), ((0, 1), (2,), (3,), (4,), (5,)), ("Glue", "", "", "", "Wick")),
])
def test_each_edit(edit, clusters, names):
    after = edit.apply(BASE)
    assert (after.clusters, after.names) == (clusters, names)
    assert after.size == BASE.size
    assert edit_from_json(edit.action, edit.params()) == edit  # what the log stores replays the same edit


def test_no_op_edits_return_the_same_partition():
    assert Move(entity=0, to=0).apply(BASE) == BASE
    assert Rename(cluster=0, name="Glue").apply(BASE) == BASE


@pytest.mark.parametrize(("edit", "message"), [
    (Move(entity=9, to=0), "no entity 9: the set has 6 entities"),
    (Move(entity=0, to=3), r"no cluster 3: the clustering has 3 clusters \(0..2\)"),
    (Merge(clusters=(1, 1)), "at least two different clusters"),
    (Split(cluster=1, entities=(2, 3, 4)), "leave at least one entity behind"),
    (Split(cluster=1, entities=(0,)), r"entities \[0\] are not in cluster 1"),
    (Create(entities=()), "select at least one entity"),
    (Create(entities=(1, 1)), "selected twice"),
    (Rename(cluster=0, name="x" * 201), "at most 200 characters"),
    (Delete(cluster=-1), "no cluster -1"),
])
def test_bad_edits_say_what_is_wrong(edit, message):
    with pytest.raises(EditError, match=message):
        edit.apply(BASE)


def test_unknown_logged_actions_are_refused():
    with pytest.raises(EditError, match="unknown edit action 'explode'"):
        edit_from_json("explode", {})
    with pytest.raises(EditError, match="bad parameters for move"):
        edit_from_json("move", {"entity": 1, "colour": "red"})
