"""Packing: optimal buckets, and a layout in which every token and entity can be found again."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cactus.encoders.packing import bucket_lengths, pack


def brute_force_padding(lengths: np.ndarray, k: int) -> int:
    """Least padded tokens over every way to cut the sorted distinct lengths into k buckets."""
    values = np.unique(lengths)
    best = None
    for cuts in itertools.combinations(range(len(values) - 1), k - 1):
        ends = [*cuts, len(values) - 1]
        bucket = np.empty(len(values), dtype=np.int64)
        start = 0
        for end in ends:
            bucket[start : end + 1] = values[end]
            start = end + 1
        padding = int((bucket[np.searchsorted(values, lengths)] - lengths).sum())
        best = padding if best is None else min(best, padding)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_bucket_lengths_are_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, size=rng.integers(1, 60))
    k = int(rng.integers(1, 6))
    buckets = bucket_lengths(lengths, k)
    assert (buckets >= lengths).all()
    assert len(np.unique(buckets)) <= k
    assert set(np.unique(buckets)) <= set(np.unique(lengths))
    if len(np.unique(lengths)) <= k:
        assert (buckets == lengths).all()
    else:
        assert int((buckets - lengths).sum()) == brute_force_padding(lengths, k)


def random_sets(seed: int) -> list[list[list[int]]]:
    rng = np.random.default_rng(seed)
    return [
        [list(rng.integers(5, 100, size=rng.integers(1, 12))) for _ in range(rng.integers(1, 9))]
        for _ in range(rng.integers(1, 6))
    ]


@pytest.mark.parametrize("layout", ["entity", "set"])
@pytest.mark.parametrize("seed", range(10))
def test_pack_layout_round_trips(layout: str, seed: int) -> None:
    sets = random_sets(seed)
    batch = pack(sets, layout=layout, pad_id=0, position_offset=2, max_buckets=3)
    ids = batch.input_ids[:, 0]
    # Buckets tile the rows in order.
    offset = 0
    for start, count, length in batch.segments:
        assert start == offset
        offset += count * length
    assert offset == batch.num_tokens
    # Every entity's tokens, positions and lengths can be read back through entity_index / token_entity.
    for i, entities in enumerate(sets):
        assert batch.sizes[i] == len(entities)
        for j, tokens in enumerate(entities):
            row = int(batch.entity_index[i, j])
            where = (batch.token_entity == row).nonzero()[:, 0]
            assert ids[where].tolist() == tokens
            assert batch.position_ids[where, 0].tolist() == [p + 2 for p in range(len(tokens))]
            assert batch.entity_lengths[row] == len(tokens)
            if layout == "entity":  # the set view lists the set's tokens, entity by entity
                cols = (batch.set_token_entity[i] == j).nonzero()[:, 0]
                assert ids[batch.set_token_index[i, cols]].tolist() == tokens
                assert (batch.token_set_pos[where] == i * batch.set_token_index.shape[1] + cols).all()
        assert not batch.entity_mask[i, len(entities) :].any()
    # Padding rows hold the pad token and belong to no entity.
    padding = batch.token_entity == batch.entity_lengths.shape[0]
    assert (ids[padding] == 0).all()
    assert int((~padding).sum()) == sum(len(t) for s in sets for t in s)
    valid = torch.cat(
        [v.reshape(-1) if v is not None else torch.ones(c * n, dtype=torch.bool) for v, (_, c, n) in
         zip(batch.segment_valid, batch.segments, strict=True)]
    )  # fmt: skip
    assert torch.equal(valid, ~padding)


def test_equal_lengths_need_no_padding() -> None:
    batch = pack([[[1, 2, 3]] * 4, [[4, 5, 6]] * 2], layout="entity", pad_id=0)
    assert batch.segments == ((0, 6, 3),)
    assert batch.segment_valid == (None,)
    with pytest.raises(ValueError, match="layout"):
        pack([[[1]]], layout="tokens", pad_id=0)
