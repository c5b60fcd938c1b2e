"""An evaluation says when it gave sets a split and when a split is too small to lean on."""

from __future__ import annotations

from jobs.types.evaluate import split_notes


def test_new_splits_and_small_splits_are_said():
    notes = split_notes({"train": 8, "val": 2, "test": 2}, val_sets=2, scored_sets=2, split="test")
    assert notes[0].startswith("12 labelled set(s) had no split and were given one now (8 to train, 2 to val, 2 to "
                               "test)")
    assert any(n.startswith("the test split has only 2 set(s)") for n in notes)
    assert any(n.startswith("the validation split has only 2 set(s)") for n in notes)
    assert split_notes({}, val_sets=40, scored_sets=60, split="test") == []
