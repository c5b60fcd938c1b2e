"""The per-set cut: each set's merge tree cut where its silhouette is highest, chosen against one threshold on
labelled sets, stored in the model card and honoured by predict, streaming, the CLI and the store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cactus.cli import main
from cactus.data.set_files import iter_sets
from cactus.inference.cluster import MergeTree
from cactus.inference.model import ClusteringModel
from cactus.inference.per_set_cut import (
    choose_cut,
    cut_labels,
    k_thresholds,
    set_threshold,
    silhouette_threshold,
)
from cactus.inference.streaming import StreamOptions, predict_stream
from cactus.inference.threshold import check_cut, describe_cut, resolve_cut
from cactus.training.checkpoint import CheckpointError, read_card
from tests.test_unlabelled_threshold import block_similarity, same_partition
from tests.tiny_data import write_tiny_dataset


def test_every_reachable_k_has_a_threshold_that_cuts_exactly_k_clusters():
    sim, _ = block_similarity([3, 4, 2, 5], 0.8, 0.1, np.random.default_rng(3), noise=0.05)
    tree = MergeTree(sim)
    ks = k_thresholds(tree)
    assert set(ks) == set(range(2, 11))  # 14 entities: k in 2..10, no ties under noise
    for k, threshold in ks.items():
        assert len(set(tree.cut(threshold).tolist())) == k
    flat = np.full((4, 4), 0.3)
    np.fill_diagonal(flat, 1.0)
    assert k_thresholds(MergeTree(flat)) == {}  # every merge at 0.3: no k between 1 and 4 can be cut out


@pytest.mark.parametrize(("within", "between"), [(0.9, 0.2), (0.45, -0.3), (0.99, 0.93)])
def test_the_per_set_cut_recovers_blocks_on_any_similarity_scale(within, between):
    rng = np.random.default_rng(0)
    for _ in range(5):
        sizes = list(rng.integers(2, 6, size=rng.integers(2, 5)))
        sim, labels = block_similarity(sizes, within, between, rng, noise=0.01)
        threshold = silhouette_threshold(sim, 0.5)
        assert between < threshold < within
        assert same_partition(cut_labels(sim, 0.5, "silhouette"), labels)
        assert same_partition(MergeTree(sim).cut(threshold), labels)


def test_small_sets_and_the_threshold_cut_use_the_given_threshold():
    assert silhouette_threshold(np.eye(2), 0.37) == 0.37  # under 3 entities: no silhouette
    assert silhouette_threshold(np.ones((1, 1)), -0.2) == -0.2
    sim, _ = block_similarity([3, 3], 0.9, 0.1, np.random.default_rng(1))
    assert set_threshold(sim, 0.95, "threshold") == 0.95
    assert cut_labels(sim, 0.95, "threshold").tolist() == list(range(6))  # above every pair: all apart
    with pytest.raises(ValueError, match="unknown cut 'kmeans'; choose one of threshold, silhouette"):
        set_threshold(sim, 0.5, "kmeans")


def test_choose_cut_prefers_the_per_set_cut_only_where_one_threshold_cannot_fit_every_set():
    rng = np.random.default_rng(2)
    scales = [(0.9, 0.5), (0.45, 0.05)]  # one threshold cannot separate the blocks of both kinds of set
    mixed = [block_similarity([3, 4, 3], *scales[i % 2], rng, noise=0.01) for i in range(8)]
    choice = choose_cut([s for s, _ in mixed], [g for _, g in mixed], threshold=0.5)
    assert choice.cut == "silhouette"
    assert choice.scores["silhouette"]["AMI"] > 0.99 > choice.scores["threshold"]["AMI"]
    # sets that are one cluster each: a per-set cut always splits them, the threshold keeps them whole
    whole = [block_similarity([6], 0.8, 0.0, rng, noise=0.05) for _ in range(4)]
    choice = choose_cut([s for s, _ in whole], [g for _, g in whole], threshold=0.2)
    assert choice.cut == "threshold"
    with pytest.raises(ValueError, match="needs labelled sets"):
        choose_cut([], [], 0.5)


def test_cut_words_and_the_rule_for_an_explicit_threshold():
    assert describe_cut(0.4, "threshold") == "threshold +0.40"
    assert describe_cut(-0.1, "silhouette").startswith("a per-set cut (highest silhouette; threshold -0.10")
    assert resolve_cut("silhouette", threshold_given=False) == "silhouette"
    assert resolve_cut("silhouette", threshold_given=True) == "threshold"  # a number given applies to every set
    assert resolve_cut("threshold", threshold_given=True, cut="silhouette") == "silhouette"
    with pytest.raises(ValueError):
        check_cut("per-set")


def test_training_records_the_cut_and_both_cuts_validation_scores(tiny_model):
    card = read_card(tiny_model)
    assert card.cut in ("threshold", "silhouette")
    scores = card.training_data["cut_validation"]
    assert set(scores) == {"threshold", "silhouette"}
    assert card.validation == scores[card.cut]
    chosen = max(scores, key=lambda c: (sum(scores[c][m] for m in ("NMI", "AMI", "RI", "ARI")), c == "threshold"))
    assert card.cut == chosen


def _with_cut(model_dir, tmp_path, cut):
    """A copy of the model folder's card pointing at the same weights, with ``cut`` written in."""
    import shutil

    copy = tmp_path / f"model-{cut}"
    shutil.copytree(model_dir, copy)
    data = json.loads((copy / "card.json").read_text())
    data["cut"] = cut
    (copy / "card.json").write_text(json.dumps(data))
    return copy


