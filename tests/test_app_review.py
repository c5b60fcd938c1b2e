"""The Review page on a real store: cards of the teacher, the model and the reference, agreement, the heatmap with
SIA vs NIA, the set filters, and the teacher and predict buttons."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from app.compare import agreement
from cactus.data import EntitySet, clusters_to_labels
from cactus.inference.model import ClusteringModel
from cactus.inference.per_set_cut import set_threshold
from cactus.training.checkpoint import read_card, write_card
from db import add_clustering, get_model, get_set, list_sets, pair_disagreement, review_queue, session_scope
from jobs.queue import list_jobs
from tests.app_helpers import (
    forget_cached_queries,
    open_app,
    plotly_array,
    plotly_specs,
    seed_store,
    texts_of,
)


def choose(at, label_start: str, value) -> None:
    next(s for s in at.selectbox if s.label.startswith(label_start)).set_value(value).run()


def most_disagreeing(url: str, seeded) -> tuple[int, dict]:
    with session_scope(url, readonly=True) as session:
        page = list_sets(session, seeded.dataset_id, order="disagreement", limit=1)
        detail = get_set(session, page.items[0].id)
    return detail.id, {"detail": detail, "disagreement": page.items[0].disagreement}


def test_review_shows_the_three_clusterings_their_agreement_and_the_heatmap(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    set_id, found = most_disagreeing(app_env, seeded)
    detail = found["detail"]
    assert found["disagreement"] > 0  # the first-word teacher and the tiny model disagree somewhere

    at = open_app(query={"set": str(set_id)})
    page = texts_of(at)
    assert f"Set {detail.name}" in page
    assert "Teacher (LLM): claude-test" in page and "CACTUS model: tiny-sia" in page and "Reference labels" in page
    for text in detail.texts:
        assert text in page
    teacher, model = detail.teacher, detail.latest("model")
    expected = agreement(teacher.clusters, model.clusters, len(detail.entities))["ARI"]
    metric = next(m for m in at.metric if m.label == "Teacher vs model: ARI")
    assert metric.value == f"{expected:.2f}"
    assert "⚑" in page, page
    assert any("placed differently by the teacher and the model" in e.label for e in at.expander)

    (figure,) = plotly_specs(at)
    heat = figure["data"][0]
    assert heat["type"] == "heatmap" and heat["zmid"] == detail.latest("model").details["threshold"]
    assert plotly_array(heat["z"]).shape == (len(detail.entities), len(detail.entities))
    assert "scalable inter-entity attention" in figure["layout"]["title"]["text"]
    assert "SIA embeddings give" in page and "NIA embeddings give" in page

    at.segmented_control(key="review_mode").set_value("nia").run()
    (nia,) = plotly_specs(at)
    assert "no inter-entity attention" in nia["layout"]["title"]["text"]
    # the same weights without attention across the set see other similarities
    assert not np.allclose(plotly_array(nia["data"][0]["z"]), plotly_array(heat["z"]))

    at.segmented_control(key="review_outline").set_value("reference").run()
    (outlined,) = plotly_specs(at)
    assert "outlined by the reference's clusters" in outlined["layout"]["title"]["text"]
    rects = [s for s in outlined["layout"]["shapes"] if s["type"] == "rect"]
    assert len(rects) == len(detail.reference.clusters)

    # clicking the selected option again deselects it: the control falls back to the first clustering shown
    at.segmented_control(key="review_outline").set_value(None).run()
    assert at.segmented_control(key="review_outline").value == "teacher"
    assert at.segmented_control(key="review_mode").options == ["SIA (as trained)", "NIA"]  # short: fits at 1440 px


def set_model_disagreement(url: str, seeded, agreeing: int) -> None:
    """Give the first ``agreeing`` sets a model clustering equal to the teacher's, the others one that disagrees on
    at least half of the pairs, so the filter's outcome does not hang on what a random tiny model predicts."""
    with session_scope(url) as session:
        for position, set_id in enumerate(seeded.set_ids):
            teacher = get_set(session, set_id).teacher.clusters
            n = sum(len(c) for c in teacher)
            if position < agreeing:
                clusters = teacher
            else:
                # all singletons disagree on the pairs the teacher joins, one cluster on the others
                joined = pair_disagreement(clusters_to_labels(teacher, n), list(range(n)))
                clusters = [[i] for i in range(n)] if joined >= 0.5 else [list(range(n))]
            add_clustering(session, set_id, "model", clusters, model_id=seeded.model_id, producer="tiny-sia",
                           details={"threshold": 0.5})


