"""Models that travel: several datasets at once, robustness options, adaptation, and the domain-shift warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from cactus.cli import main
from cactus.data import read_dataset
from cactus.encoders.config import EncoderConfig
from cactus.losses import build_loss
from cactus.training.checkpoint import read_card
from cactus.training.config import (
    WISE_FT_ALPHAS,
    AdaptConfig,
    TrainConfig,
    TrainingError,
    config_from_dict,
    config_options,
)
from cactus.training.trainer import (
    SetTrainingModule,
    build_encoder,
    freeze_lower_layers,
    mixed_dataset,
    optimizer_for,
    train,
)
from tests.tiny_backbones import save_tiny_bert
from tests.tiny_data import write_tiny_dataset


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    bert = save_tiny_bert(root / "bert")
    a, b = write_tiny_dataset(root / "a", seed=0), write_tiny_dataset(root / "b", sets=12, seed=1)
    model = root / "model"
    train(a, model, TrainConfig(encoder=EncoderConfig(backbone=str(bert)), epochs=1, batch_size=2))
    return {"root": root, "bert": bert, "a": a, "b": b, "model": model}


def weights(folder: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_file(str(folder / "backbone" / "model.safetensors")).items()}


def config(ws, **options) -> TrainConfig:
    return TrainConfig(encoder=EncoderConfig(backbone=str(ws["bert"])), epochs=1, batch_size=2, **options)


@pytest.mark.parametrize("bad", [{"wise_ft": 1.5}, {"wise_ft": "sometimes"}, {"wise_ft": True},
                                 {"freeze_layers": -1}, {"backbone_lr_scale": 0},
                                 {"selfsup_mix": 2}, {"mix": "sideways"}])
def test_robustness_options_are_checked_with_their_name(bad):
    with pytest.raises(TrainingError, match=next(iter(bad))):
        config_from_dict(TrainConfig, bad)


def test_robustness_options_travel_as_flat_options():
    options = {"wise_ft": 0.5, "freeze_layers": 2, "backbone_lr_scale": 0.1, "selfsup_mix": 0.25, "mix": "equal"}
    made = config_from_dict(TrainConfig, options)
    assert {k: config_options(made)[k] for k in options} == options
    assert config_options(TrainConfig())["wise_ft"] is None  # defaults change nothing
    assert config_from_dict(TrainConfig, {"wise_ft": "auto"}).wise_ft == "auto"
    assert config_from_dict(TrainConfig, {"wise_ft": 1}).wise_ft == 1.0
    with pytest.raises(ValueError, match="replay_weight"):
        AdaptConfig(replay_weight=-1)


def test_backbone_learns_at_a_scaled_rate_and_s_neu_at_the_full_one(ws):
    encoder = build_encoder(EncoderConfig(backbone=str(ws["bert"])), None)
    module = SetTrainingModule(encoder, build_loss("aug_triplet"))
    optimizer = optimizer_for(module, 1e-3, 0.01, backbone_lr_scale=0.1)
    neutral = module.loss.neutral
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(neutral)] == pytest.approx(1e-3)
    assert all(rates[id(p)] == pytest.approx(1e-4) for p in encoder.backbone.parameters())
    assert len(optimizer_for(module, 1e-3, 0.01).param_groups) == 2  # unscaled: the groups resumed runs expect


def test_freezing_keeps_the_lower_layers_as_they_started(ws, tmp_path):
    encoder = build_encoder(EncoderConfig(backbone=str(ws["bert"])), None)
    assert freeze_lower_layers(encoder.backbone, 1) > 0
    frozen = {n for n, p in encoder.backbone.named_parameters() if not p.requires_grad}
    assert any(".layer.0." in n for n in frozen) and any("embeddings" in n for n in frozen)
    assert not any(".layer.1." in n for n in frozen)
    train(ws["a"], tmp_path / "m", config(ws, freeze_layers=1, lr=1e-2))
    start = {k: v.numpy() for k, v in load_file(str(ws["bert"] / "model.safetensors")).items()}
    after = weights(tmp_path / "m")
    layer0 = [k for k in after if ".layer.0." in k]
    layer1 = [k for k in after if ".layer.1." in k and k.endswith("weight")]
    assert layer0 and all(np.array_equal(after[k], start[k]) for k in layer0)
    assert any(not np.array_equal(after[k], start[k]) for k in layer1)


def test_wise_ft_zero_gives_back_the_starting_weights_and_the_card_says_so(ws, tmp_path):
    result = train(ws["a"], tmp_path / "m", config(ws, wise_ft=0.0, lr=1e-2))
    start = {k: v.numpy() for k, v in load_file(str(ws["bert"] / "model.safetensors")).items()}
    after = weights(tmp_path / "m")
    assert all(np.allclose(after[k], start[k], atol=1e-6) for k in after if k in start)
    card = result.card
    assert card.training_data["wise_ft"]["alpha"] == 0.0 and "fine_tuned_validation" in card.training_data["wise_ft"]
    assert card.test["sets"] == 5


def test_wise_ft_auto_keeps_the_alpha_that_scores_best_on_validation(ws, tmp_path):
    tuned = train(ws["a"], tmp_path / "tuned", config(ws, lr=1e-2))
    result = train(ws["a"], tmp_path / "auto", config(ws, lr=1e-2, wise_ft="auto"))
    card, wise = result.card, result.card.training_data["wise_ft"]
    assert wise["chosen_on_validation"] and set(wise["tried"]) == {str(a) for a in WISE_FT_ALPHAS}
    total = {a: sum(row[k] for k in ("NMI", "AMI", "RI", "ARI")) for a, row in wise["tried"].items()}
    best = max(total.values())
    assert wise["alpha"] == max(float(a) for a, t in total.items() if t >= best - 1e-9)  # ties: the larger alpha
    kept = wise["tried"][str(wise["alpha"])]
    assert (card.threshold, card.cut) == (pytest.approx(kept["threshold"], abs=1e-5), kept["cut"])
    assert wise["fine_tuned_threshold"] == tuned.card.threshold
    start = {k: v.numpy() for k, v in load_file(str(ws["bert"] / "model.safetensors")).items()}
    fine, after, alpha = weights(tmp_path / "tuned"), weights(tmp_path / "auto"), wise["alpha"]
    assert all(np.allclose(after[k], alpha * fine[k] + (1 - alpha) * start[k], atol=1e-5) for k in after if k in start)
    assert card.config["wise_ft"] == "auto" and card.test["sets"] == 5


def test_choose_wise_ft_with_alpha_one_leaves_the_fine_tuned_weights(ws):
    from cactus.inference.model import ClusteringModel
    from cactus.training.wise_ft import choose_wise_ft

    model = ClusteringModel.load(ws["model"], device="cpu")
    before = {k: v.clone() for k, v in model.encoder.backbone.state_dict().items()}
    start = build_encoder(EncoderConfig(backbone=str(ws["bert"])), None)
    val = read_dataset(ws["a"], ("val",)).val
    choice = choose_wise_ft(model.encoder, start.backbone, val, (1.0,), "cpu", 8)
    assert choice.alpha == 1.0 and set(choice.cut_scores) == {"threshold", "silhouette"}
    assert all(np.array_equal(v.numpy(), before[k].numpy()) for k, v in model.encoder.backbone.state_dict().items())
    with pytest.raises(ValueError, match="validation sets"):
        choose_wise_ft(model.encoder, start.backbone, [], (1.0,), "cpu", 8)


def test_selfsup_mix_takes_extra_steps_that_change_the_model(ws, tmp_path):
    plain = train(ws["a"], tmp_path / "plain", config(ws, lr=1e-2)).weights_digest
    mixed = train(ws["a"], tmp_path / "mixed", config(ws, lr=1e-2, selfsup_mix=1.0)).weights_digest
    again = train(ws["a"], tmp_path / "again", config(ws, lr=1e-2, selfsup_mix=1.0)).weights_digest
    assert plain != mixed and mixed == again


def test_equal_mix_draws_as_many_sets_from_each_dataset(ws):
    a, b = read_dataset(ws["a"]), read_dataset(ws["b"])
    both = mixed_dataset([ws["a"], ws["b"]], "proportional", 0)
    assert len(both.train) == len(a.train) + len(b.train) and len(both.test) == len(a.test) + len(b.test)
    equal = mixed_dataset([ws["a"], ws["b"]], "equal", 0)
    each = round((len(a.train) + len(b.train)) / 2)
    assert len(equal.train) == 2 * each and sum(s in a.train for s in equal.train) == each


def test_cli_trains_on_several_datasets_and_pretrains_on_several_files(ws, tmp_path, capsys):
    out = tmp_path / "mix"
    assert main(["train", "--datasets", str(ws["a"]), str(ws["b"]), "--mix", "equal", "--out", str(out),
                 "--backbone", str(ws["bert"]), "--epochs", "1", "--batch-size", "2", "--quiet",
                 "--backbone-lr-scale", "0.5"]) == 0
    card = read_card(out)
    assert card.training_data["datasets"] == [str(ws["a"]), str(ws["b"])] and card.training_data["mix"] == "equal"
    assert card.config["backbone_lr_scale"] == 0.5
    assert [d["source"] for d in card.training_data["domains"]] == [str(ws["a"]), str(ws["b"])]
    assert main(["train", str(ws["a"]), "--datasets", str(ws["b"]), "--out", str(tmp_path / "x")]) == 2
    assert "not both" in capsys.readouterr().err
    pre = tmp_path / "pre"
    assert main(["pretrain", str(ws["a"] / "train.jsonl"), str(ws["b"]), "--out", str(pre), "--steps", "2",
                 "--backbone", str(ws["bert"]), "--batch-size", "2", "--quiet"]) == 0
    data = read_card(pre).training_data
    texts = sum(len(s) for d in (ws["a"], ws["b"]) for s in read_dataset(d, ("train",)).train)
    assert data["self_supervised"]["pool_texts"] == texts and len(data["domains"]) == 1


def test_trained_cards_carry_a_fingerprint_and_predict_warns_only_off_domain(ws, tmp_path, capsys):
    domains = read_card(ws["model"]).training_data["domains"]
    assert len(domains) == 1 and len(domains[0]["mean_embedding"]) == 32 and domains[0]["vocabulary"]
    assert main(["predict", str(ws["model"]), str(ws["a"] / "test.jsonl"), "--out", str(tmp_path / "p.jsonl")]) == 0
    assert "warning" not in capsys.readouterr().err
    far = tmp_path / "far.jsonl"
    far.write_text("".join(json.dumps({"id": f"s{i}", "entities": [
        {"id": f"{i}-{j}", "text": text} for j, text in enumerate(["zebra quartz violin", "xylophone yacht",
                                                                  "quokka waltz", "jazz kazoo"])]}) + "\n"
        for i in range(3)))
    assert main(["predict", str(ws["model"]), str(far), "--out", str(tmp_path / "q.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "warning: these texts look far" in err and "cactus adapt" in err and "--cut silhouette" in err


def test_adapt_replays_the_source_and_records_what_it_was_adapted_on(ws, tmp_path, capsys):
    texts = tmp_path / "new.jsonl"
    texts.write_text("".join(json.dumps({"id": f"e{i}", "text": t}) + "\n" for i, t in enumerate(
        ["red apple juice", "green apple", "orange juice", "fresh bread", "white bread", "rice pasta sauce"])))
    out = tmp_path / "adapted"
    assert main(["adapt", str(ws["model"]), str(texts), "--out", str(out), "--steps", "3", "--batch-size", "2",
                 "--quiet"]) == 0
    assert "a per-set cut (highest silhouette; threshold" in capsys.readouterr().out  # the default off home ground
    card = read_card(out)
    assert card.cut == "silhouette" and set(card.training_data["cut_validation"]) == {"threshold", "silhouette"}
    adapted = card.training_data["adapted"][-1]
    assert adapted["from"] == str(ws["model"]) and adapted["on"] == str(texts) and adapted["texts"] == 6
    assert adapted["replay"] == [str(ws["a"])] and card.test["sets"] == 5 and adapted["wise_ft"] == 0.5
    assert [d["source"] for d in card.training_data["domains"]] == [str(ws["a"]), str(texts)]
    assert weights(out).keys() == weights(ws["model"]).keys()
    assert any(not np.array_equal(weights(out)[k], weights(ws["model"])[k]) for k in weights(out))
    assert main(["adapt", str(ws["model"]), str(texts), "--out", str(out), "--steps", "1", "--quiet"]) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert main(["adapt", str(ws["model"]), str(texts), "--out", str(out), "--steps", "1", "--quiet", "--force",
                 "--cut", "threshold"]) == 0
    assert read_card(out).cut == "threshold" and "adapted on 6 texts" in capsys.readouterr().out


def test_adapt_averages_with_the_backbone_the_model_started_from(ws, tmp_path, capsys):
    start = {k: v.numpy() for k, v in load_file(str(ws["bert"] / "model.safetensors")).items()}
    args = ["adapt", str(ws["model"]), str(ws["b"]), "--steps", "2", "--batch-size", "2", "--quiet", "--lr", "1e-2"]
    assert main([*args, "--out", str(tmp_path / "zero"), "--wise-ft", "0"]) == 0
    back = weights(tmp_path / "zero")
    assert all(np.allclose(back[k], start[k], atol=1e-6) for k in back if k in start)
    assert main([*args, "--out", str(tmp_path / "one"), "--wise-ft", "1"]) == 0
    assert read_card(tmp_path / "one").training_data["adapted"][-1]["wise_ft"] == 1.0
    assert any(not np.allclose(weights(tmp_path / "one")[k], start[k]) for k in start)
    assert main([*args, "--out", str(tmp_path / "bad"), "--wise-ft", "1.5"]) == 2
    assert "wise_ft must be between 0 and 1" in capsys.readouterr().err
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(ws["model"], moved)
    card = json.loads((moved / "card.json").read_text())
    card["config"]["backbone"] = str(tmp_path / "no-such-backbone")
    (moved / "card.json").write_text(json.dumps(card))
    assert main(["adapt", str(moved), str(ws["b"]), "--out", str(tmp_path / "o"), "--steps", "1", "--quiet"]) == 2
    assert "--wise-ft 1" in capsys.readouterr().err
    assert not (tmp_path / "o" / "card.json").exists()


def test_adapt_asks_for_replay_when_the_training_data_is_gone(ws, tmp_path, capsys):
    moved = tmp_path / "model"
    import shutil

    shutil.copytree(ws["model"], moved)
    card = json.loads((moved / "card.json").read_text())
    card["training_data"]["dataset"] = str(tmp_path / "gone")
    (moved / "card.json").write_text(json.dumps(card))
    source = str(ws["b"])
    assert main(["adapt", str(moved), source, "--out", str(tmp_path / "o"), "--steps", "1", "--quiet"]) == 2
    assert "--replay" in capsys.readouterr().err
    assert main(["adapt", str(moved), source, "--out", str(tmp_path / "o"), "--steps", "1", "--quiet",
                 "--replay", str(ws["a"])]) == 0
    assert read_card(tmp_path / "o").training_data["adapted"][-1]["replay"] == [str(ws["a"])]
