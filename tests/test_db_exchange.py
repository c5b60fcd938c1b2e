"""Sets out of and into the store through files (download with who/when, teacher labels from `cactus label`), and a
model's threshold re-chosen per dataset: on a real SQLite file (and PostgreSQL when CACTUS_TEST_PG_URL is set)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from cactus.data import Entity, EntitySet
from db import (
    AppliedCut,
    NotFoundError,
    StoreError,
    accept_clustering,
    add_clustering,
    applied_cut,
    clear_dataset_threshold,
    create_dataset,
    dataset_threshold,
    delete_model,
    get_set,
    import_sets,
    import_teacher_labels,
    mark_reviewed,
    register_model,
    session_scope,
    set_dataset_threshold,
    sets_csv,
    sets_for_download,
    sets_jsonl,
    threshold_truth,
)
from db.models import SetRow
from tests.jobs_helpers import sample_sets


def _store(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        dataset = create_dataset(session, "crafts", "products")
        import_sets(session, dataset.id, sample_sets())
        ids = dict(session.execute(select(SetRow.name, SetRow.id).where(SetRow.dataset_id == dataset.id)).all())
        model = register_model(session, name="m1", checkpoint="/tmp/m1", backbone="tiny", mode="sia",
                               loss="augmented_triplet", threshold=0.5, activate=True)
    return {"dataset": dataset.id, "model": model.id, **ids}


def test_download_takes_human_then_teacher_then_model_then_reference_with_who_and_when(store_url):
    ids = _store(store_url)
    with session_scope(store_url) as session:
        teacher = add_clustering(session, ids["glue"], "teacher", [[0, 1, 2], [3]], ["Craft", "Candle"],
                                 producer="claude-x")
        accept_clustering(session, ids["glue"], teacher.id, author="ana")
        mark_reviewed(session, ids["glue"], author="ana")
        add_clustering(session, ids["pens"], "teacher", [[0, 1, 2]], ["Writing"], producer="claude-x",
                       details={"unplaced": []})
        add_clustering(session, ids["pens"], "model", [[0], [1], [2]], model_id=ids["model"], producer="m1")
        add_clustering(session, ids["paint"], "model", [[0, 1], [2, 3, 4]], model_id=ids["model"], producer="m1")
    with session_scope(store_url, readonly=True) as session:
        sets = {s.id: s for s in sets_for_download(session, ids["dataset"])}
        only = sets_for_download(session, ids["dataset"], [ids["tape"]])
    assert [s.id for s in only] == ["tape"] and only[0].clusters is None
    glue, pens, paint, tape = (sets[n] for n in ("glue", "pens", "paint", "tape"))
    assert glue.clusters == [[0, 1, 2], [3]] and glue.extra["label_source"] == "human"
    assert glue.extra["labelled_by"] == "ana" and glue.extra["reviewed_by"] == "ana" and glue.extra["reviewed"]
    assert pens.extra["label_source"] == "teacher" and pens.extra["labelled_by"] == "claude-x"
    assert paint.extra["label_source"] == "model" and paint.cluster_names == ["", ""]
    assert tape.extra["label_source"] is None and not tape.extra["reviewed"]
    assert all(s.extra["labelled_at"] for s in (glue, pens, paint))

    lines = [json.loads(line) for line in sets_jsonl(list(sets.values())).splitlines()]
    assert lines[0]["id"] == "glue" and lines[0]["clusters"] == [[0, 1, 2], [3]]
    assert lines[0]["entities"][0] == {"id": "e0", "text": "glue stick"}
    rows = list(csv.DictReader(io.StringIO(sets_csv(list(sets.values())))))
    assert len(rows) == 4 + 3 + 5 + 2
    assert rows[0] == {"set_id": "glue", "entity_id": "e0", "text": "glue stick", "cluster": "Craft",
                       "label_source": "human", "labelled_by": "ana", "labelled_at": glue.extra["labelled_at"],
                       "split": "unassigned", "reviewed": "yes"}
    assert [r["cluster"] for r in rows if r["set_id"] == "paint"] == ["cluster 1"] * 2 + ["cluster 2"] * 3


def _labelled(set_id: str, entities: list[tuple[str, str]], clusters, names, model: str = "claude-y") -> EntitySet:
    return EntitySet(set_id, [Entity(i, t) for i, t in entities], clusters, names,
                     extra={"teacher": {"model": model, "dropped_entity_ids": [], "invented": 0}})


def test_teacher_labels_are_imported_by_set_and_entity_ids(store_url):
    ids = _store(store_url)
    # as `cactus label` writes them: the teacher left out e2 of "glue"; the file's entity order is its own
    glue = _labelled("glue", [("e0", "glue stick"), ("e1", "hot glue gun"), ("e3", "beeswax candle")],
                     [[0, 1], [2]], ["Glue", "Candles"])
    pens = _labelled("pens", [("e2", "pencil case"), ("e0", "gel pen"), ("e1", "ballpoint pen")],
                     [[1, 2], [0]], ["Pens", "Cases"])
    with session_scope(store_url) as session:
        summary = import_teacher_labels(session, ids["dataset"], [glue, pens], source_name="labelled.jsonl")
    assert (summary.sets, summary.unplaced) == (2, 1)
    with session_scope(store_url, readonly=True) as session:
        stored = get_set(session, ids["glue"]).teacher
        stored_pens = get_set(session, ids["pens"]).teacher
    assert stored.clusters == ((0, 1), (3,), (2,)) and stored.names == ("Glue", "Candles", "")
    assert stored.details == {"unplaced": [2], "imported_from": "labelled.jsonl"} and stored.producer == "claude-y"
    assert stored_pens.clusters == ((0, 1), (2,)) and stored_pens.names == ("Pens", "Cases")


def test_a_teacher_file_with_problems_imports_nothing_and_says_every_problem(store_url):
    ids = _store(store_url)
    good = _labelled("glue", [("e0", "glue stick"), ("e1", "hot glue gun")], [[0, 1]], ["Glue"])
    stranger = _labelled("nails", [("e0", "nail"), ("e1", "hammer")], [[0, 1]], ["Tools"])
    odd = _labelled("pens", [("e0", "gel pen"), ("e9", "quill")], [[0], [1]], ["Pens", "Quills"])
    bare = EntitySet("tape", [Entity("e0", "washi tape"), Entity("e1", "masking tape")])
    with session_scope(store_url) as session, pytest.raises(StoreError) as caught:
        import_teacher_labels(session, ids["dataset"], [good, stranger, odd, bare, good], source_name="x.jsonl")
    message = str(caught.value)
    assert message.startswith("x.jsonl: 4 problem(s), nothing was imported")
    for part in ("set 'nails' is not in dataset 'crafts'", "set 'pens' has entities the stored set lacks: 'e9'",
                 "set 'tape' has no clusters", "set 'glue' is given twice"):
        assert part in message
    with session_scope(store_url, readonly=True) as session:
        assert get_set(session, ids["glue"]).teacher is None


def test_a_threshold_per_model_and_dataset_is_stored_replaced_and_cleared(store_url):
    ids = _store(store_url)
    with session_scope(store_url) as session:
        assert dataset_threshold(session, ids["model"], ids["dataset"]) is None
        first = set_dataset_threshold(session, ids["model"], ids["dataset"], 0.3, chosen_on_sets=2)
    with session_scope(store_url) as session:
        again = set_dataset_threshold(session, ids["model"], ids["dataset"], -0.2, chosen_on_sets=3)
        assert (again.threshold, again.chosen_on_sets) == (-0.2, 3) and again.created_at >= first.created_at
        assert again.labelled and again.chosen_how() == "on 3 labelled sets"
        with pytest.raises(StoreError, match="threshold"):
            set_dataset_threshold(session, ids["model"], ids["dataset"], 1.5, chosen_on_sets=3)
        with pytest.raises(StoreError, match="one set or more"):
            set_dataset_threshold(session, ids["model"], ids["dataset"], 0.1, chosen_on_sets=0)
        with pytest.raises(NotFoundError):
            set_dataset_threshold(session, 999, ids["dataset"], 0.1, chosen_on_sets=1)
    with session_scope(store_url, readonly=True) as session:
        assert dataset_threshold(session, ids["model"], ids["dataset"]).threshold == -0.2
    with session_scope(store_url) as session:  # chosen again without labels: the flag is stored and reported
        set_dataset_threshold(session, ids["model"], ids["dataset"], 0.5, chosen_on_sets=1, labelled=False)
    with session_scope(store_url, readonly=True) as session:
        unlabelled = dataset_threshold(session, ids["model"], ids["dataset"])
        assert not unlabelled.labelled and unlabelled.chosen_how() == "without labels, on 1 set"
        assert unlabelled.cut == "threshold" and unlabelled.describe() == "threshold +0.50"
    with session_scope(store_url) as session:  # a labelled re-choice that found a per-set cut better keeps the cut
        set_dataset_threshold(session, ids["model"], ids["dataset"], 0.2, chosen_on_sets=4, cut="silhouette")
        with pytest.raises(StoreError, match="unknown cut 'kmeans'"):
            set_dataset_threshold(session, ids["model"], ids["dataset"], 0.2, chosen_on_sets=4, cut="kmeans")
    with session_scope(store_url, readonly=True) as session:
        per_set = dataset_threshold(session, ids["model"], ids["dataset"])
        assert per_set.cut == "silhouette" and per_set.describe().startswith("a per-set cut")
        applied = applied_cut(0.6, "threshold", per_set)
        assert (applied.threshold, applied.cut, applied.source) == (0.2, "silhouette", "dataset")
        assert applied_cut(0.6, "silhouette", None) == AppliedCut(0.6, "silhouette", "card")
    with session_scope(store_url) as session:
        assert clear_dataset_threshold(session, ids["model"], ids["dataset"])
        assert not clear_dataset_threshold(session, ids["model"], ids["dataset"])
        set_dataset_threshold(session, ids["model"], ids["dataset"], 0.4, chosen_on_sets=1)
    with session_scope(store_url) as session:  # deleting the model deletes its thresholds
        delete_model(session, ids["model"])
    with session_scope(store_url, readonly=True) as session:
        assert dataset_threshold(session, ids["model"], ids["dataset"]) is None


def test_the_truth_a_threshold_is_chosen_on_is_reviewed_human_else_reference(store_url):
    ids = _store(store_url)
    with session_scope(store_url) as session:
        teacher = add_clustering(session, ids["paint"], "teacher", [[0, 1], [2, 3, 4]])
        accept_clustering(session, ids["paint"], teacher.id, author="ana")
        mark_reviewed(session, ids["paint"], author="ana")
        teacher = add_clustering(session, ids["tape"], "teacher", [[0, 1]])
        accept_clustering(session, ids["tape"], teacher.id, author="ana")  # not reviewed: does not count
    with session_scope(store_url, readonly=True) as session:
        truth = threshold_truth(session, ids["dataset"])
        assert list(truth) == [ids["glue"], ids["pens"], ids["paint"]]
        assert [c.source for c in truth.values()] == ["reference", "reference", "human"]
        assert list(threshold_truth(session, ids["dataset"], limit=1)) == [ids["glue"]]