def test_filters_narrow_the_set_list(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    set_model_disagreement(app_env, seeded, agreeing=10)
    at = open_app()
    picker = next(s for s in at.selectbox if s.label.startswith("Set ("))
    assert picker.label == "Set (24 sets match)" and len(picker.options) == 24

    at.slider(key="sets_disagree").set_value(5).run()
    with session_scope(app_env, readonly=True) as session:
        disagreeing = list_sets(session, seeded.dataset_id, min_disagreement=0.05).total
    picker = next(s for s in at.selectbox if s.label.startswith("Set ("))
    assert picker.label == f"Set ({disagreeing} sets match)" and disagreeing == 14

    at.slider(key="sets_disagree").set_value(0).run()
    at.text_input(key="sets_search").set_value("headphones").run()
    with session_scope(app_env, readonly=True) as session:
        matching = list_sets(session, seeded.dataset_id, search="headphones").total
    picker = next(s for s in at.selectbox if s.label.startswith("Set ("))
    assert picker.label == f"Set ({matching} sets match)" and "headphones" in texts_of(at)

    at.text_input(key="sets_search").set_value("no such entity").run()
    assert "No set matches these filters" in texts_of(at)


def test_next_and_previous_walk_the_list(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)

    def shown(at) -> int:
        return next(s for s in at.selectbox if s.label.startswith("Set (")).value

    at = open_app()
    assert shown(at) == seeded.set_ids[0]
    assert at.button(key="sets_prev").disabled
    at.button(key="sets_next").click().run()
    at.button(key="sets_next").click().run()
    assert shown(at) == seeded.set_ids[2]
    with session_scope(app_env, readonly=True) as session:
        assert f"Set {get_set(session, seeded.set_ids[2]).name}" in texts_of(at)
    at.button(key="sets_prev").click().run()
    assert shown(at) == seeded.set_ids[1]
    assert at.query_params["set"] == str(seeded.set_ids[1])  # a reload lands on the same set


def test_predict_with_the_model_stores_its_clustering(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    at = open_app(query={"set": str(seeded.set_ids[3])})
    assert "has not clustered this set yet" in texts_of(at)
    next(b for b in at.button if b.label == "Predict with the model").click().run()
    with session_scope(app_env, readonly=True) as session:
        clustering = get_set(session, seeded.set_ids[3]).latest("model", seeded.model_id)
    assert clustering is not None and clustering.producer == "tiny-sia"
    assert "CACTUS model: tiny-sia" in texts_of(at)
    # its clusters are named (the reference's name where a cluster overlaps one enough, else keywords), marked
    assert clustering.details["names_generated"] is True and 0.0 <= clustering.details["uncertainty"] <= 1.0
    assert len(clustering.names) == len(clustering.clusters) and all(clustering.names)
    page = texts_of(at)
    assert all(name in page for name in clustering.names) and "(generated)" in page


def test_next_most_useful_set_walks_the_review_queue(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    with session_scope(app_env, readonly=True) as session:
        queue = [item.set_id for item in review_queue(session, seeded.dataset_id)]
    assert sorted(queue) == sorted(seeded.set_ids)  # every set has the model's clustering, none is reviewed
    assert queue != seeded.set_ids  # the queue is not the import order: the model and the teacher disagree

    def shown(at) -> int:
        return next(s for s in at.selectbox if s.label.startswith("Set (")).value

    at = open_app()
    expected = [i for i in queue if i != seeded.set_ids[0]]  # the set on screen is skipped
    for want in expected[:3]:
        at.button(key="sets_next_useful").click().run()
        assert shown(at) == want


def test_a_rewritten_card_wins_over_the_registry_copy_of_the_threshold(app_env, tiny_model, tmp_path):
    model_dir = shutil.copytree(tiny_model, tmp_path / "model")
    seeded = seed_store(app_env, tmp_path / "ds", model_dir, predict=False)
    card = read_card(model_dir)
    rewritten = 0.9 if card.threshold < 0.85 else -0.9
    write_card(model_dir, replace(card, threshold=rewritten))
    at = open_app(query={"set": str(seeded.set_ids[3])})
    (figure,) = plotly_specs(at)
    assert figure["data"][0]["zmid"] == rewritten and f"At the threshold {rewritten:+.2f}," in texts_of(at)
    with session_scope(app_env, readonly=True) as session:
        assert get_model(session, seeded.model_id).threshold == rewritten
    next(b for b in at.button if b.label == "Predict with the model").click().run()
    with session_scope(app_env, readonly=True) as session:
        clustering = get_set(session, seeded.set_ids[3]).latest("model", seeded.model_id)
    assert clustering is not None, texts_of(at)
    assert clustering.details["threshold"] == rewritten


def test_the_teacher_button_explains_the_key_or_queues_a_label_job(app_env, tiny_model, tmp_path, monkeypatch):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, teacher=False)
    at = open_app(query={"set": str(seeded.set_ids[0])})
    button = next(b for b in at.button if b.label == "Ask the teacher for this set")
    assert button.disabled
    assert "export ANTHROPIC_API_KEY=sk-ant-..." in texts_of(at)

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    at.run()
    next(b for b in at.button if b.label == "Ask the teacher for this set").click().run()
    with session_scope(app_env, readonly=True) as session:
        (job,) = list_jobs(session, type="label")
    assert job.params == {"dataset_id": seeded.dataset_id, "set_ids": [seeded.set_ids[0]], "sets": "all"}
    assert job.created_by == "tester"  # the author (CACTUS_AUTHOR without login)
    assert f"label job {job.id}" in texts_of(at)
    assert json.dumps(job.params)  # the parameters are plain JSON


def test_review_without_data_or_model_says_what_to_do(app_env, tmp_path):
    at = open_app()
    assert "Upload entity sets on the Data page" in texts_of(at)
    seed_store(app_env, tmp_path / "ds")
    forget_cached_queries()
    at = open_app()
    page = texts_of(at)
    assert "No model is active yet" in page and "The heatmap shows the active model's similarities" in page
    assert not plotly_specs(at)


def test_the_chosen_set_and_the_filters_follow_to_the_correct_page(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    at = open_app(query={"set": str(seeded.set_ids[7])})
    at.segmented_control(key="sets_status").set_value("Not reviewed").run()
    at.switch_page("app_pages/correct.py").run()
    with session_scope(app_env, readonly=True) as session:
        assert f"Set {get_set(session, seeded.set_ids[7]).name}" in texts_of(at)
    assert at.segmented_control(key="sets_status").value == "Not reviewed"
    assert next(s for s in at.selectbox if s.label.startswith("Set (")).value == seeded.set_ids[7]


def test_an_unreachable_store_is_a_message_with_the_fix(app_env, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CACTUS_DB_URL", f"sqlite:///{blocker}/store.db")
    for page in (None, "correct", "data", "train", "models", "evaluate"):
        at = open_app(page)
        (error,) = at.error
        assert "cannot be opened" in error.value and "Set CACTUS_DB_URL" in error.value


def test_a_threshold_rechosen_on_the_dataset_is_shown_and_used(app_env, tiny_model, tmp_path):
    from db import set_dataset_threshold

    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    card = read_card(tiny_model)
    rechosen = 0.8 if card.threshold < 0.75 else -0.8
    with session_scope(app_env) as session:
        set_dataset_threshold(session, seeded.model_id, seeded.dataset_id, rechosen, chosen_on_sets=5)
    at = open_app(query={"set": str(seeded.set_ids[3])})
    (figure,) = plotly_specs(at)
    page = texts_of(at)
    assert figure["data"][0]["zmid"] == rechosen and f"At the threshold {rechosen:+.2f}," in page
    assert (f"Threshold {rechosen:+.2f} was re-chosen for tiny-sia on 5 labelled sets of tiny (Models page); "
            f"its card's: threshold {card.threshold:+.2f}.") in page
    next(b for b in at.button if b.label == "Predict with the model").click().run()
    with session_scope(app_env, readonly=True) as session:
        clustering = get_set(session, seeded.set_ids[3]).latest("model", seeded.model_id)
    assert clustering.details["threshold"] == rechosen and clustering.details["threshold_source"] == "dataset"
    assert clustering.details["cut"] == "threshold" and "set_threshold" not in clustering.details

    with session_scope(app_env) as session:  # a per-set cut: the heatmap centres on this set's own threshold
        set_dataset_threshold(session, seeded.model_id, seeded.dataset_id, rechosen, chosen_on_sets=5,
                              cut="silhouette")
        detail = get_set(session, seeded.set_ids[3])
    forget_cached_queries()
    at = open_app(query={"set": str(seeded.set_ids[3])})
    (figure,) = plotly_specs(at)
    page = texts_of(at)
    sim = ClusteringModel.load(tiny_model).similarities([EntitySet(id="s", entities=list(detail.entities))])[0]
    own = set_threshold(sim, rechosen, "silhouette")
    assert figure["data"][0]["zmid"] == pytest.approx(own, abs=1e-4)
    assert f"Cut per set where the silhouette is highest: SIA embeddings at {own:+.2f} give" in page
    assert "A per-set cut (highest silhouette; threshold" in page
    next(b for b in at.button if b.label == "Predict with the model").click().run()
    with session_scope(app_env, readonly=True) as session:
        clustering = get_set(session, seeded.set_ids[3]).latest("model", seeded.model_id)
    assert clustering.details["cut"] == "silhouette"
    assert clustering.details["set_threshold"] == pytest.approx(own, abs=1e-4)


def test_review_warns_when_the_dataset_is_far_from_the_models_training_data(app_env, tiny_model, tmp_path):
    from cactus.data.sets import Entity, EntitySet
    from db import create_dataset, import_sets

    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, teacher=False, predict=False)
    at = open_app(query={"set": str(seeded.set_ids[0])})
    assert not [w for w in at.warning if "look far" in w.value]
    far = [EntitySet(f"far-{i}", [Entity(f"{i}-{j}", text) for j, text in enumerate(
        ["zebra quartz violin", "xylophone yacht", "quokka waltz", "jazz kazoo"])]) for i in range(3)]
    with session_scope(app_env) as session:
        dataset_id = create_dataset(session, "far", "queries").id
        import_sets(session, dataset_id, far)
        set_id = list_sets(session, dataset_id, limit=1).items[0].id
    forget_cached_queries()
    at = open_app(query={"set": str(set_id)})
    (warning,) = [w for w in at.warning if "look far" in w.value]
    assert "'tiny-sia'" in warning.value and "cactus adapt" in warning.value and "threshold" in warning.value
