"""Choosing the threshold on a new dataset's own sets without labels: the highest mean silhouette over the sets,
which follows the similarity scale when it moves, and ``cactus predict --threshold auto``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cactus.cli import main
from cactus.data.set_files import iter_sets
from cactus.inference.cluster import MergeTree
from cactus.inference.unlabelled_threshold import set_silhouette, unlabelled_threshold
from tests.tiny_data import write_tiny_dataset


def block_similarity(sizes: list[int], within: float, between: float, rng: np.random.Generator,
                     noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """A similarity matrix with clusters of ``sizes`` (within / between levels plus noise) and its labels."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    sim = np.where(labels[:, None] == labels[None, :], within, between) + rng.normal(0, noise, (len(labels),) * 2)
    sim = np.clip((sim + sim.T) / 2, -1, 1)
    np.fill_diagonal(sim, 1.0)
    return sim, labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len({(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)}) == len(set(a.tolist())) == \
        len(set(b.tolist()))


@pytest.mark.parametrize(("within", "between"), [(0.75, 0.15), (0.97, 0.82)])
def test_the_chosen_threshold_follows_the_similarity_scale_and_recovers_the_clusters(within, between):
    rng = np.random.default_rng(0)
    sets = [block_similarity(list(rng.integers(2, 6, size=rng.integers(2, 5))), within, between, rng)
            for _ in range(12)]
    choice = unlabelled_threshold([sim for sim, _ in sets])
    assert choice is not None and choice.sets == 12
    assert between < choice.threshold < within  # a fixed threshold of 0.5 would merge everything in the second case
    assert choice.silhouette == max(choice.silhouettes) > 0
    for sim, labels in sets:
        assert same_partition(MergeTree(sim).cut(choice.threshold), labels)


def test_nothing_to_choose_from_gives_none():
    assert unlabelled_threshold([np.eye(2), np.ones((1, 1))]) is None  # no set of 3 or more entities
    flat = np.full((5, 5), 0.4)
    np.fill_diagonal(flat, 1.0)
    assert unlabelled_threshold([flat, flat]) is None  # every cut: one cluster or all singletons
    with pytest.raises(ValueError, match="square"):
        unlabelled_threshold([np.zeros((2, 3))])


def test_one_cluster_or_only_singletons_score_zero():
    distance = 1 - block_similarity([3, 3], 0.9, 0.1, np.random.default_rng(1))[0]
    assert set_silhouette(distance, np.zeros(6, dtype=int)) == 0.0
    assert set_silhouette(distance, np.arange(6)) == 0.0
    assert set_silhouette(distance, np.array([0, 0, 0, 1, 1, 1])) > 0.8


def test_predict_threshold_auto_says_what_it_chose_and_clusters_with_it(tiny_model, tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", sets=12)
    sets = data / "test.jsonl"
    assert main(["predict", str(tiny_model), str(sets), "--out", str(tmp_path / "auto.jsonl"),
                 "--threshold", "auto"]) == 0
    err = capsys.readouterr().err
    assert "--threshold auto: " in err and "no labels used" in err and "the model's own threshold is" in err
    chosen = float(err.split("--threshold auto: ")[1].split()[0])
    assert main(["predict", str(tiny_model), str(sets), "--out", str(tmp_path / "fixed.jsonl"),
                 "--threshold", str(chosen)]) == 0
    assert f"(threshold {chosen:+.2f})" in capsys.readouterr().out

    def clusters(path: Path) -> list:
        return [s.clusters for s in iter_sets(path)]

    assert clusters(tmp_path / "auto.jsonl") == clusters(tmp_path / "fixed.jsonl")


def test_predict_threshold_refuses_words_and_ray_auto_needs_one_file(tiny_model, tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", sets=6)
    with pytest.raises(SystemExit):
        main(["predict", str(tiny_model), str(data / "test.jsonl"), "--out", str(tmp_path / "p.jsonl"),
              "--threshold", "high"])
    assert "a similarity in -1..1 or 'auto', got 'high'" in capsys.readouterr().err
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.jsonl").write_text((data / "test.jsonl").read_text())
    assert main(["predict", str(tiny_model), str(shards), "--out", str(tmp_path / "r.jsonl"), "--engine", "ray",
                 "--threshold", "auto"]) == 2
    assert "reads the first sets of one input file" in capsys.readouterr().err

