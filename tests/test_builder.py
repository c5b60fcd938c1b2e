"""The set builder: context-dependent ground truth from a taxonomy, baskets, seeds and splits."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cactus.cli import main
from cactus.data import read_dataset, read_entities
from cactus.data.builder import BuilderConfig, Taxonomy, basket_clustering, build_basket_sets, build_taxonomy_sets
from cactus.data.entities import LabelledEntity

# "food" repeats under two parents: it must be two nodes
TAXONOMY = {
    ("Pets", "Dogs", "food"): ["dog kibble", "puppy chow", "wet dog food"],
    ("Pets", "Dogs", "toys"): ["squeaky bone", "rope toy", "tennis ball for dogs"],
    ("Pets", "Cats", "food"): ["cat kibble", "tuna cat food", "kitten food"],
    ("Pets", "Cats", "toys"): ["feather wand", "catnip mouse", "laser pointer"],
    ("Crafts", "Glue"): ["glue stick", "hot glue gun", "pva glue"],
    ("Crafts", "Candles"): ["candle wick", "beeswax sheets", "soy wax flakes"],
}


def pool() -> list[LabelledEntity]:
    return [LabelledEntity(f"{'/'.join(path)}#{i}", text, path)
            for path, texts in TAXONOMY.items() for i, text in enumerate(texts)]


def test_taxonomy_nodes_are_prefixes_and_anchors_have_two_children():
    tax = Taxonomy(pool())
    assert tax.children[("Pets",)] == [("Pets", "Cats"), ("Pets", "Dogs")]
    assert ("Pets", "Dogs", "food") in tax.children[("Pets", "Dogs")]
    assert len(tax.members[("Pets", "Cats", "food")]) == 3 and len(tax.members[("Pets", "Dogs", "food")]) == 3
    assert tax.anchors() == [(), ("Crafts",), ("Pets",), ("Pets", "Cats"), ("Pets", "Dogs")]


def test_sets_are_valid_and_clusters_are_children_of_the_anchor():
    entities = {e.id: e for e in pool()}
    report = build_taxonomy_sets(pool(), BuilderConfig(sets=60, kmax=3, smax=2, seed=3, split_by="sets"))
    assert [len(report.splits[s]) for s in ("train", "val", "test")] == [36, 12, 12]
    anchors_seen = set()
    for entity_set in report.splits["train"]:
        anchor = () if entity_set.extra["anchor"] == "(root)" else tuple(entity_set.extra["anchor"].split(" > "))
        anchors_seen.add(anchor)
        assert 2 <= len(entity_set.clusters) <= 3
        for cluster, name in zip(entity_set.clusters, entity_set.cluster_names, strict=True):
            assert 1 <= len(cluster) <= 2
            paths = {entities[entity_set.entities[i].id].labels[: len(anchor) + 1] for i in cluster}
            assert len(paths) == 1 and next(iter(paths))[-1] == name
    assert len(anchors_seen) >= 4  # the same pool gives sets anchored at different depths


def test_same_pair_can_be_together_or_apart_depending_on_the_set():
    report = build_taxonomy_sets(pool(), BuilderConfig(sets=400, kmax=6, smax=5, seed=0, split=(1, 0, 0),
                                                       split_by="sets"))
    together = apart = 0
    for entity_set in report.splits["train"]:
        label = dict(zip([e.text for e in entity_set.entities], entity_set.labels().tolist(), strict=True))
        if "dog kibble" in label and "cat kibble" in label:
            together += label["dog kibble"] == label["cat kibble"]
            apart += label["dog kibble"] != label["cat kibble"]
    assert together > 0 and apart > 0


def test_seeded_and_deterministic_with_disjoint_entity_pools():
    config = BuilderConfig(sets=30, seed=5)
    first = build_taxonomy_sets(pool(), config).splits
    again = build_taxonomy_sets(pool(), config).splits
    other = build_taxonomy_sets(pool(), BuilderConfig(sets=30, seed=6)).splits
    assert [s.to_json() for s in first["train"]] == [s.to_json() for s in again["train"]]
    assert [s.to_json() for s in first["train"]] != [s.to_json() for s in other["train"]]
    ids = {split: {e.id for s in sets for e in s.entities} for split, sets in first.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]


def test_config_validation_messages():
    with pytest.raises(ValueError, match="--kmax must be at least 2"):
        BuilderConfig(kmax=1)
    with pytest.raises(ValueError, match="--split needs three non-negative fractions summing to 1"):
        BuilderConfig(split=(0.5, 0.5, 0.5))


def test_basket_partition_is_deepest_level_with_2_to_kmax_clusters():
    paths = [("dairy", "yogurt"), ("dairy", "milk"), ("produce", "fruit"), ("produce", "herbs")]
    assert basket_clustering(paths, kmax=4) == (2, paths)
    assert basket_clustering(paths, kmax=3) == (1, [("dairy",), ("dairy",), ("produce",), ("produce",)])
    same = [("dairy", "milk"), ("dairy", "milk")]
    assert basket_clustering(same, kmax=3) == (1, [("dairy",), ("dairy",)])  # else the coarsest


def test_baskets_become_sets_and_users_stay_in_one_split(tmp_path):
    entities = pool()
    baskets = tmp_path / "b.jsonl"
    lines = []
    for u in range(30):
        for order in range(2):
            ids = [entities[(u * 3 + order + j * 4) % len(entities)].id for j in range(4)] + ["unknown:1"]
            lines.append(json.dumps({"user": f"u{u}", "order_id": f"{u}-{order}", "entity_ids": ids}))
    lines.append(json.dumps({"user": "lonely", "entity_ids": [entities[0].id]}))
    baskets.write_text("\n".join(lines) + "\n")
    report = build_basket_sets(entities, baskets, BuilderConfig(sets=1000, kmax=3))
    sets = [s for split in report.splits.values() for s in split]
    assert len(sets) == 60
    user_splits = {}
    for split, split_sets in report.splits.items():
        for s in split_sets:
            assert user_splits.setdefault(s.extra["user"], split) == split
    assert "1 with fewer than 2 known labelled entities left out, 60 entity ids not in the entities file" in \
        report.summary_text()


def test_make_sets_cli_writes_a_dataset_and_refuses_to_overwrite(tmp_path, capsys):
    entities = tmp_path / "e.jsonl"
    entities.write_text("\n".join(json.dumps({"id": e.id, "text": e.text, "labels": list(e.labels)})
                                  for e in pool()) + "\n")
    out = tmp_path / "ds"
    assert main(["make-sets", str(entities), str(out), "--sets", "20", "--split-by", "sets"]) == 0
    printed = capsys.readouterr().out
    assert "train      12" in printed and "entities/set" in printed
    dataset = read_dataset(out)
    assert len(dataset.train) == 12 and len(dataset.val) == 4 and len(dataset.test) == 4
    mask = os.umask(0)
    os.umask(mask)
    for split in ("train", "val", "test"):  # readable by whoever could read a file written with plain open()
        assert stat.S_IMODE((out / f"{split}.jsonl").stat().st_mode) == 0o666 & ~mask
    assert main(["make-sets", str(entities), str(out)]) == 2
    assert "already holds train.jsonl, val.jsonl, test.jsonl; choose another folder or pass --force" in \
        capsys.readouterr().err
    assert main(["make-sets", str(entities), str(out), "--split", "1,2"]) == 2


def test_make_sets_on_the_real_toy_catalogue(tmp_path):
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_toys_dev" / "entities.jsonl"
    if not source.exists():
        pytest.skip(f"shared development data not present at {source}")
    report = build_taxonomy_sets(read_entities(source).entities, BuilderConfig(sets=50, seed=1))
    summary = report.summary()
    assert summary["train"]["sets"] == 30 and summary["train"]["clusters_min"] >= 2


def test_anchor_weights_follow_the_entities_below_or_are_uniform():
    from cactus.data.builder import anchor_weights

    tax = Taxonomy(pool())
    anchors = tax.anchors()  # root (18 entities), Crafts (6), Pets (12), Pets>Cats (6), Pets>Dogs (6)
    expected = [18 / 48, 6 / 48, 12 / 48, 6 / 48, 6 / 48]
    assert anchor_weights(tax, anchors, "entities").tolist() == pytest.approx(expected)
    assert anchor_weights(tax, anchors, "uniform").tolist() == pytest.approx([0.2] * 5)
    with pytest.raises(ValueError, match="--anchors must be 'entities' or 'uniform'"):
        BuilderConfig(anchors="depth")
