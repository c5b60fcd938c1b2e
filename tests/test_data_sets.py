"""Loading entity sets: every validation error names file, line and field, and nothing is dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cactus.data import DataError, EntitySet, read_dataset, read_sets, write_sets

GOOD = {"id": "s1", "entities": [{"id": "a", "text": "glue stick"}, {"id": "b", "text": "hot glue gun"},
                                 {"id": "c", "text": "candle wick"}],
        "clusters": [[0, 1], [2]], "cluster_names": ["Glue", "Candles"]}


def write_lines(path: Path, *objs) -> Path:
    with path.open("wb") as handle:
        for obj in objs:
            handle.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n")
    return path


def with_(**changes):
    return {**GOOD, **changes}


def test_round_trip_keeps_unknown_fields(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", with_(source="shop-7"))
    loaded = read_sets(path)
    assert loaded.skipped == []
    entity_set = loaded.sets[0]
    assert entity_set.texts == ["glue stick", "hot glue gun", "candle wick"]
    assert entity_set.labels().tolist() == [0, 0, 1]
    write_sets(tmp_path / "out.jsonl", [entity_set])
    assert json.loads((tmp_path / "out.jsonl").read_text()) == with_(source="shop-7")


def test_unlabelled_set_is_allowed_unless_labels_required(tmp_path):
    unlabelled = {"id": "u", "entities": GOOD["entities"]}
    path = write_lines(tmp_path / "s.jsonl", unlabelled)
    assert not read_sets(path).sets[0].is_labelled
    with pytest.raises(DataError, match=r"s.jsonl:1: field 'clusters': the set is unlabelled"):
        read_sets(path, require_labels=True)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (with_(entities=[{"id": "a", "text": "  "}, {"id": "b", "text": "x"}], clusters=[[0, 1]],
               cluster_names=["A"]), "field 'entities[0].text': empty text"),
        (with_(entities=[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], clusters=[[0, 1]],
               cluster_names=["A"]), "field 'entities[1].id': duplicate entity 'a' (also entities[0])"),
        (with_(clusters=[[0, 1], [3]]),
         "field 'clusters[1][0]': entity index 3 out of range: the set has 3 entities (0..2)"),
        (with_(clusters=[[0, 1], [1, 2]]), "field 'clusters[1][0]': entity 1 is in two clusters (also clusters[0])"),
        (with_(clusters=[[0, 1]], cluster_names=["Glue"]), "field 'clusters': entities in no cluster: 2"),
        (with_(entities=[{"id": "a", "text": "x"}], clusters=[[0]], cluster_names=["A"]),
         "field 'entities': a set needs at least 2 entities to be clustered, got 1"),
        (with_(cluster_names=["only one"]), "field 'cluster_names': 1 names for 2 clusters"),
        (with_(clusters=[[0, "1"], [2]]), "field 'clusters[0][1]': expected an entity index (integer), got '1'"),
        (with_(id=7), "field 'id': expected a string, got int"),
        (with_(similarity=[[1.0, 0.5], [0.5, 1.0]]), "field 'similarity': expected an 3 x 3 matrix"),
    ],
)
def test_invalid_set_message_names_file_line_and_field(tmp_path, obj, message):
    path = write_lines(tmp_path / "sets.jsonl", with_(id="ok"), obj)
    with pytest.raises(DataError) as info:
        read_sets(path)
    assert str(info.value) == f"{path}:2: {message}" or str(info.value).startswith(f"{path}:2: {message}")
    assert info.value.line == 2


def test_invalid_utf8_names_the_line_and_byte(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", GOOD, b'{"id": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"s.jsonl:2: invalid UTF-8 at byte 12 of the line"):
        read_sets(path)


def test_invalid_json_and_duplicate_set_ids(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", GOOD, b'{"id": "s2", "entities": [\n')
    with pytest.raises(DataError, match=r"s.jsonl:2: invalid JSON"):
        read_sets(path)
    path = write_lines(tmp_path / "d.jsonl", GOOD, GOOD)
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'id': duplicate set id 's1' \(first on line 1\)"):
        read_sets(path)


def test_skip_invalid_reports_every_skipped_line_and_keeps_the_rest(tmp_path):
    path = write_lines(
        tmp_path / "s.jsonl", GOOD, b"\xff\xfe\n", with_(id="s2", clusters=[[0]]), b"\n", with_(id="s3"), b"[1]\n"
    )
    loaded = read_sets(path, skip_invalid=True)
    assert [s.id for s in loaded.sets] == ["s1", "s3"]
    assert [(s.line, s.reason.split(":")[0]) for s in loaded.skipped] == [
        (2, "invalid UTF-8 at byte 1 of the line (b'\\xff'); save the file as UTF-8"),
        (3, "field 'clusters'"),
        (6, "expected a JSON object per line, got list"),
    ]
    assert str(loaded.skipped[1]).startswith(f"skipped {path}:3: field 'clusters': entities in no cluster")


def test_missing_file_and_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_sets(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="dataset folder not found"):
        read_dataset(tmp_path / "nothing")
    write_lines(tmp_path / "train.jsonl", GOOD)
    with pytest.raises(DataError, match=r"dataset folder lacks val\.jsonl, test\.jsonl"):
        read_dataset(tmp_path)
    write_lines(tmp_path / "val.jsonl", GOOD)
    (tmp_path / "test.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"test.jsonl: no sets in this split"):
        read_dataset(tmp_path)


def test_with_labels_builds_clusters_in_first_member_order():
    entity_set = read_sets_from_obj(GOOD)
    relabelled = entity_set.with_labels([5, 2, 5], names=["x", "y"])
    assert relabelled.clusters == [[0, 2], [1]]
    assert relabelled.labels().tolist() == [0, 1, 0]


def read_sets_from_obj(obj) -> EntitySet:
    from cactus.data.sets import parse_entity_set

    return parse_entity_set(obj)
