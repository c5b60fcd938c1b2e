"""Self-supervised sets (appendix B): cluster counts and sizes in range, members are word-dropped seeds, seeded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cactus.training.selfsup import SelfSupervisedConfig, distinct_texts, drop_words, self_supervised_sets

POOL = [f"brand{i} model {i} deluxe edition with extra parts number {i}" for i in range(40)] + ["lamp", "lamp"]


def is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(word in it for word in short)


def test_sets_follow_the_recipe():
    for entity_set in itertools.islice(self_supervised_sets(POOL, seed=3), 200):
        assert 2 <= len(entity_set.clusters) <= 10
        assert all(1 <= len(c) <= 5 for c in entity_set.clusters)
        for cluster in entity_set.clusters:
            texts = [entity_set.entities[i].text.split() for i in cluster]
            seeds = [p.split() for p in POOL if all(is_subsequence(t, p.split()) for t in texts)]
            assert seeds, "every member of a cluster is a word-dropped copy of one seed"
            for words in texts:
                seed = max(seeds, key=len)
                if len(seed) > 1:
                    dropped = 1 - len(words) / len(seed)
                    assert 0.1 <= dropped <= 0.75 and words  # round(U(0.2, 0.7) * n) of n words
        assert len({e.id for e in entity_set.entities}) == len(entity_set)


def test_seeded_and_deterministic():
    first = [s.to_json() for s in itertools.islice(self_supervised_sets(POOL, seed=1), 5)]
    again = [s.to_json() for s in itertools.islice(self_supervised_sets(POOL, seed=1), 5)]
    other = [s.to_json() for s in itertools.islice(self_supervised_sets(POOL, seed=2), 5)]
    assert first == again and first != other


def test_drop_words_keeps_order_and_one_word():
    rng = np.random.default_rng(0)
    assert drop_words("lamp", 0.7, rng) == "lamp"
    out = drop_words("a b c d e f g h i j", 0.5, rng).split()
    assert len(out) == 5 and out == sorted(out)
    assert drop_words("a b", 0.99, rng) in ("a", "b")


def test_pool_needs_two_distinct_texts_and_config_is_checked():
    assert distinct_texts(["Lamp", "lamp ", "desk"]) == ["Lamp", "desk"]
    with pytest.raises(ValueError, match="at least 2 distinct entity texts"):
        next(self_supervised_sets(["lamp", "Lamp"]))
    with pytest.raises(ValueError, match="cluster sizes need 1 <= smin <= smax"):
        SelfSupervisedConfig(smin=0)
