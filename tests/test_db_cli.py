"""``cactus import-sets`` and ``cactus export-labels`` on a real SQLite store."""

from __future__ import annotations

import json

from cactus.cli import main
from cactus.data import read_dataset, write_dataset, write_sets
from db import find_dataset, list_sets, session_scope
from db.session import dispose_engines
from tests.jobs_helpers import make_set, sample_sets


def test_import_then_export_for_training(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    labelled = [make_set(f"x{i}", ["a b", "c d", "e f"], [[0, 1], [2]], ["AC", "E"]) for i in range(10)]
    write_sets(tmp_path / "sets.jsonl", sample_sets() + labelled)
    assert main(["import-sets", str(tmp_path / "sets.jsonl"), "--dataset", "crafts", "--db", url]) == 0
    assert "dataset 'crafts' (id 1): 14 sets, 44 entities, 12 with reference labels" in capsys.readouterr().out
    assert main(["export-labels", "crafts", str(tmp_path / "out"), "--seed", "1", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "train 10, val 1, test 1 sets (labels: reference 12)" in out
    folder = read_dataset(tmp_path / "out")
    assert sum(len(folder[s]) for s in ("train", "val", "test")) == 12
    assert all(s.extra["label_source"] == "reference" for s in folder.train)
    dispose_engines()


def test_import_a_dataset_folder_keeps_its_splits(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    sets = sample_sets()
    write_dataset(tmp_path / "folder", {"train": sets[:2], "val": sets[2:3], "test": sets[3:]})
    assert main(["import-sets", str(tmp_path / "folder"), "--dataset", "d", "--noun", "queries", "--db", url]) == 0
    with session_scope(url, readonly=True) as session:
        dataset = find_dataset(session, "d")
        assert dataset.noun == "queries"
        assert [s.split for s in list_sets(session, dataset.id).items] == ["train", "train", "val", "test"]
    dispose_engines()


def test_bad_input_is_a_message_and_stores_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make_set("ok", ["a", "b"]).to_json()) + "\n{not json\n")
    assert main(["import-sets", str(path), "--dataset", "d", "--db", url]) == 2
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err
    write_sets(path, sample_sets())
    assert main(["import-sets", str(path), "--dataset", "d", "--db", url]) == 0
    assert main(["import-sets", str(path), "--dataset", "d", "--db", url]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["export-labels", "nope", str(tmp_path / "out"), "--db", url]) == 2
    assert "no dataset named 'nope'; known: d" in capsys.readouterr().err
    assert main(["export-labels", "d", str(tmp_path / "out"), "--db", url]) == 2
    assert "no labelled sets in" in capsys.readouterr().err  # 2 labelled sets cannot fill train, val and test
    dispose_engines()
