"""The Data page on a real store: upload (JSONL, CSV, pasted text), validation messages, preview, saving all or
nothing, the demo, deleting a dataset."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from app.bootstrap import DEMO_DATASET
from db import get_set, list_datasets, list_sets, session_scope
from db.models import SetRow
from jobs.queue import list_jobs
from tests.app_helpers import open_app, texts_of, tiny_sets_jsonl


def datasets(url: str):
    with session_scope(url, readonly=True) as session:
        return list_datasets(session)


def set_count(url: str) -> int:
    with session_scope(url, readonly=True) as session:
        return session.scalar(select(func.count()).select_from(SetRow))


def upload(at, name: str, data: bytes):
    at.file_uploader[0].upload(name, data).run()
    return at


def test_upload_preview_and_save_a_sets_file(app_env, tmp_path):
    at = open_app("data")
    assert "Choose a file to preview its sets" in texts_of(at)
    upload(at, "tiny-sets.jsonl", tiny_sets_jsonl(tmp_path / "ds"))
    page = texts_of(at)
    assert "Preview of tiny-sets.jsonl" in page
    assert {m.label: m.value for m in at.metric}["Sets"] == "24"
    assert at.text_input(key="data_name").value == "tiny-sets"
    assert set_count(app_env) == 0  # nothing saved before Save

    at.selectbox(key="data_split").set_value("file").run()
    at.button(key="data_save").click().run()
    (dataset,) = datasets(app_env)
    assert dataset.name == "tiny-sets" and dataset.sets == 24 and dataset.noun == "products"
    with session_scope(app_env, readonly=True) as session:
        page = list_sets(session, dataset.id, limit=100)
        assert {s.split for s in page.items} == {"train", "val", "test"}
        assert all("reference" in s.sources for s in page.items)
        assert get_set(session, page.items[0].id).reference.producer == "tiny-sets.jsonl"
    assert "Saved 24 sets" in texts_of(at)
    assert any(link.label == "Review them" for link in at.get("page_link"))


def test_an_invalid_line_is_named_and_nothing_is_saved(app_env, tmp_path):
    good = tiny_sets_jsonl(tmp_path / "ds").splitlines(keepends=True)
    broken = json.loads(good[4])
    broken["clusters"][0].append(99)
    data = b"".join(good[:4]) + (json.dumps(broken) + "\n").encode() + b"".join(good[5:])
    at = upload(open_app("data"), "sets.jsonl", data)
    errors = [e.value for e in at.error]
    assert any(e.startswith("**sets.jsonl:5: field 'clusters[0]") and "out of range" in e for e in errors), errors
    assert "nothing was saved" in errors[0]
    assert not [b for b in at.button if b.key == "data_save"]
    assert set_count(app_env) == 0

    data += b'{"id": "cut", "entities": [{"id": "a", "text": "gl\n'  # a second problem: all are listed
    at = upload(open_app("data"), "sets.jsonl", data)
    (error,) = [e.value for e in at.error]
    assert error.startswith("**2 problems in sets.jsonl**") and "nothing was saved" in error
    assert "- sets.jsonl:5: field 'clusters[0]" in error and f"- sets.jsonl:{len(good) + 1}: invalid JSON" in error
    assert set_count(app_env) == 0


def test_a_conflicting_save_stores_nothing(app_env, tmp_path):
    data = tiny_sets_jsonl(tmp_path / "ds")
    at = upload(open_app("data"), "sets.jsonl", data)
    at.button(key="data_save").click().run()
    assert set_count(app_env) == 24
    # the same sets again into the same dataset: the ids clash, the import is refused as a whole
    at = upload(open_app("data"), "sets.jsonl", data)
    at.radio(key="data_target").set_value("an existing dataset").run()
    at.button(key="data_save").click().run()
    assert any("Nothing was saved" in e.value and "already has sets" in e.value for e in at.error)
    assert set_count(app_env) == 24


def test_csv_and_pasted_text(app_env):
    at = upload(open_app("data"), "queries.csv", b"set_id,text,cluster\nq1,cheap flights,Travel\n"
                                                 b"q1,hotel deals,Travel\nq1,python list sort,Code\n")
    at.radio(key="data_noun").set_value("queries").run()
    at.text_input(key="data_name").set_value("Queries").run()
    at.button(key="data_save").click().run()
    (dataset,) = datasets(app_env)
    assert dataset.noun == "queries" and dataset.sets == 1

    at = upload(open_app("data"), "bad.csv", b"set_id,text\nq1,one\nq2,two\nq1,three\n")
    assert any(e.value.startswith("**bad.csv:3: field 'set_id': set 'q2' has only 1 entity") for e in at.error)

    at = open_app("data")
    at.segmented_control(key="data_source").set_value("pasted text").run()
    at.text_area(key="data_paste").set_value("glue stick\nhot glue gun\n\nbeeswax\nsoy wax\ncandle wick\n").run()
    at.text_input(key="data_prefix").set_value("craft").run()
    assert {m.label: m.value for m in at.metric}["Entities"] == "5"
    at.radio(key="data_target").set_value("a new dataset").run()
    at.text_input(key="data_name").set_value("Pasted").run()
    at.button(key="data_save").click().run()
    pasted = next(d for d in datasets(app_env) if d.name == "Pasted")
    with session_scope(app_env, readonly=True) as session:
        assert [s.name for s in list_sets(session, pasted.id).items] == ["craft-1", "craft-2"]

    at.text_area(key="data_paste").set_value("only one line\n").run()
    assert any("pasted text:1: this set has only 1 entity" in e.value for e in at.error)


def test_load_the_demo_and_delete_a_dataset(app_env):
    at = open_app("data")
    at.checkbox(key="data_demo_train").uncheck().run()
    at.button(key="data_demo").click().run()
    (demo,) = datasets(app_env)
    assert demo.name == DEMO_DATASET and demo.sets == 300
    with session_scope(app_env, readonly=True) as session:
        assert list_jobs(session) == []  # no training asked for
        assert list_sets(session, demo.id, has=["reference"]).total == 300
    assert not [b for b in at.button if b.key == "data_demo"]  # offered only while the demo is not there

    at.checkbox(key="data_delete_sure").check().run()
    at.button(key="data_delete").click().run()
    assert datasets(app_env) == [] and set_count(app_env) == 0


def test_a_saved_dataset_of_20_sets_or_more_may_be_labelled_through_batches(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    at = upload(open_app("data"), "tiny-sets.jsonl", tiny_sets_jsonl(tmp_path / "ds"))
    at.button(key="data_save").click().run()
    at.checkbox(key="data_label_batch").check().run()
    at.button(key="data_label").click().run()
    with session_scope(app_env, readonly=True) as session:
        (job,) = list_jobs(session)
    assert job.type == "label" and job.params == {"dataset_id": datasets(app_env)[0].id, "sets": "missing",
                                                  "batch": True}


def _downloaded(at) -> tuple[str, bytes]:
    _, name, data, _, _ = at.session_state["data_export_file"]
    assert any(b.label.startswith(f"Download {name}") for b in at.get("download_button"))
    return name, data


def test_download_every_set_or_the_filtered_ones_with_their_best_clustering(app_env, tmp_path):
    from tests.app_helpers import seed_store

    seeded = seed_store(app_env, tmp_path / "ds")  # reference labels from the file, first-word teacher clusterings
    at = open_app("data")
    at.button(key="data_export").click().run()
    name, data = _downloaded(at)
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert name == "tiny.jsonl" and len(lines) == 24
    assert {line["label_source"] for line in lines} == {"teacher"}
    assert lines[0]["labelled_by"] == "claude-test" and lines[0]["labelled_at"] and lines[0]["reviewed"] is False
    assert "clusters" in lines[0] and "cluster_names" in lines[0]

    # the filters last set on the set list narrow the download: only the test split, as CSV
    at.session_state["sets_split"] = "test"
    at.run()
    at.radio(key="data_export_scope").set_value("filter").run()
    at.radio(key="data_export_format").set_value("CSV").run()
    at.button(key="data_export").click().run()
    name, data = _downloaded(at)
    header, *rows = data.decode().splitlines()
    assert name == "tiny-filtered.csv" and header.startswith("set_id,entity_id,text,cluster,label_source")
    with session_scope(app_env, readonly=True) as session:
        test_sets = {s.name for s in list_sets(session, seeded.dataset_id, split="test", limit=100).items}
    assert {row.split(",")[0] for row in rows} == test_sets


def test_import_teacher_labels_from_a_cactus_label_file(app_env, tmp_path):
    from tests.app_helpers import seed_store, tiny_sets

    seeded = seed_store(app_env, tmp_path / "ds", teacher=False)
    labelled = []
    chosen = [s for s in tiny_sets(tmp_path / "again") if len(s) >= 3][:3]
    for entity_set in chosen:  # as `cactus label` writes them: entity 0 left out
        row = entity_set.to_json()
        row["entities"] = row["entities"][1:]
        row["clusters"] = [[i for i in range(len(row["entities"]))]]
        row["cluster_names"] = ["Everything"]
        row["teacher"] = {"model": "claude-file", "dropped_entity_ids": [entity_set.entities[0].id], "invented": 0}
        labelled.append(row)
    good = "".join(json.dumps(r) + "\n" for r in labelled).encode()
    at = open_app("data")
    at.file_uploader(key="data_teacher_upload_0").upload("labelled.jsonl", good).run()
    assert "labelled.jsonl: 3 sets, 3 with clusters." in texts_of(at)
    at.button(key="data_teacher_import").click().run()
    assert "Imported the teacher's clusterings of 3 sets of 'tiny' from labelled.jsonl (3 entities it left out " \
           "stay alone)." in texts_of(at)
    with session_scope(app_env, readonly=True) as session:
        stored = get_set(session, seeded.set_ids[[s.id for s in tiny_sets(tmp_path / "x")].index(chosen[0].id)]).teacher
        assert stored.producer == "claude-file" and stored.details["unplaced"] == [0]
        assert list_sets(session, seeded.dataset_id, has=["teacher"]).total == 3

    # a set the dataset lacks beside a good one: a clear error, and not even the good set is imported
    fresh = next(s for s in tiny_sets(tmp_path / "x") if s.id not in {c.id for c in chosen})
    bad = "".join(json.dumps(r) + "\n" for r in [fresh.to_json(), dict(labelled[0], id="no-such-set")]).encode()
    at.file_uploader(key="data_teacher_upload_1").upload("bad.jsonl", bad).run()
    at.button(key="data_teacher_import").click().run()
    (error,) = [e.value for e in at.error]
    assert error.startswith("bad.jsonl: 1 problem(s), nothing was imported: set 'no-such-set' is not in dataset")
    with session_scope(app_env, readonly=True) as session:
        assert list_sets(session, seeded.dataset_id, has=["teacher"]).total == 3
