"""The store on a real database: SQLite file and (when CACTUS_TEST_PG_URL is set) PostgreSQL."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from cactus.data import DataError, read_dataset, write_sets
from db import (
    ConflictError,
    Create,
    Delete,
    EditError,
    Merge,
    Move,
    NotFoundError,
    Partition,
    Rename,
    Split,
    StoreError,
    accept_clustering,
    activate_model,
    active_model,
    add_clustering,
    apply_edit,
    create_dataset,
    delete_dataset,
    delete_model,
    edit_history,
    export_labels,
    find_dataset,
    get_set,
    import_sets,
    import_sets_file,
    label_summary,
    list_datasets,
    list_models,
    list_sets,
    mark_reviewed,
    rebuild_human_clustering,
    redo,
    refresh_threshold,
    register_model,
    session_scope,
    set_size_range,
    set_sizes,
    start_clustering,
    store_is_empty,
    undo,
)
from db.migrate import current_revision, head_revision
from db.models import Base, ClusteringRow, EditRow, EntityRow, SetRow
from db.session import get_engine
from tests.jobs_helpers import make_set, sample_sets


def _import_sample(url: str, name: str = "crafts") -> dict[str, int]:
    with session_scope(url) as session:
        dataset = create_dataset(session, name, "products")
        import_sets(session, dataset.id, sample_sets())
        ids = dict(session.execute(select(SetRow.name, SetRow.id).where(SetRow.dataset_id == dataset.id)).all())
    return {"dataset": dataset.id, **ids}


def _model(session, name: str = "m1", **kw) -> int:
    return register_model(session, name=name, checkpoint=f"/tmp/{name}", backbone="tiny-bert", mode="sia",
                          loss="augmented_triplet", threshold=0.5, **kw).id


def test_new_database_is_created_at_the_newest_revision(store_url):
    engine = get_engine(store_url)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "entity_sets", "entities", "clusterings", "edits", "models", "jobs"} <= tables
    with engine.connect() as connection:  # the migrations build exactly what the models declare
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_import_stores_sets_in_order_with_reference_labels(store_url, tmp_path):
    path = tmp_path / "sets.jsonl"
    sets = sample_sets()
    sets[0].extra["split"] = "test"
    write_sets(path, sets)
    progress: list[tuple[int, int]] = []
    with session_scope(store_url) as session:
        summary = import_sets_file(session, path, dataset="crafts", noun="products",
                                   on_progress=lambda done, total: progress.append((done, total)))
    assert (summary.sets, summary.entities, summary.labelled) == (4, 14, 2)
    assert progress[-1] == (4, 4)
    with session_scope(store_url, readonly=True) as session:
        dataset = find_dataset(session, "crafts")
        assert (dataset.sets, dataset.reviewed, dataset.noun) == (4, 0, "products")
        page = list_sets(session, dataset.id)
        assert [s.name for s in page.items] == ["glue", "pens", "paint", "tape"]
        assert [s.split for s in page.items] == ["test", "unassigned", "unassigned", "unassigned"]
        glue = get_set(session, page.items[0].id)
        assert glue.texts == ["glue stick", "hot glue gun", "candle wick", "beeswax candle"]
        assert [e.id for e in glue.entities] == ["e0", "e1", "e2", "e3"]
        assert glue.reference is not None and glue.reference.clusters == ((0, 1), (2, 3))
        assert glue.reference.names == ("Glue", "Candles") and glue.reference.producer == "sets.jsonl"
        assert glue.human is None and not glue.can_undo and glue.edit_head == 0
        assert "split" not in glue.extra
        assert get_set(session, page.items[2].id).clusterings == ()


def test_import_is_all_or_nothing(store_url, tmp_path):
    _import_sample(store_url)
    # A clash with an existing set: nothing of the second import is kept, not even its dataset.
    good = make_set("new", ["a", "b"])
    clash = make_set("glue", ["x", "y"])
    with pytest.raises(ConflictError, match="already has sets 'glue'"), session_scope(store_url) as session:
        dataset = find_dataset(session, "crafts")
        import_sets(session, dataset.id, [good, clash])
    # A bad line in a file: the error names the line and nothing is written.
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(make_set(f"s{i}", ["a", "b"]).to_json()) for i in range(3)]
    lines.insert(2, json.dumps({"id": "broken", "entities": [{"id": "e0", "text": "alone"}]}))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:3: field 'entities': a set needs at least 2"), \
            session_scope(store_url) as session:
        import_sets_file(session, path, dataset="other")
    # A failure after some batches were written (the progress callback raises): rolled back too.
    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), session_scope(store_url) as session:
        dataset = create_dataset(session, "third", "queries")
        import_sets(session, dataset.id, [make_set(f"q{i}", ["a", "b"]) for i in range(3)], on_progress=stop)
    with session_scope(store_url, readonly=True) as session:
        assert [d.name for d in list_datasets(session)] == ["crafts"]
        assert session.scalar(select(func.count(SetRow.id))) == 4
        assert session.scalar(select(func.count(EntityRow.id))) == 14


def test_dataset_names_and_nouns_are_checked(store_url):
    with session_scope(store_url) as session:
        create_dataset(session, "crafts", "products")
        with pytest.raises(ConflictError, match="exists already"):
            create_dataset(session, "crafts", "queries")
        with pytest.raises(StoreError, match="noun must be one of products, queries"):
            create_dataset(session, "x", "things")
        with pytest.raises(NotFoundError, match="known: crafts"):
            find_dataset(session, "nope")


def test_list_sets_filters_and_pages(store_url):
    ids = _import_sample(store_url)
    with session_scope(store_url) as session:
        model = _model(session, activate=True)
        old_model = _model(session, "m0")
        # teacher and model agree on glue, disagree on pens (1 of 3 pairs differs) and paint
        add_clustering(session, ids["glue"], "teacher", [[0, 1], [2, 3]], ["Glue", "Candles"], producer="claude")
        add_clustering(session, ids["glue"], "model", [[0, 1], [2, 3]], model_id=model)
        add_clustering(session, ids["pens"], "teacher", [[0, 1], [2]])
        add_clustering(session, ids["pens"], "model", [[0], [1], [2]], model_id=model)
        add_clustering(session, ids["paint"], "teacher", [[0, 1, 2, 3, 4]])
        add_clustering(session, ids["paint"], "model", [[0], [1], [2], [3], [4]], model_id=model)
        add_clustering(session, ids["tape"], "model", [[0, 1]], model_id=old_model)
        accept_clustering(session, ids["glue"], get_set(session, ids["glue"]).teacher.id, author="ana")
        mark_reviewed(session, ids["glue"], author="ana")
    d = ids["dataset"]
    with session_scope(store_url, readonly=True) as session:
        def names(**kw) -> list[str]:
            return [s.name for s in list_sets(session, d, **kw).items]

        assert names(reviewed=True) == ["glue"]
        assert names(reviewed=False) == ["pens", "paint", "tape"]
        assert names(min_size=3, max_size=4) == ["glue", "pens"]
        assert names(order="size") == ["paint", "glue", "pens", "tape"]
        assert names(search="BRUSH") == ["paint"]  # entity text, any case
        assert names(search="pen") == ["pens"]  # set id or text
        assert names(search="100%") == []  # LIKE wildcards are literal
        assert names(has=["teacher"], lacks=["human"]) == ["pens", "paint"]
        assert names(lacks=["model"]) == ["tape"]  # "model" means the active model
        assert names(lacks=["model"], model_id=old_model) == ["glue", "pens", "paint"]
        assert names(min_disagreement=0.01) == ["pens", "paint"]
        assert names(order="disagreement") == ["paint", "pens", "glue", "tape"]
        page = list_sets(session, d, order="disagreement", limit=2, offset=1)
        assert page.total == 4 and [s.name for s in page.items] == ["pens", "glue"]
        pens = page.items[0]
        assert pens.disagreement == pytest.approx(2 / 6)  # one pair of three, counted both ways
        assert pens.sources == {"teacher", "model", "reference"}
        assert list_sets(session, d, limit=1).total == 4
        summaries = {s.name: s for s in list_sets(session, d).items}
        assert summaries["glue"].sources == {"teacher", "model", "human", "reference"}
        assert summaries["glue"].disagreement == 0.0 and summaries["tape"].disagreement is None
        with pytest.raises(StoreError, match="unknown source 'teachers'"):
            list_sets(session, d, has=["teachers"])


def test_edits_undo_redo_and_rebuild(store_url):
    ids = _import_sample(store_url)
    glue = ids["glue"]
    with session_scope(store_url) as session:
        with pytest.raises(EditError, match="no human clustering yet"):
            apply_edit(session, glue, Move(entity=0, to=1), author="ana")
        teacher = add_clustering(session, glue, "teacher", [[0, 1, 2], [3]], ["Craft", "Wax"], producer="claude")
        human = accept_clustering(session, glue, teacher.id, author="ana")
        assert (human.clusters, human.names) == (((0, 1, 2), (3,)), ("Craft", "Wax"))
        steps = [
            Move(entity=2, to=1),                      # ((0,1),(2,3))
            Rename(cluster=0, name=" Glue "),           # names stripped
            Split(cluster=1, entities=(3,), name="Wax"),  # ((0,1),(2,),(3,))
            Merge(clusters=(2, 1), name="Candles"),     # ((0,1),(2,3)) named Candles
            Create(entities=(0,), name="Sticks"),       # ((1,),(2,3),(0,))
            Delete(cluster=1),                          # ((1,),(2,),(3,),(0,))
            Move(entity=1, to=None, name="Guns"),       # cluster (1,) emptied and removed: ((2,),(3,),(0,),(1,))
        ]
        states = [human.partition]
        for step in steps:
            states.append(apply_edit(session, glue, step, author="ana").partition)
        assert states[2] == Partition(((0, 1), (2, 3)), ("Glue", "Wax"))
        assert states[4] == Partition(((0, 1), (2, 3)), ("Glue", "Candles"))
        assert states[-1] == Partition(((2,), (3,), (0,), (1,)), ("", "", "Sticks", "Guns"))
        head = get_set(session, glue).edit_head
        # a no-op is not logged
        assert apply_edit(session, glue, Move(entity=2, to=0), author="ana").partition == states[-1]
        assert get_set(session, glue).edit_head == head == 8
        with pytest.raises(ConflictError, match="changed by someone else"):
            apply_edit(session, glue, Rename(cluster=0, name="x"), author="bo", expected_head=head - 1)
        with pytest.raises(EditError, match="no cluster 9"):
            apply_edit(session, glue, Rename(cluster=9, name="x"), author="bo")

    with session_scope(store_url) as session:  # undo step by step, in another transaction
        for expected in reversed(states[:-1]):
            assert undo(session, glue, author="bo").partition == expected
        mark_reviewed(session, glue, author="bo")
        assert undo(session, glue, author="bo") is None  # before the accept: no human clustering
        assert not get_set(session, glue).reviewed  # and so nothing reviewed
        assert get_set(session, glue).human is None and not get_set(session, glue).can_undo
        with pytest.raises(ConflictError, match="nothing to undo"):
            undo(session, glue, author="bo")
        assert redo(session, glue, author="bo").partition == states[0]
        assert redo(session, glue, author="bo").partition == states[1]
        detail = get_set(session, glue)
        assert detail.can_undo and detail.can_redo and detail.human.partition == states[1]
        # a new edit clears what was left to redo
        after_new = apply_edit(session, glue, Rename(cluster=1, name="Candles"), author="cy").partition
        assert not get_set(session, glue).can_redo
        with pytest.raises(ConflictError, match="nothing to redo"):
            redo(session, glue, author="cy")
        assert undo(session, glue, author="cy").partition == states[1]
        assert redo(session, glue, author="cy").partition == after_new

    with session_scope(store_url, readonly=True) as session:
        history = edit_history(session, glue)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert [e.action for e in history[:3]] == ["accept", "move", "rename"]
        assert history[0].params == {"clustering_id": teacher.id, "source": "teacher", "model_id": None}
        assert history[1].params == {"entity": 2, "to": 1, "name": ""}
        assert history[8].action == "undo" and history[8].target_seq == 8 and history[8].author == "bo"
        assert {e.author for e in history} == {"ana", "bo", "cy"}
        assert all(e.created_at.tzinfo is not None for e in history)
        assert rebuild_human_clustering(session, glue) == after_new == get_set(session, glue).human.partition
        assert session.scalar(select(func.count()).where(ClusteringRow.source == "human")) == 1


def test_start_from_scratch_and_accept_again(store_url):
    ids = _import_sample(store_url)
    paint = ids["paint"]
    with session_scope(store_url) as session:
        assert start_clustering(session, paint, author="ana").clusters == ((0,), (1,), (2,), (3,), (4,))
        one = start_clustering(session, paint, author="ana", together=True)
        assert one.clusters == ((0, 1, 2, 3, 4),)
        model = _model(session)
        predicted = add_clustering(session, paint, "model", [[0, 1], [2], [3, 4]], model_id=model)
        assert accept_clustering(session, paint, predicted.id, author="ana").clusters == ((0, 1), (2,), (3, 4))
        assert undo(session, paint, author="ana").clusters == ((0, 1, 2, 3, 4),)
        human = get_set(session, paint).human
        with pytest.raises(EditError, match="already the human clustering"):
            accept_clustering(session, paint, human.id, author="ana")
        with pytest.raises(NotFoundError, match="no clustering with id"):
            accept_clustering(session, paint, get_set(session, ids["glue"]).reference.id, author="ana")
        with pytest.raises(EditError, match="author"):
            start_clustering(session, paint, author=" ")
        assert rebuild_human_clustering(session, paint) == human.partition


def test_clusterings_are_validated(store_url):
    ids = _import_sample(store_url)
    with session_scope(store_url) as session:
        with pytest.raises(EditError, match="covers 3 entities but the set has 4"):
            add_clustering(session, ids["glue"], "teacher", [[0, 1], [2]])
        with pytest.raises(EditError, match="entity 1 is in two clusters"):
            add_clustering(session, ids["glue"], "teacher", [[0, 1], [1, 2, 3]])
        with pytest.raises(StoreError, match="make human clusterings with"):
            add_clustering(session, ids["glue"], "human", [[0, 1, 2, 3]])
        with pytest.raises(StoreError, match="needs the model_id"):
            add_clustering(session, ids["glue"], "model", [[0, 1, 2, 3]])
        with pytest.raises(NotFoundError, match="no model with id 99"):
            add_clustering(session, ids["glue"], "model", [[0, 1, 2, 3]], model_id=99)


def test_mark_reviewed_needs_a_human_clustering(store_url):
    ids = _import_sample(store_url)
    with session_scope(store_url) as session:
        with pytest.raises(EditError, match="no human clustering to approve"):
            mark_reviewed(session, ids["pens"], author="ana")
        accept_clustering(session, ids["pens"], get_set(session, ids["pens"]).reference.id, author="ana")
        mark_reviewed(session, ids["pens"], author="ana")
        detail = get_set(session, ids["pens"])
        assert detail.reviewed and detail.reviewed_by == "ana" and detail.reviewed_at is not None
        mark_reviewed(session, ids["pens"], author="ana", reviewed=False)
        assert not get_set(session, ids["pens"]).reviewed


def test_set_sizes_their_range_and_an_empty_store(store_url):
    with session_scope(store_url, readonly=True) as session:
        assert store_is_empty(session)
    ids = _import_sample(store_url)
    with session_scope(store_url, readonly=True) as session:
        assert not store_is_empty(session)
        assert set_sizes(session, ids["dataset"]) == {ids["glue"]: 4, ids["pens"]: 3, ids["paint"]: 5, ids["tape"]: 2}
        assert set_size_range(session, ids["dataset"]) == (2, 5)
        assert set_size_range(session, ids["dataset"] + 1) == (2, 2) and set_sizes(session, ids["dataset"] + 1) == {}


def test_model_registry_keeps_one_active_model(store_url):
    ids = _import_sample(store_url)
    with session_scope(store_url) as session:
        first = register_model(session, name="first", checkpoint="/ckpt/1", backbone="minilm", mode="sia",
                               loss="augmented_triplet", threshold=0.42, metrics={"val": {"ARI": 0.5}},
                               training={"sets": {"teacher": 10}}, dataset_id=ids["dataset"], activate=True)
        second = _model(session, "second")
        assert active_model(session).id == first.id
        assert activate_model(session, second).active
        assert [m.name for m in list_models(session)] == ["second", "first"]
        assert [m.active for m in list_models(session)] == [True, False]
        with pytest.raises(ConflictError, match="registered already"):
            _model(session, "first")
        with pytest.raises(StoreError, match=r"threshold must lie in \[-1, 1\]"):
            register_model(session, name="x", checkpoint="c", backbone="b", mode="sia", loss="l", threshold=1.5)
        with pytest.raises(StoreError, match=r"threshold must lie in \[-1, 1\]"):
            refresh_threshold(session, first.id, float("nan"))
        assert refresh_threshold(session, first.id, -0.25).threshold == -0.25  # a re-written card wins
        with pytest.raises(StoreError, match="mode must name the inter-entity attention"):
            register_model(session, name="x", checkpoint="c", backbone="b", mode=" ", loss="l", threshold=0.1)
        add_clustering(session, ids["glue"], "model", [[0, 1, 2, 3]], model_id=second)
    with session_scope(store_url) as session:
        delete_model(session, second)
    with session_scope(store_url, readonly=True) as session:
        assert active_model(session) is None
        assert get_set(session, ids["glue"]).latest("model") is None
        info = list_models(session)[0]
        assert (info.threshold, info.metrics, info.training) == (-0.25, {"val": {"ARI": 0.5}},
                                                                 {"sets": {"teacher": 10}})


def test_export_prefers_human_then_teacher_then_reference(store_url, tmp_path):
    ids = _import_sample(store_url)
    extra = [make_set(f"x{i}", ["a b", "c d", "e f"], [[0, 1], [2]]) for i in range(10)]
    with session_scope(store_url) as session:
        import_sets(session, ids["dataset"], extra)
        x0 = session.scalar(select(SetRow.id).where(SetRow.name == "x0"))
        # glue: reviewed human beats teacher and reference; pens: unreviewed human loses to reference
        teacher = add_clustering(session, ids["glue"], "teacher", [[0], [1], [2, 3]])
        accept_clustering(session, ids["glue"], teacher.id, author="ana")
        apply_edit(session, ids["glue"], Merge(clusters=(0, 1), name="Glue"), author="ana")
        mark_reviewed(session, ids["glue"], author="ana")
        start_clustering(session, ids["pens"], author="ana")
        add_clustering(session, ids["paint"], "teacher", [[0, 1], [2], [3, 4]], producer="claude")
        # entities the teacher left out are not exported; tape keeps one placed entity: not a usable label
        add_clustering(session, x0, "teacher", [[0, 2], [1]], details={"unplaced": [1]})
        add_clustering(session, ids["tape"], "teacher", [[0], [1]], details={"unplaced": [1]})
        summary = label_summary(session, ids["dataset"])
        assert summary.counts["unassigned"] == {"human": 1, "teacher": 2, "reference": 10, "unlabelled": 1}
        assert summary.labelled == 13
        exported = export_labels(session, ids["dataset"], tmp_path / "out", seed=3)
    assert sum(exported.sets.values()) == 13 and all(exported.sets.values())
    assert exported.sources == {"human": 1, "teacher": 2, "reference": 10}
    folder = read_dataset(tmp_path / "out")
    written = {s.id: s for split in ("train", "val", "test") for s in folder[split]}
    assert set(written) == {"glue", "pens", "paint", *(f"x{i}" for i in range(10))}
    assert written["glue"].clusters == [[0, 1], [2, 3]] and written["glue"].extra["label_source"] == "human"
    assert written["glue"].cluster_names == ["Glue", ""]
    assert written["pens"].extra["label_source"] == "reference"
    assert written["paint"].clusters == [[0, 1], [2], [3, 4]]
    assert written["x0"].texts == ["a b", "e f"] and written["x0"].clusters == [[0, 1]]
    # the split choice was saved: a second export (other seed) keeps every set where it was
    with session_scope(store_url) as session:
        again = export_labels(session, ids["dataset"], tmp_path / "again", seed=99)
        assert again.newly_assigned == {} and again.sets == exported.sets
        assert label_summary(session, ids["dataset"]).counts["unassigned"]["reference"] == 0
    second = read_dataset(tmp_path / "again")
    assert {split: [s.id for s in second[split]] for split in ("train", "val", "test")} == \
        {split: [s.id for s in folder[split]] for split in ("train", "val", "test")}


def test_export_refuses_what_training_cannot_use(store_url, tmp_path):
    with session_scope(store_url) as session:
        dataset = create_dataset(session, "tiny", "queries")
        import_sets(session, dataset.id, [make_set("q1", ["a", "b"])])
        with pytest.raises(StoreError, match="no labelled sets"):
            export_labels(session, dataset.id, tmp_path / "out")
    with pytest.raises(StoreError, match="no labelled sets in val, test"), session_scope(store_url) as session:
        dataset = find_dataset(session, "tiny")
        import_sets(session, dataset.id, [make_set("q2", ["a", "b"], [[0, 1]])])
        export_labels(session, dataset.id, tmp_path / "out")
    with session_scope(store_url, readonly=True) as session:  # the failed export saved no split
        assert session.scalar(select(func.count()).where(SetRow.split != "unassigned")) == 0


def test_delete_dataset_removes_its_sets_clusterings_and_edits(store_url):
    ids = _import_sample(store_url)
    _import_sample(store_url, "kept")
    with session_scope(store_url) as session:
        accept_clustering(session, ids["glue"], get_set(session, ids["glue"]).reference.id, author="ana")
        delete_dataset(session, ids["dataset"])
    with session_scope(store_url, readonly=True) as session:
        assert [d.name for d in list_datasets(session)] == ["kept"]
        assert session.scalar(select(func.count(SetRow.id))) == 4
        assert session.scalar(select(func.count(EntityRow.id))) == 14
        assert session.scalar(select(func.count(ClusteringRow.id))) == 2
        assert session.scalar(select(func.count(EditRow.id))) == 0
        with pytest.raises(NotFoundError):
            get_set(session, ids["glue"])
