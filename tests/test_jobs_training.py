"""The finetune, predict and evaluate jobs on a real SQLite store, run by a real worker on a tiny backbone."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest

from cactus.data import EntitySet, read_dataset
from cactus.inference.model import ClusteringModel
from cactus.training.checkpoint import read_card, write_card
from db import create_dataset, import_sets, list_sets, session_scope
from db.registry import active_model, get_model, list_models, register_model
from db.sets import get_set
from jobs.base import JobParamsError
from jobs.queue import enqueue, get_job
from tests.jobs_helpers import start_worker
from tests.tiny_backbones import save_tiny_bert
from tests.tiny_data import write_tiny_dataset


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    data = read_dataset(write_tiny_dataset(tmp_path / "ds"))
    with session_scope(url) as session:
        dataset = create_dataset(session, "tiny", "products")
        for split in ("train", "val", "test"):
            import_sets(session, dataset.id, data[split], split=split)
    yield {"url": url, "dataset_id": dataset.id, "bert": save_tiny_bert(tmp_path / "bert"), "tmp": tmp_path}
    from db.session import dispose_engines

    dispose_engines()


def run_jobs(store, *jobs: tuple[str, dict]) -> list:
    with session_scope(store["url"]) as session:
        ids = [enqueue(session, kind, params).id for kind, params in jobs]
    worker = start_worker(store["url"], store["tmp"], "--exit-when-idle")
    try:
        assert worker.wait(240) == 0
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    with session_scope(store["url"], readonly=True) as session:
        return [get_job(session, i) for i in ids]


def test_finetune_then_predict_then_evaluate(store):
    train = {"backbone": str(store["bert"]), "epochs": 2, "batch_size": 2}
    finetune, predict, evaluate = run_jobs(
        store,
        ("finetune", {"dataset_id": store["dataset_id"], "train": train, "pretrain": {"steps": 4},
                      "name": "tiny-sia"}),
        ("predict", {"dataset_id": store["dataset_id"]}),
        ("evaluate", {"dataset_id": store["dataset_id"], "backbone": str(store["bert"])}),
    )
    assert finetune.status == "succeeded", (finetune.error, finetune.log_tail)
    assert finetune.result["name"] == "tiny-sia" and set(finetune.result["test"]) >= {"NMI", "ARI"}
    history = finetune.metrics["history"]
    assert any(p.get("phase") == "pretrain" for p in history) and any(p.get("phase") == "validate" for p in history)
    assert "val_ARI" in finetune.metrics and "test_ARI" in finetune.metrics
    with session_scope(store["url"], readonly=True) as session:
        model = active_model(session)
        assert model is not None and model.name == "tiny-sia" and model.mode == "sia"
        assert model.metrics["test"]["ARI"] == finetune.result["test"]["ARI"]
        assert model.training["train_sets"] == 14 and model.training["init"]
        for epoch in model.training["history"]:  # the validation sweep that chose each epoch's threshold is kept
            curve = {row["threshold"]: row for row in epoch["sweep"]}
            assert len(curve) == 21
            assert curve[epoch["threshold"]]["AMI"] == pytest.approx(epoch["validation"]["AMI"], abs=1e-5)

    assert predict.status == "succeeded", (predict.error, predict.log_tail)
    assert predict.result["sets"] == 24
    with session_scope(store["url"], readonly=True) as session:
        page = list_sets(session, store["dataset_id"], has=["model"], limit=100)
        assert page.total == 24
        detail = get_set(session, page.items[0].id)
        clustering = detail.latest("model", model.id)
        assert clustering is not None and clustering.details["threshold"] == model.threshold
        # every predicted cluster is named, marked generated; a cluster equal to a reference one takes its name
        assert clustering.details["names_generated"] is True and 0.0 <= clustering.details["uncertainty"] <= 1.0
        assert len(clustering.names) == len(clustering.clusters) and all(clustering.names)
        for page_item in page.items:
            shown = get_set(session, page_item.id)
            predicted, reference = shown.latest("model", model.id), shown.latest("reference")
            named = dict(zip((tuple(sorted(c)) for c in reference.clusters), reference.names, strict=True))
            for cluster, name in zip(predicted.clusters, predicted.names, strict=True):
                if tuple(sorted(cluster)) in named:
                    assert name == named[tuple(sorted(cluster))]
        assert "cluster names from" in predict.log_tail

    assert evaluate.status == "succeeded", (evaluate.error, evaluate.log_tail)
    methods = [row["method"] for row in evaluate.result["rows"]]
    assert methods == ["tiny-sia", "K-Means", "Spectral", "Agglomerative"]
    assert evaluate.result["rows"][0]["ARI"] == pytest.approx(finetune.result["test"]["ARI"])


def test_predict_uses_the_card_threshold_and_refreshes_the_registry_copy(store, tiny_model):
    model_dir = shutil.copytree(tiny_model, store["tmp"] / "model")
    card = read_card(model_dir)
    with session_scope(store["url"]) as session:
        model_id = register_model(session, name="tiny", checkpoint=str(model_dir), backbone=card.backbone,
                                  mode=card.mode, loss=card.loss, threshold=card.threshold, activate=True).id
    rewritten = 0.9 if card.threshold < 0.85 else -0.9  # the card is re-written (e.g. a threshold chosen again)
    write_card(model_dir, replace(card, threshold=rewritten))

    (predict,) = run_jobs(store, ("predict", {"dataset_id": store["dataset_id"]}))
    assert predict.status == "succeeded", (predict.error, predict.log_tail)
    assert predict.result["threshold"] == rewritten and "the card wins" in predict.log_tail
    with session_scope(store["url"], readonly=True) as session:
        assert get_model(session, model_id).threshold == rewritten
        detail = get_set(session, list_sets(session, store["dataset_id"], has=["model"], limit=1).items[0].id)
        assert detail.latest("model", model_id).details["threshold"] == rewritten


def test_predict_without_an_active_model_fails_readably(store):
    (predict,) = run_jobs(store, ("predict", {"dataset_id": store["dataset_id"]}))
    assert predict.status == "failed" and "no model is active" in predict.error
    with session_scope(store["url"], readonly=True) as session:
        assert list_models(session) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"train": {"epochs": 0}}, "finetune: train: epochs must be at least 1"),
        ({"train": {"mode": "full"}}, "mode must be one of nia, sia, sia_first, sia_qkey, fia"),
        ({"train": {"learning_rate": 1}}, "unknown training options: learning_rate"),
        ({"train": {"lr": "1e-4"}}, "finetune: train: lr must be a number, got '1e-4'"),
        ({"train": {"epochs": True}}, "finetune: train: epochs must be an integer, got True"),
        ({"train": {"init": 7}}, "finetune: train: init must be a string or null, got 7"),
        ({"pretrain": {"steps": -1}}, "finetune: pretrain: steps must be at least 1"),
        ({"human": "all"}, "human must be 'reviewed' or 'any'"),
    ],
)
def test_bad_finetune_parameters_are_refused_at_enqueue(store, params, message):
    with session_scope(store["url"]) as session, pytest.raises(JobParamsError, match=message.replace("(", r"\(")):
        enqueue(session, "finetune", {"dataset_id": store["dataset_id"], **params})


@pytest.mark.parametrize("cut", ["threshold", "silhouette"])
def test_a_threshold_rechosen_on_the_dataset_is_used_by_predict_and_evaluate(store, tiny_model, cut):
    from cactus.inference.per_set_cut import set_threshold
    from db.thresholds import set_dataset_threshold

    card = read_card(tiny_model)
    rechosen = 0.8 if card.threshold < 0.75 else -0.8
    with session_scope(store["url"]) as session:
        model_id = register_model(session, name="tiny", checkpoint=str(tiny_model), backbone=card.backbone,
                                  mode=card.mode, loss=card.loss, threshold=card.threshold, activate=True).id
        set_dataset_threshold(session, model_id, store["dataset_id"], rechosen, chosen_on_sets=24, cut=cut)
    predict, evaluate = run_jobs(store, ("predict", {"dataset_id": store["dataset_id"]}),
                                 ("evaluate", {"dataset_id": store["dataset_id"], "baselines": False}))
    assert predict.status == "succeeded", (predict.error, predict.log_tail)
    assert predict.result["threshold"] == rechosen and predict.result["threshold_source"] == "dataset"
    assert predict.result["cut"] == cut
    assert "re-chosen for 'tiny' on 24 labelled sets of 'tiny'" in predict.log_tail
    with session_scope(store["url"], readonly=True) as session:
        detail = get_set(session, list_sets(session, store["dataset_id"], has=["model"], limit=1).items[0].id)
        details = detail.latest("model", model_id).details
        assert details["threshold"] == rechosen and details["threshold_source"] == "dataset"
        assert details["cut"] == cut
        assert get_model(session, model_id).threshold == card.threshold  # the card's stays the model's own
    if cut == "silhouette":  # each set cut at its own threshold, recorded beside the fallback
        shown = EntitySet(id="shown", entities=list(detail.entities))
        sim = ClusteringModel.load(tiny_model).similarities([shown])[0]
        assert details["set_threshold"] == pytest.approx(set_threshold(sim, rechosen, "silhouette"), abs=1e-4)
        assert "a per-set cut (highest silhouette; threshold" in predict.log_tail
    else:
        assert "set_threshold" not in details
    assert evaluate.status == "succeeded", (evaluate.error, evaluate.log_tail)
    (row,) = evaluate.result["rows"]
    described = f"threshold {rechosen:+.2f}" if cut == "threshold" else "a per-set cut (highest silhouette;"
    assert row["method"].startswith(f"tiny ({described}") and row["method"].endswith(", re-chosen here)")
    assert row["cut"] == cut and row["threshold"] == rechosen and row["threshold_source"] == "dataset"


def test_finetune_adapts_an_init_model_whose_training_data_it_cannot_compare(store, tiny_model):
    model_dir = shutil.copytree(tiny_model, store["tmp"] / "old-model")
    card = read_card(model_dir)
    data = {k: v for k, v in card.training_data.items() if k != "domains"}  # a card from before fingerprints
    write_card(model_dir, replace(card, training_data={**data, "dataset": str(store["tmp"] / "gone")}))
    with session_scope(store["url"]) as session:
        init_id = register_model(session, name="old", checkpoint=str(model_dir), backbone=card.backbone,
                                 mode=card.mode, loss=card.loss, threshold=card.threshold).id
    train = {"epochs": 1, "batch_size": 2}
    (finetune,) = run_jobs(store, ("finetune", {"dataset_id": store["dataset_id"], "train": train,
                                                "init_model_id": init_id, "adapt": True, "adapt_steps": 2}))
    assert finetune.status == "succeeded", (finetune.error, finetune.log_tail)
    assert "no fingerprint of its training data: adapting first" in finetune.log_tail
    assert "replaying this dataset's training sets instead" in finetune.log_tail
    with session_scope(store["url"], readonly=True) as session:
        model = get_model(session, finetune.result["model_id"])
        assert model.training["init"].endswith("adapted") and model.training["domains"]
        adapted = read_card(model.training["init"])
        assert adapted.training_data["adapted"][-1]["from"] == str(model_dir)


def test_predict_warns_when_the_dataset_is_far_from_the_training_data(store, tiny_model):
    from cactus.data.sets import Entity, EntitySet

    card = read_card(tiny_model)
    far = [EntitySet(f"far-{i}", [Entity(f"{i}-{j}", text) for j, text in enumerate(
        ["zebra quartz violin", "xylophone yacht", "quokka waltz", "jazz kazoo"])]) for i in range(3)]
    with session_scope(store["url"]) as session:
        register_model(session, name="tiny", checkpoint=str(tiny_model), backbone=card.backbone, mode=card.mode,
                       loss=card.loss, threshold=card.threshold, activate=True)
        other_id = create_dataset(session, "far", "queries").id
        import_sets(session, other_id, far, split="test")
    near, off = run_jobs(store, ("predict", {"dataset_id": store["dataset_id"]}), ("predict", {"dataset_id": other_id}))
    assert near.status == off.status == "succeeded", (off.error, off.log_tail)
    assert "domain_warning" not in near.result
    assert "cactus adapt" in off.result["domain_warning"] and "warning: these texts look far" in off.log_tail


@pytest.mark.parametrize(("params", "message"), [
    ({"adapt": True}, "adapt needs init_model_id"),
    ({"init_model_id": 1, "pretrain": {"steps": 2}}, "init_model_id and pretrain exclude each other"),
    ({"adapt": "yes"}, "adapt must be true or false"),
])
def test_bad_adapt_parameters_are_refused_at_enqueue(store, params, message):
    with session_scope(store["url"]) as session, pytest.raises(JobParamsError, match=message):
        enqueue(session, "finetune", {"dataset_id": store["dataset_id"], **params})
