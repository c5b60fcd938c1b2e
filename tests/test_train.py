"""Training on tiny backbones: checkpoints, resume, refusal of unknown cards, pretraining, CLI, data parallel."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from cactus.cli import main
from cactus.data import read_sets
from cactus.encoders.config import EncoderConfig
from cactus.inference.model import ClusteringModel
from cactus.training.checkpoint import CheckpointError, read_card
from cactus.training.trainer import PretrainConfig, TrainConfig, TrainingError, pretrain, train
from tests.tiny_backbones import save_tiny_bert, save_tiny_t5
from tests.tiny_data import write_tiny_dataset


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {"dataset": write_tiny_dataset(root / "ds"), "bert": save_tiny_bert(root / "bert"),
            "t5": save_tiny_t5(root / "t5"), "root": root}


def on(workspace, family: str = "bert") -> EncoderConfig:
    """The encoder options of the workspace's tiny ``family`` backbone (default mode and max_tokens)."""
    return EncoderConfig(backbone=str(workspace[family]))


def weights(model_dir: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_file(str(model_dir / "backbone" / "model.safetensors")).items()}


def test_train_writes_a_complete_card_and_the_model_predicts(workspace, tmp_path):
    reports = []
    result = train(workspace["dataset"], tmp_path / "m", TrainConfig(encoder=on(workspace), epochs=2,
                                                                      batch_size=2, seed=3), callback=reports.append)
    card = read_card(tmp_path / "m")
    assert card.mode == "sia" and card.loss == "aug_triplet" and card.seed == 3
    assert card.backbone == str(workspace["bert"])
    assert -1 <= card.threshold <= 1 and card.epoch in (1, 2)
    assert set(card.test) == {"sets", "NMI", "AMI", "RI", "ARI", "F1"} and card.test["sets"] == 5
    assert set(card.validation) >= {"NMI", "AMI", "RI", "ARI"} and isinstance(card.s_neu, float)
    assert len(card.training_data["fingerprint"]) == 64 and card.training_data["train_sets"] == 14
    assert [row["epoch"] for row in card.history] == [1, 2] and card.history[0]["sets_per_s"] > 0
    assert set(card.versions) == {"cactus", "torch", "transformers", "python"}
    assert not (tmp_path / "m" / "training_state").exists()  # removed once finished
    phases = [r.phase for r in reports]
    assert phases[0] == "train" and "validate" in phases and phases[-1] == "done"
    assert any(r.metrics and r.phase == "train" for r in reports)
    assert all(r.eta_s is None or r.eta_s >= 0 for r in reports)
    assert result.card.test == card.test

    model = ClusteringModel.load(tmp_path / "m")
    test_sets = read_sets(workspace["dataset"] / "test.jsonl").sets
    predicted = model.predict(test_sets, with_similarity=True)
    assert [p.id for p in predicted] == [s.id for s in test_sets]
    sims = np.array(predicted[0].similarity)
    assert sims.shape == (len(test_sets[0]),) * 2 and np.allclose(sims, sims.T, atol=1e-4)
    # the saved model reproduces the test scores of the card
    from cactus.evaluation.scoring import evaluate_predictions

    assert evaluate_predictions(test_sets, predicted).average["ARI"] == pytest.approx(card.test["ARI"])


def test_interrupted_training_resumes_to_the_same_weights(workspace, tmp_path):
    config = TrainConfig(encoder=on(workspace), epochs=3, batch_size=2, seed=1)
    train(workspace["dataset"], tmp_path / "straight", config)

    def stop_after_epoch_2(progress):
        if progress.phase == "train" and progress.metrics is not None and progress.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(workspace["dataset"], tmp_path / "resumed", config, callback=stop_after_epoch_2)
    assert json.loads((tmp_path / "resumed" / "training_state" / "state.json").read_text())["progress"]["epoch"] == 2
    messages = []
    train(workspace["dataset"], tmp_path / "resumed", config, callback=lambda p: messages.append(p.message))
    assert "resuming after epoch 2 of 3" in messages
    straight, resumed = read_card(tmp_path / "straight"), read_card(tmp_path / "resumed")
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in straight.history])
    assert resumed.test == straight.test
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_out_dir_protection_and_config_mismatch(workspace, tmp_path):
    config = TrainConfig(encoder=on(workspace), epochs=1, batch_size=4)
    train(workspace["dataset"], tmp_path / "m", config)
    with pytest.raises(TrainingError, match="already holds a trained model; choose another --out or pass --force"):
        train(workspace["dataset"], tmp_path / "m", config)
    train(workspace["dataset"], tmp_path / "m", config, force=True)

    def stop(progress):
        if progress.metrics is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(workspace["dataset"], tmp_path / "half", TrainConfig(encoder=on(workspace), epochs=2),
              callback=stop)
    with pytest.raises(TrainingError, match=r"interrupted run with other settings \(loss\)"):
        train(workspace["dataset"], tmp_path / "half", TrainConfig(encoder=on(workspace), epochs=2,
                                                                   loss="triplet"))


