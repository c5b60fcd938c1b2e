"""The domain-shift check: fingerprints of training data in the card, and the warning when new texts are far."""

from __future__ import annotations

import numpy as np

from cactus.inference.domain import (
    DomainShift,
    domain_shift,
    fingerprint,
    mean_embedding,
    sample_sets,
    shift_warning,
    stored_domains,
    vocabulary,
    vocabulary_overlap,
)

TOYS = ["wooden train set for kids", "toy train tracks", "plush teddy bear", "teddy bear large", "lego city set"]
BEAUTY = ["matte lipstick red", "hydrating face serum", "nail polish remover", "lipstick nude shade"]


def embedded(direction: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` unit rows scattered around ``direction``."""
    rows = direction + 0.1 * np.random.default_rng(seed).normal(size=(n, direction.size))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_vocabulary_counts_words_most_frequent_first_and_ignores_digits_and_case():
    assert vocabulary(["Teddy bear", "teddy BEAR 2", "train"], size=2) == ["bear", "teddy"]
    assert vocabulary(["a 42 x"]) == []


def test_vocabulary_overlap_is_the_share_of_word_occurrences_known():
    assert vocabulary_overlap(["teddy bear", "red lipstick"], ["teddy", "bear"]) == 0.5
    assert vocabulary_overlap(["123"], ["teddy"]) == 0.0


def test_mean_embedding_is_unit_length_and_refuses_nothing_to_average():
    mean = mean_embedding([np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros((0, 2))])
    assert np.allclose(mean, [2 ** -0.5, 2 ** -0.5])
    try:
        mean_embedding([np.zeros((0, 2))])
    except ValueError as exc:
        assert "at least one" in str(exc)
    else:
        raise AssertionError("no error")


def test_same_domain_is_near_and_another_is_far_with_a_warning_that_says_what_to_do():
    toys_dir, beauty_dir = np.eye(8)[0], np.eye(8)[1]
    card_domains = [fingerprint(TOYS, [embedded(toys_dir, 5, 0)], source="toys/train.jsonl")]
    near = domain_shift(TOYS[:3], [embedded(toys_dir, 3, 1)], card_domains)
    assert near is not None and not near.far and near.embedding_cosine > 0.9 and near.vocabulary_overlap == 1.0
    assert shift_warning(near) is None
    far = domain_shift(BEAUTY, [embedded(beauty_dir, 4, 2)], card_domains)
    assert far is not None and far.far and far.vocabulary_overlap == 0.0 and far.source == "toys/train.jsonl"
    message = shift_warning(far)
    assert message is not None and "cactus adapt" in message and "--cut silhouette" in message


def test_the_nearest_of_several_domains_counts():
    toys_dir, beauty_dir = np.eye(8)[0], np.eye(8)[1]
    domains = [fingerprint(TOYS, [embedded(toys_dir, 5, 0)], source="toys"),
               fingerprint(BEAUTY, [embedded(beauty_dir, 4, 0)], source="beauty")]
    shift = domain_shift(BEAUTY[:2], [embedded(beauty_dir, 2, 3)], domains)
    assert shift is not None and shift.source == "beauty" and not shift.far


def test_old_cards_without_fingerprints_are_not_compared():
    assert stored_domains({"dataset": "x", "fingerprint": "abc"}) == []
    assert stored_domains({"domains": [{"source": "x"}]}) == []
    assert domain_shift(TOYS, [np.eye(4)], []) is None
    assert shift_warning(None) is None
    assert shift_warning(DomainShift(0.95, 0.8, None)) is None


def test_fingerprint_is_json_sized_and_sampling_spreads_over_the_file():
    fp = fingerprint(TOYS * 200, [np.eye(8)] * 3, source=None)
    assert len(fp["mean_embedding"]) == 8 and len(fp["vocabulary"]) <= 500 and fp["texts"] == 1000
    picked = sample_sets([[str(i)] for i in range(1000)], limit=5)
    assert [s[0] for s in picked] == ["0", "250", "500", "749", "999"]