def test_old_cards_mean_the_threshold_and_a_bad_cut_is_refused(tiny_model, tmp_path):
    copy = _with_cut(tiny_model, tmp_path, "threshold")
    data = json.loads((copy / "card.json").read_text())
    del data["cut"]
    (copy / "card.json").write_text(json.dumps(data))
    assert read_card(copy).cut == "threshold"
    data["cut"] = "kmeans"
    (copy / "card.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="unknown cut 'kmeans'"):
        read_card(copy)


def test_predict_follows_the_cards_cut_unless_a_threshold_or_cut_is_given(tiny_model, tmp_path, capsys):
    per_set = _with_cut(tiny_model, tmp_path, "silhouette")
    sets = list(iter_sets(write_tiny_dataset(tmp_path / "data", sets=8) / "test.jsonl"))
    model = ClusteringModel.load(per_set, device="cpu")
    sims = model.similarities(sets)
    expected = [cut_labels(sim, model.threshold, "silhouette").tolist() for sim in sims]
    assert [s.labels().tolist() for s in model.predict(sets)] == expected
    at_threshold = [MergeTree(sim).cut(model.threshold).tolist() for sim in sims]
    assert expected != at_threshold  # else the checks below could not tell the cuts apart
    assert [s.labels().tolist() for s in model.predict(sets, threshold=model.threshold)] == at_threshold

    streamed = []
    predict_stream(model.encoder, sets, streamed.append, StreamOptions(threshold=model.threshold, cut="silhouette",
                                                                        with_uncertainty=True))
    assert [s.labels().tolist() for s in streamed] == expected
    for s, sim in zip(streamed, sims, strict=True):
        assert s.extra["set_threshold"] == pytest.approx(set_threshold(sim, model.threshold, "silhouette"), abs=1e-5)
    with pytest.raises(ValueError, match="unknown cut"):
        StreamOptions(threshold=0.5, cut="kmeans")

    source = tmp_path / "data" / "test.jsonl"
    assert main(["predict", str(per_set), str(source), "--out", str(tmp_path / "own.jsonl")]) == 0
    assert "(a per-set cut (highest silhouette" in capsys.readouterr().out
    assert [s.labels().tolist() for s in iter_sets(tmp_path / "own.jsonl")] == expected
    assert main(["predict", str(per_set), str(source), "--out", str(tmp_path / "thr.jsonl"),
                 "--threshold", str(model.threshold)]) == 0
    assert f"(threshold {model.threshold:+.2f})" in capsys.readouterr().out
    assert [s.labels().tolist() for s in iter_sets(tmp_path / "thr.jsonl")] == at_threshold
    assert main(["predict", str(tiny_model), str(source), "--out", str(tmp_path / "forced.jsonl"),
                 "--cut", "silhouette"]) == 0
    forced = ClusteringModel.load(tiny_model, device="cpu")
    assert [s.labels().tolist() for s in iter_sets(tmp_path / "forced.jsonl")] == \
        [cut_labels(sim, forced.threshold, "silhouette").tolist() for sim in forced.similarities(sets)]