def test_cards_this_version_does_not_understand_are_refused(workspace, tmp_path):
    train(workspace["dataset"], tmp_path / "m", TrainConfig(encoder=on(workspace), epochs=1))
    card_path = tmp_path / "m" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "version": 99}))
    with pytest.raises(CheckpointError, match=r"is a version 99 model card; this cactus .* reads version 1"):
        ClusteringModel.load(tmp_path / "m")
    card_path.write_text(json.dumps({**card, "quantized": True}))
    with pytest.raises(CheckpointError, match="fields this cactus does not understand: quantized"):
        read_card(tmp_path / "m")
    card_path.write_text(json.dumps({**card, "threshold": 1.5}))
    with pytest.raises(CheckpointError, match=r"card\.json: threshold must lie in \[-1, 1\]"):
        ClusteringModel.load(tmp_path / "m")
    card_path.write_text(json.dumps({**card, "threshold": "0.5"}))
    with pytest.raises(CheckpointError, match="threshold must be a number"):
        read_card(tmp_path / "m")
    card_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="is not a cactus model card"):
        read_card(tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"has no card\.json"):
        read_card(tmp_path)


def test_pretraining_then_fine_tuning_from_it(workspace, tmp_path):
    texts = [t for s in read_sets(workspace["dataset"] / "train.jsonl").sets for t in s.texts]
    pre = pretrain(texts, tmp_path / "pre", PretrainConfig(encoder=on(workspace), steps=6, batch_size=2,
                                                           save_every=2, threshold_sets=4))
    assert pre.card.training_data["self_supervised"]["steps"] == 6 and -1 <= pre.card.threshold <= 1
    before = weights(tmp_path / "pre")
    result = train(workspace["dataset"], tmp_path / "fine",
                   TrainConfig(encoder=EncoderConfig("ignored-when-init"), epochs=1, init=str(tmp_path / "pre")))
    assert result.card.backbone == str(workspace["bert"]) and result.card.training_data["init"] == str(tmp_path / "pre")
    after = weights(tmp_path / "fine")
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_t5_backbone_trains_and_reloads(workspace, tmp_path):
    result = train(workspace["dataset"], tmp_path / "t5m", TrainConfig(encoder=on(workspace, "t5"), epochs=1,
                                                                        loss="triplet"))
    model = ClusteringModel.load(tmp_path / "t5m")
    sets = read_sets(workspace["dataset"] / "test.jsonl").sets
    from cactus.evaluation.scoring import evaluate_predictions

    assert evaluate_predictions(sets, model.predict(sets)).average["NMI"] == pytest.approx(result.card.test["NMI"])


def test_cli_train_predict_evaluate(workspace, tmp_path, capsys):
    ds, model_dir = workspace["dataset"], tmp_path / "model"
    assert main(["train", str(ds), "--backbone", str(workspace["bert"]), "--epochs", "1", "--out", str(model_dir),
                 "--limit-train", "6", "--quiet"]) == 0
    assert "saved" in capsys.readouterr().out and read_card(model_dir).training_data["train_sets"] == 6
    pred = tmp_path / "pred.jsonl"
    assert main(["predict", str(model_dir), str(ds / "test.jsonl"), "--out", str(pred), "--with-similarity"]) == 0
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert all("similarity" in r and "clusters" in r for r in rows)
    assert main(["evaluate", str(ds / "test.jsonl"), str(pred), "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["NMI"] == pytest.approx(read_card(model_dir).test["NMI"])
    assert main(["predict", str(tmp_path / "nope"), str(ds / "test.jsonl"), "--out", str(pred)]) == 2
    assert "model folder" in capsys.readouterr().err
    assert main(["train", str(ds), "--backbone", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "expected" in capsys.readouterr().err


def test_data_parallel_ranks_end_with_identical_weights(workspace, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import json, os, sys\n"
        "from cactus.encoders.config import EncoderConfig\n"
        "from cactus.training.trainer import TrainConfig, train\n"
        "config = TrainConfig(encoder=EncoderConfig(sys.argv[3]), epochs=2, batch_size=2)\n"
        "result = train(sys.argv[1], sys.argv[2], config)\n"
        "rank = os.environ['RANK']\n"
        "open(os.path.join(sys.argv[4], f'rank{rank}.json'), 'w').write(json.dumps({'digest': result.weights_digest,"
        " 'world': os.environ['WORLD_SIZE']}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with socket.socket() as probe:  # torchrun needs a concrete free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port),
           str(script), str(workspace["dataset"]), str(tmp_path / "m"), str(workspace["bert"]), str(tmp_path)]
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        _, stderr = launcher.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)  # the ranks too, not only the launcher
        raise
    assert launcher.returncode == 0, stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == "2" and ranks[0]["digest"] == ranks[1]["digest"]
    assert read_card(tmp_path / "m").test["sets"] == 5


def test_report_rows_carry_bootstrap_intervals_and_a_rerun_reuses_the_model(workspace, tmp_path, capsys):
    out = tmp_path / "report.json"
    args = ["report", str(workspace["dataset"]), "--out", str(out), "--backbone", str(workspace["bert"]),
            "--epochs", "1", "--only", "sia-aug_triplet", "--quiet"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    trained = next(r for r in report["rows"] if r["trained"])
    assert [r["method"] for r in report["rows"]] == ["K-Means", "Spectral", "Agglomerative", "SIA + aug_triplet"]
    for row in report["rows"]:
        low, high = row["ci95"]["AMI"]
        assert low <= row["AMI"] <= high
    printed = capsys.readouterr()
    assert "SIA + aug_triplet: 95% CI over" in printed.out and "the test split of" in printed.err
    assert main(args) == 0  # the finished model is reused, and its interval is the same
    assert json.loads(out.read_text())["rows"][-1]["ci95"] == trained["ci95"]
