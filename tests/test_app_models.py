"""The Models and Evaluate pages on a real store with a real worker: the registry, activating a model, letting it
cluster a dataset, comparing two models, and the Table-2-style report with the baselines."""

from __future__ import annotations

import subprocess

from cactus.training.checkpoint import read_card
from db import active_model, register_model, session_scope
from jobs.queue import get_job, list_jobs
from tests.app_helpers import (
    forget_cached_queries,
    open_app,
    plotly_specs,
    seed_store,
    texts_of,
)
from tests.jobs_helpers import start_worker


def run_worker(url, tmp_path) -> None:
    worker = start_worker(url, tmp_path, "--exit-when-idle")
    try:
        assert worker.wait(240) == 0
    except subprocess.TimeoutExpired:
        worker.kill()
        raise


def second_model(url: str, model_dir, dataset_id: int) -> int:
    card = read_card(model_dir)
    with session_scope(url) as session:
        return register_model(session, name="tiny-b", checkpoint=str(model_dir), backbone=card.backbone, mode="nia",
                              loss=card.loss, threshold=0.5, metrics={"test": {"ARI": 0.25}},
                              dataset_id=dataset_id).id


def test_registry_activate_predict_and_compare(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    other = second_model(app_env, tiny_model, seeded.dataset_id)
    at = open_app("models")
    (table, *_) = at.dataframe
    assert list(table.value["model"]) == ["tiny-b", "tiny-sia"] and list(table.value["active"]) == ["", "●"]
    assert "This is the active model" in texts_of(at)

    at.selectbox(key="models_choice").set_value(other).run()
    at.button(key="models_activate").click().run()
    with session_scope(app_env, readonly=True) as session:
        assert active_model(session).id == other
    at.button(key="models_predict").click().run()
    with session_scope(app_env, readonly=True) as session:
        (predict,) = list_jobs(session, type="predict")
    assert predict.params == {"dataset_id": seeded.dataset_id, "model_id": other, "sets": "missing"}

    at.selectbox(key="models_a").set_value(seeded.model_id).run()
    at.selectbox(key="models_b").set_value(other).run()
    at.button(key="models_compare").click().run()
    run_worker(app_env, tmp_path)  # the prediction, then the comparison
    at.run()
    page = texts_of(at)
    assert "On the 24 sets both have clustered: mean ARI" in page
    assert "| tiny-sia |" in page and "| tiny-b |" in page
    (bars,) = [s for s in plotly_specs(at) if s["data"][0]["type"] == "bar"]
    assert [trace["name"] for trace in bars["data"]] == ["tiny-sia", "tiny-b"]


def test_evaluate_reports_models_and_baselines(app_env, tiny_model, tiny_bert, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    at = open_app("evaluate")
    assert "No evaluation of tiny yet." in texts_of(at)
    assert at.multiselect(key="evaluate_models").value == [seeded.model_id]
    at.text_input(key="evaluate_backbone").set_value(str(tiny_bert)).run()
    at.button(key="evaluate_run").click().run()
    with session_scope(app_env, readonly=True) as session:
        (job,) = list_jobs(session, type="evaluate")
    assert job.params["model_ids"] == [seeded.model_id] and job.params["baselines"] is True

    run_worker(app_env, tmp_path)
    with session_scope(app_env, readonly=True) as session:
        rows = get_job(session, job.id).result["rows"]
    for row in rows:  # every row carries its 95% bootstrap interval over the scored sets
        assert row["ci95"]["AMI"][0] <= row["AMI"] <= row["ci95"]["AMI"][1], row
    with session_scope(app_env, readonly=True) as session:
        notes = get_job(session, job.id).result["notes"]
    assert any("the test split has only" in n for n in notes), notes  # 24 sets in all: a small test split
    at.run()
    page = texts_of(at)
    assert any("the test split has only" in w.value for w in at.warning)
    for method in ("tiny-sia", "K-Means", "Spectral", "Agglomerative"):
        assert f"| {method} |" in page
    assert "**" in page.split("| tiny-sia |")[1]  # the best of some column is bold
    (bars,) = plotly_specs(at)
    assert [t["name"] for t in bars["data"]] == ["tiny-sia", "K-Means", "Spectral", "Agglomerative"]
    assert bars["data"][0]["x"] == ["NMI", "AMI", "RI", "ARI", "F1"]

    again = open_app("evaluate")  # a later visit finds the report in the store
    assert "Reports" in texts_of(again) and "| Agglomerative |" in texts_of(again)


def test_models_page_without_models(app_env):
    at = open_app("models")
    assert "No model is registered yet" in texts_of(at)


def test_deleting_a_model_removes_its_files_only_inside_the_stores_artifacts(app_env, tiny_model, tmp_path):
    import shutil

    from db import list_models

    inside = tmp_path / "store-artifacts" / "jobs" / "1-x" / "model"  # where a finetune job of this store writes
    shutil.copytree(tiny_model, inside)
    card = read_card(tiny_model)
    with session_scope(app_env) as session:
        ids = {name: register_model(session, name=name, checkpoint=str(folder), backbone=card.backbone,
                                    mode=card.mode, loss=card.loss, threshold=card.threshold).id
               for name, folder in (("inside", inside), ("outside", tiny_model))}
    at = open_app("models")
    for name in ("inside", "outside"):
        at.selectbox(key="models_choice").set_value(ids[name]).run()
        assert at.button(key="models_delete").disabled
        at.checkbox(key=f"models_delete_sure_{ids[name]}").check().run()
        at.button(key="models_delete").click().run()
    with session_scope(app_env, readonly=True) as session:
        assert list_models(session) == []
    assert not inside.exists() and tiny_model.exists()  # a folder the user pointed to stays


def test_sweep_curve_and_a_threshold_rechosen_on_another_dataset(app_env, tiny_model, tmp_path):
    from dataclasses import replace
    from shutil import copytree

    from cactus.training.checkpoint import write_card
    from db import dataset_threshold, set_dataset_threshold

    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    other = seed_store(app_env, tmp_path / "ds2", name="queries", teacher=False)  # reference labels only
    at = open_app("models")
    (sweep,) = [s for s in plotly_specs(at) if s["layout"]["title"]["text"] == "Validation score against the threshold"]
    assert len(sweep["data"][0]["x"]) == 21  # the card's sweep, one point per threshold
    assert at.selectbox(key="models_threshold_dataset").value == other.dataset_id  # not the one it was trained on
    card_threshold = read_card(tiny_model).threshold
    assert f"On queries, the card's threshold {card_threshold:+.2f} applies" in texts_of(at)

    at.button(key="models_threshold_rechoose").click().run()
    with session_scope(app_env, readonly=True) as session:
        chosen = dataset_threshold(session, seeded.model_id, other.dataset_id)
    assert chosen is not None and chosen.chosen_on_sets == 24
    page = texts_of(at)
    described = chosen.describe()  # the better of the best threshold and a per-set cut on those sets
    assert f"uses **{described}**, re-chosen on 24 labelled sets of queries" in page
    assert "with a per-set cut (highest silhouette" in page and "with threshold" in page  # both cuts' scores
    assert "an upper bound: chosen and scored on the same sets" in page and "Only 24 labelled sets" in page
    assert any(s["layout"]["title"]["text"] == "Score against the threshold on queries" for s in plotly_specs(at))

    at.button(key="models_threshold_unlabelled").click().run()  # replaces it, without labels this time
    with session_scope(app_env, readonly=True) as session:
        unlabelled = dataset_threshold(session, seeded.model_id, other.dataset_id)
    assert unlabelled is not None and not unlabelled.labelled and 3 <= unlabelled.chosen_on_sets <= 64
    assert unlabelled.cut == "silhouette"  # per set, with a label-free threshold for sets under 3 entities
    assert (f"uses **a per-set cut (highest silhouette; threshold {unlabelled.threshold:+.2f} for sets under 3 "
            f"entities)**, re-chosen without labels, on "
            f"{unlabelled.chosen_on_sets} sets of queries") in texts_of(at)

    at.button(key="models_threshold_clear").click().run()
    with session_scope(app_env, readonly=True) as session:
        assert dataset_threshold(session, seeded.model_id, other.dataset_id) is None

    with session_scope(app_env) as session:  # a per-set cut stored for the dataset is what the page says applies
        set_dataset_threshold(session, seeded.model_id, other.dataset_id, 0.3, chosen_on_sets=24, cut="silhouette")
    forget_cached_queries()
    at = open_app("models")
    assert ("uses **a per-set cut (highest silhouette; threshold +0.30 for sets under 3 entities)**, re-chosen on 24 "
            "labelled sets of queries") in texts_of(at)

    old = copytree(tiny_model, tmp_path / "old-model")  # a card from before the sweep was kept
    card = read_card(old)
    write_card(old, replace(card, history=[{k: v for k, v in row.items() if k != "sweep"} for row in card.history]))
    with session_scope(app_env) as session:
        old_id = register_model(session, name="old", checkpoint=str(old), backbone=card.backbone, mode=card.mode,
                                loss=card.loss, threshold=card.threshold).id
    forget_cached_queries()
    at = open_app("models")
    at.selectbox(key="models_choice").set_value(old_id).run()
    assert "Threshold sweep: not recorded" in texts_of(at)
