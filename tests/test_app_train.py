"""The Train page on a real store with a real worker: label counts, launching a tiny fine-tune, following it to
"succeeded" with its loss and validation charts, cancelling, refusing a bad backbone folder."""

from __future__ import annotations

import subprocess

from app.job_monitor import STATUS_ICONS
from db import list_models, session_scope
from jobs.queue import get_job, list_jobs
from tests.app_helpers import open_app, plotly_specs, seed_store, texts_of
from tests.jobs_helpers import start_worker


def jobs(url: str, **filters):
    with session_scope(url, readonly=True) as session:
        return list_jobs(session, **filters)


def test_launch_a_finetune_and_follow_it_to_the_end(app_env, tiny_bert, tmp_path):
    seed_store(app_env, tmp_path / "ds")
    at = open_app("train")
    assert ("Training will use 24 labelled sets: 0 reviewed by people, 24 labelled by the teacher, 0 with reference "
            "labels") in texts_of(at)

    at.radio(key="train_backbone_kind").set_value("folder").run()
    at.text_input(key="train_backbone_folder").set_value(str(tiny_bert)).run()
    at.number_input(key="train_epochs").set_value(2).run()
    at.toggle(key="train_pretrain").set_value(True).run()
    at.number_input(key="train_steps").set_value(3).run()
    at.text_input(key="train_name").set_value("tiny from the app").run()
    at.checkbox(key="train_activate").uncheck().run()
    at.button(key="train_launch").click().run()

    (job,) = jobs(app_env, type="finetune")
    assert job.params["train"]["backbone"] == str(tiny_bert.resolve()) and job.params["train"]["epochs"] == 2
    assert job.params["pretrain"] == {"steps": 3} and job.params["name"] == "tiny from the app"
    assert job.params["activate"] is False and job.params["human"] == "reviewed"
    assert f"**finetune job {job.id}** · {STATUS_ICONS['queued']} queued" in texts_of(at)

    worker = start_worker(app_env, tmp_path, "--exit-when-idle")
    try:
        assert worker.wait(240) == 0
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    at.run()
    page = texts_of(at)
    assert f"**finetune job {job.id}** · {STATUS_ICONS['succeeded']} succeeded" in page, page
    titles = [spec["layout"]["title"]["text"] for spec in plotly_specs(at)]
    assert titles == ["Loss", "Validation"]
    loss = plotly_specs(at)[0]
    assert [trace["name"] for trace in loss["data"]] == ["pretraining loss", "training loss"]
    scores = [d for d in at.dataframe if "scores" in d.value.columns]
    assert scores and list(scores[0].value["scores"]) == ["val", "test"]
    with session_scope(app_env, readonly=True) as session:
        (model,) = list_models(session)
    assert model.name == "tiny from the app" and not model.active

    # a second launch: the progress panel follows the new job, not the one it followed before
    at.text_input(key="train_name").set_value("second").run()
    at.button(key="train_launch").click().run()
    second = max(j.id for j in jobs(app_env, type="finetune"))
    assert second != job.id and at.selectbox(key="train_watch").value == second
    assert f"**finetune job {second}** · {STATUS_ICONS['queued']} queued" in texts_of(at)


def test_a_bad_folder_is_refused_and_a_queued_job_can_be_cancelled(app_env, tmp_path):
    seed_store(app_env, tmp_path / "ds")
    at = open_app("train")
    at.radio(key="train_backbone_kind").set_value("folder").run()
    at.text_input(key="train_backbone_folder").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="train_launch").click().run()
    assert any("is not a Hugging Face model folder" in e.value for e in at.error)
    assert jobs(app_env) == []

    at.radio(key="train_backbone_kind").set_value("minilm").run()
    at.button(key="train_launch").click().run()
    (job,) = jobs(app_env)
    assert job.params["train"]["backbone"] == "minilm"
    next(b for b in at.button if b.label == "Cancel").click().run()
    with session_scope(app_env, readonly=True) as session:
        assert get_job(session, job.id).status == "cancelled"
    at.run()
    assert f"Job {job.id} was cancelled" in texts_of(at)


def test_a_dataset_without_labels_cannot_train(app_env, tmp_path):
    from db import create_dataset, import_sets
    from tests.app_helpers import tiny_sets

    unlabelled = tiny_sets(tmp_path / "ds")
    for entity_set in unlabelled:
        entity_set.clusters = entity_set.cluster_names = None
    with session_scope(app_env) as session:
        dataset = create_dataset(session, "bare")
        import_sets(session, dataset.id, unlabelled)
    at = open_app("train")
    assert "Training will use 0 labelled sets" in texts_of(at)
    at.button(key="train_launch").click().run()
    assert any("has no labelled sets yet" in e.value for e in at.error)
    assert jobs(app_env) == []


def test_continue_from_a_model_with_adaptation_and_the_robustness_options(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    at = open_app("train")
    assert at.toggle(key="train_adapt").disabled  # nothing to adapt while starting from the backbone
    at.selectbox(key="train_init").set_value(seeded.model_id).run()
    assert at.radio(key="train_backbone_kind").disabled and at.selectbox(key="train_mode").disabled
    assert at.toggle(key="train_pretrain").disabled
    at.toggle(key="train_adapt").set_value(True).run()
    at.number_input(key="train_adapt_steps").set_value(5).run()
    at.slider(key="train_wise_ft").set_value(0.5).run()
    at.number_input(key="train_freeze_layers").set_value(1).run()
    at.select_slider(key="train_backbone_lr_scale").set_value(0.1).run()
    at.slider(key="train_selfsup_mix").set_value(0.25).run()
    at.radio(key="train_cut").set_value("silhouette").run()
    at.button(key="train_launch").click().run()

    (job,) = jobs(app_env, type="finetune")
    assert (job.params["init_model_id"], job.params["adapt"], job.params["adapt_steps"]) == (seeded.model_id, True, 5)
    assert "pretrain" not in job.params
    train = job.params["train"]
    assert (train["mode"], train["wise_ft"], train["freeze_layers"]) == ("sia", 0.5, 1)
    assert (train["backbone_lr_scale"], train["selfsup_mix"], train["cut"]) == (0.1, 0.25, "silhouette")
    at.toggle(key="train_wise_ft_auto").set_value(True).run()
    assert at.slider(key="train_wise_ft").disabled
    at.button(key="train_launch").click().run()
    latest = max(jobs(app_env, type="finetune"), key=lambda j: j.id)
    assert latest.params["train"]["wise_ft"] == "auto"
    at.radio(key="train_cut").set_value("auto").run()
    at.button(key="train_launch").click().run()
    assert "cut" not in max(jobs(app_env, type="finetune"), key=lambda j: j.id).params["train"]  # auto: the default
