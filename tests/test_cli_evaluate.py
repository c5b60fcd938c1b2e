"""``cactus evaluate``: scores by set id and entity id; missing sets are errors that name them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cactus.cli import main
from cactus.data import EntitySet, read_sets, write_sets
from cactus.data.sets import Entity
from cactus.evaluation.intervals import bootstrap_intervals, few_sets_warning


def make_set(set_id: str, labels: list[int], order: list[int] | None = None) -> EntitySet:
    entities = [Entity(f"{set_id}-e{i}", f"text {i}") for i in range(len(labels))]
    entity_set = EntitySet(set_id, entities).with_labels(labels)
    if order is not None:  # the same entities listed in another order
        entity_set = EntitySet(set_id, [entities[i] for i in order]).with_labels([labels[i] for i in order])
    return entity_set


def test_evaluate_matches_sets_and_entities_by_id(tmp_path, capsys):
    gold = [make_set("a", [0, 0, 1, 1]), make_set("b", [0, 1, 2])]
    pred = [make_set("b", [0, 1, 2], order=[2, 0, 1]), make_set("a", [0, 0, 0, 1])]
    write_sets(tmp_path / "gold.jsonl", gold)
    write_sets(tmp_path / "pred.jsonl", pred)
    assert main(["evaluate", str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl"),
                 "--json", str(tmp_path / "scores.json"), "--per-set", str(tmp_path / "per_set.jsonl")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert set(scores) == {"sets", "NMI", "AMI", "RI", "ARI", "F1", "ci95"} and scores["sets"] == 2
    # set b is perfect despite the reordering; set a: RI by hand = 3 / 6
    assert scores["RI"] == pytest.approx((1 + 0.5) / 2)
    assert scores["ci95"]["RI"] == [pytest.approx(0.5), pytest.approx(1.0)]  # resampling two sets: a,a .. b,b
    per_set = [json.loads(line) for line in (tmp_path / "per_set.jsonl").read_text().splitlines()]
    assert [row["id"] for row in per_set] == ["a", "b"] and per_set[1]["ARI"] == pytest.approx(1.0)
    printed = capsys.readouterr()
    assert "| pred.jsonl |" in printed.out and "95% CI over 2 sets (bootstrap): NMI " in printed.out
    assert "has only 2 set(s); averages over fewer than 30 sets" in printed.err


def test_intervals_narrow_with_more_sets_and_hold_the_mean():
    rng = np.random.default_rng(0)
    rows = [{"NMI": v, "AMI": v, "RI": v, "ARI": v, "F1": v} for v in rng.uniform(0.2, 0.9, size=400)]
    wide, narrow = bootstrap_intervals(rows[:20]), bootstrap_intervals(rows)
    for name in ("NMI", "ARI"):
        assert wide[name][0] < np.mean([r[name] for r in rows[:20]]) < wide[name][1]
        assert narrow[name][1] - narrow[name][0] < (wide[name][1] - wide[name][0]) / 2
    assert bootstrap_intervals(rows[:1]) is None
    assert few_sets_warning(30, "test") is None and "only 29 set(s)" in few_sets_warning(29, "the test split")


def test_a_set_missing_from_either_file_is_named(tmp_path, capsys):
    write_sets(tmp_path / "gold.jsonl", [make_set("a", [0, 1]), make_set("b", [0, 1])])
    write_sets(tmp_path / "pred.jsonl", [make_set("a", [0, 1]), make_set("c", [0, 1])])
    assert main(["evaluate", str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl")]) == 2
    assert "1 gold sets have no prediction in" in capsys.readouterr().err
    write_sets(tmp_path / "pred.jsonl", [make_set("a", [0, 1]), make_set("b", [0, 1]), make_set("c", [0, 1])])
    assert main(["evaluate", str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "1 predicted sets are not in" in err and err.rstrip().endswith(": c")
    assert len(read_sets(tmp_path / "pred.jsonl").sets) == 3  # the input is left as it was


def test_prediction_with_other_entities_is_refused(tmp_path, capsys):
    write_sets(tmp_path / "gold.jsonl", [make_set("a", [0, 1, 1])])
    wrong = EntitySet("a", [Entity("a-e0", "x"), Entity("zzz", "y"), Entity("a-e2", "z")]).with_labels([0, 1, 1])
    write_sets(tmp_path / "pred.jsonl", [wrong])
    assert main(["evaluate", str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl")]) == 2
    assert "does not have the gold set's entities: missing entities a-e1" in capsys.readouterr().err
