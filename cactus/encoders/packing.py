"""Pack tokenized entity sets into one flat token sequence, bucketed by segment length (no padding to the longest).

Dimensions: B sets, N entities per set (padded), E entities of the batch, T packed tokens, S tokens per set
(padded). A *segment* is what attends within itself: one entity (nia, sia*) or one whole set (fia).

Segments are grouped into at most ``MAX_BUCKETS`` buckets of equal length L_b, chosen to pad as few tokens as
possible; bucket b is a (count, L_b) block of rows of the packed sequence. With few distinct lengths every
bucket is exact and nothing is padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

#: At most this many buckets: each costs a few kernel launches per layer, each merge pads a few tokens.
MAX_BUCKETS = 8


@dataclass
class SetBatch:
    """A tokenized, packed batch of entity sets; ``.to(device)`` moves its tensors.

    Attributes:
        layout: ``"entity"`` (segments are entities: nia, sia, sia_first, sia_qkey) or ``"set"`` (fia).
        sizes: N_i, the number of entities of each set.
        segments: ``(offset, count, length)`` per bucket, in row order.
        input_ids: (T, 1) token ids, bucket padding filled with the pad token.
        position_ids: (T, 1) absolute positions, restarting at every entity (plus the backbone's offset).
        segment_valid: per bucket a (count, length) bool mask of real tokens, or None when nothing is padded.
        token_entity: (T,) entity row (0..E-1) of each token; E marks bucket padding.
        entity_lengths: (E,) tokens per entity, float.
        entity_index: (B, N) entity row of each set's entity slots; E for padded slots.
        entity_mask: (B, N) True for real entities.
        set_token_index: (B, S) token row of each set's tokens, T for padding (entity layout only).
        set_token_entity: (B, S) entity slot of each set token, -1 for padding (entity layout only).
        token_set_pos: (T,) index of each token in the flattened (B * S) set layout (entity layout only).
    """

    layout: str
    sizes: tuple[int, ...]
    segments: tuple[tuple[int, int, int], ...]
    input_ids: Tensor
    position_ids: Tensor
    segment_valid: tuple[Tensor | None, ...]
    token_entity: Tensor
    entity_lengths: Tensor
    entity_index: Tensor
    entity_mask: Tensor
    set_token_index: Tensor | None = None
    set_token_entity: Tensor | None = None
    token_set_pos: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        """T, the packed rows including bucket padding."""
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SetBatch:
        """A copy with every tensor on ``device``."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                moved[f.name] = value.to(device, non_blocking=non_blocking)
            elif f.name == "segment_valid":
                moved[f.name] = tuple(None if v is None else v.to(device, non_blocking=non_blocking) for v in value)
        return replace(self, **moved)


def bucket_lengths(lengths: Sequence[int] | np.ndarray, max_buckets: int = MAX_BUCKETS) -> np.ndarray:
    """The bucket length of each segment: its own length rounded up to one of at most ``max_buckets`` lengths.

    The bucket lengths minimise the padded tokens (dynamic programming over the sorted distinct lengths).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    values, counts = np.unique(lengths, return_counts=True)
    m = len(values)
    if m <= max_buckets:
        return lengths
    c = np.concatenate([[0], np.cumsum(counts)]).astype(np.float64)  # prefix sums of counts
    w = np.concatenate([[0], np.cumsum(counts * values)]).astype(np.float64)  # prefix sums of tokens
    i, j = np.arange(m)[:, None], np.arange(m)[None, :]
    # cost[i, j]: padded tokens when distinct lengths i..j share one bucket of length values[j]
    cost = np.where(i <= j, values[None, :] * (c[j + 1] - c[i]) - (w[j + 1] - w[i]), np.inf)
    best = cost[0]  # best[j]: least padding covering lengths 0..j with exactly k buckets (k = 1 here)
    starts = []  # starts[k - 2][j]: first length of the last bucket when k buckets cover 0..j
    for _ in range(1, max_buckets):  # m > max_buckets, so using every bucket is optimal
        total = np.concatenate([[np.inf], best[:-1]])[:, None] + cost  # total[i, j] = best[i - 1] + cost[i, j]
        starts.append(total.argmin(0))
        best = total.min(0)
    bucket_of_value = np.empty(m, dtype=np.int64)
    end = m - 1
    for start_of in reversed(starts):
        start = int(start_of[end])
        bucket_of_value[start : end + 1] = values[end]
        end = start - 1
    bucket_of_value[: end + 1] = values[end]
    return bucket_of_value[np.searchsorted(values, lengths)]


class _Flat(NamedTuple):
    """Tokenized sets flattened set-major: per entity and per real token, where it comes from."""

    sizes: np.ndarray  # (B,) entities per set
    ent_len: np.ndarray  # (E,) tokens per entity
    ent_set: np.ndarray  # (E,) set of each entity
    ent_slot: np.ndarray  # (E,) slot of each entity within its set
    tokens: np.ndarray  # (tokens,) every real token id, entity after entity
    tok_ent: np.ndarray  # (tokens,) input-order entity of each real token
    tok_pos: np.ndarray  # (tokens,) position of each real token in its entity


def _flatten(token_ids: Sequence[Sequence[Sequence[int]]]) -> _Flat:
    sizes = np.array([len(s) for s in token_ids], dtype=np.int64)
    flat = [list(map(int, e)) for s in token_ids for e in s]
    ent_len = np.array([len(e) for e in flat], dtype=np.int64)
    ent_set = np.repeat(np.arange(len(sizes)), sizes)
    ent_slot = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    tokens = np.fromiter((t for e in flat for t in e), dtype=np.int64, count=int(ent_len.sum()))
    tok_ent = np.repeat(np.arange(len(flat)), ent_len)
    tok_pos = np.arange(len(tokens)) - np.repeat(np.cumsum(ent_len) - ent_len, ent_len)
    return _Flat(sizes, ent_len, ent_set, ent_slot, tokens, tok_ent, tok_pos)


def _set_view(f: _Flat, tok_row: np.ndarray, n_sets: int, S: int, T: int) -> dict[str, Tensor]:
    """The per-set view of the tokens used by the summary part of SIA (entity layout), ``n_sets`` x ``S`` slots.

    Rows of ``T`` that hold no real token (bucket padding, unused rows) read position 0 of the flattened view: any
    finite row, never used.
    """
    set_tokens = np.bincount(f.ent_set, weights=f.ent_len, minlength=n_sets).astype(np.int64)  # (n_sets,)
    tok_set = f.ent_set[f.tok_ent]
    tok_col = np.arange(len(f.tokens)) - (np.cumsum(set_tokens) - set_tokens)[tok_set]  # position in its set
    set_token_index = np.full((n_sets, S), T, dtype=np.int64)
    set_token_index[tok_set, tok_col] = tok_row
    set_token_entity = np.full((n_sets, S), -1, dtype=np.int64)
    set_token_entity[tok_set, tok_col] = f.ent_slot[f.tok_ent]
    token_set_pos = np.zeros(T, dtype=np.int64)
    token_set_pos[tok_row] = tok_set * S + tok_col
    return {
        "set_token_index": torch.from_numpy(set_token_index),
        "set_token_entity": torch.from_numpy(set_token_entity),
        "token_set_pos": torch.from_numpy(token_set_pos),
    }


def pack(
    token_ids: Sequence[Sequence[Sequence[int]]],
    *,
    layout: str,
    pad_id: int,
    position_offset: int = 0,
    max_buckets: int = MAX_BUCKETS,
) -> SetBatch:
    """Pack tokenized sets: ``token_ids[i][j]`` is the token id list of entity j of set i.

    Args:
        token_ids: B sets of N_i >= 1 entities of >= 1 tokens.
        layout: ``"entity"`` (one segment per entity) or ``"set"`` (one segment per set, fia).
        pad_id: the token id written into bucket padding.
        position_offset: added to every in-entity position (RoBERTa starts at pad_token_id + 1).
        max_buckets: at most this many segment lengths.
    """
    if layout not in ("entity", "set"):
        raise ValueError(f"layout must be 'entity' or 'set', got {layout!r}")
    f = _flatten(token_ids)
    sizes, ent_len, ent_set, ent_slot, tokens, tok_ent, tok_pos = f
    B, N = len(sizes), int(sizes.max())

    if layout == "entity":
        seg_len = ent_len
        tok_seg, tok_in_seg = tok_ent, tok_pos
    else:
        seg_len = np.bincount(ent_set, weights=ent_len, minlength=B).astype(np.int64)  # tokens per set
        tok_seg = ent_set[tok_ent]
        tok_in_seg = np.arange(len(tokens)) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)
    bucket_len = bucket_lengths(seg_len, max_buckets)  # (segments,)
    seg_order = np.lexsort((np.arange(len(seg_len)), bucket_len))  # stable sort by bucket length
    seg_rank = np.empty_like(seg_order)
    seg_rank[seg_order] = np.arange(len(seg_order))

    segments, valid_masks, seg_start = [], [], np.empty(len(seg_len), dtype=np.int64)
    offset = 0
    for length in np.unique(bucket_len):
        members = seg_order[bucket_len[seg_order] == length]  # segments of this bucket, in packed order
        count, length = len(members), int(length)
        seg_start[members] = offset + np.arange(count) * length
        segments.append((offset, count, length))
        valid = np.arange(length)[None, :] < seg_len[members][:, None]  # (count, L)
        valid_masks.append(None if valid.all() else torch.from_numpy(valid))
        offset += count * length
    T = offset

    tok_row = seg_start[tok_seg] + tok_in_seg  # (tokens,) packed row of each real token
    input_ids = np.full(T, pad_id, dtype=np.int64)
    input_ids[tok_row] = tokens
    # Positions restart in every entity; padding rows take their slot index so they stay in the table.
    position_ids = np.concatenate([np.tile(np.arange(length), count) for _, count, length in segments])
    position_ids[tok_row] = tok_pos
    # Entity rows follow the packed order of the entities' first tokens (bucket order in the entity layout).
    E = len(ent_len)
    first_row = tok_row[np.cumsum(ent_len) - ent_len]  # (E,)
    ent_row = np.empty(E, dtype=np.int64)
    ent_row[np.argsort(first_row, kind="stable")] = np.arange(E)
    token_entity = np.full(T, E, dtype=np.int64)
    token_entity[tok_row] = ent_row[tok_ent]
    entity_lengths = np.zeros(E, dtype=np.float32)
    entity_lengths[ent_row] = ent_len
    entity_index = np.full((B, N), E, dtype=np.int64)
    entity_index[ent_set, ent_slot] = ent_row
    entity_mask = np.arange(N)[None, :] < sizes[:, None]

    extra = {}
    if layout == "entity":
        S = int(np.bincount(ent_set, weights=ent_len, minlength=B).max())  # tokens of the largest set
        extra = _set_view(f, tok_row, B, S, T)
    return SetBatch(
        layout=layout,
        sizes=tuple(int(n) for n in sizes),
        segments=tuple(segments),
        input_ids=torch.from_numpy(input_ids)[:, None],
        position_ids=torch.from_numpy(position_ids + position_offset)[:, None],
        segment_valid=tuple(valid_masks),
        token_entity=torch.from_numpy(token_entity),
        entity_lengths=torch.from_numpy(entity_lengths),
        entity_index=torch.from_numpy(entity_index),
        entity_mask=torch.from_numpy(entity_mask),
        **extra,
    )


def pack_fixed(
    token_ids: Sequence[Sequence[Sequence[int]]],
    *,
    sets: int,
    entities: int,
    length: int,
    pad_id: int,
    position_offset: int = 0,
) -> SetBatch:
    """Pack tokenized sets into a batch whose structure depends only on ``(sets, entities, length)``.

    A CUDA graph replays fixed kernels on fixed tensors, so every batch of one shape bucket must have the same
    segments, the same tensor shapes and the same None-ness of the masks; only tensor values may differ. Layout
    ``"entity"`` only. Set i's entity j takes entity row ``i * entities + j`` and ``length`` token rows (one bucket,
    always masked); unused rows (slots past a set's size, sets past ``len(token_ids)``) hold one pad token marked
    valid, so that no softmax row is empty, and belong to no set, so that no real token sees them. The real
    entities' embeddings equal those of :func:`pack` up to float rounding.

    Args:
        token_ids: B <= ``sets`` sets of 1..``entities`` entities of 1..``length`` tokens.
        sets, entities, length: the bucket's shape.
        pad_id: the token id of padding rows.
        position_offset: added to every in-entity position.
    """
    B = len(token_ids)
    if not 1 <= B <= sets:
        raise ValueError(f"{B} sets do not fit a bucket of {sets}")
    sizes = np.array([len(s) for s in token_ids], dtype=np.int64)
    if sizes.min() < 1 or sizes.max() > entities:
        raise ValueError(f"set sizes {sizes.min()}..{sizes.max()} do not fit a bucket of {entities} entities")
    E, T, S = sets * entities, sets * entities * length, entities * length
    f = _flatten(token_ids)
    _, ent_len, ent_set, ent_slot, tokens, tok_ent, tok_pos = f
    if ent_len.min() < 1 or ent_len.max() > length:
        raise ValueError(f"entity lengths {ent_len.min()}..{ent_len.max()} do not fit a bucket of {length} tokens")
    ent_row = ent_set * entities + ent_slot  # entity row of each real entity
    tok_row = ent_row[tok_ent] * length + tok_pos  # packed row of each real token

    input_ids = np.full(T, pad_id, dtype=np.int64)
    input_ids[tok_row] = tokens
    position_ids = np.tile(np.arange(length), E) + position_offset
    valid = np.zeros((E, length), dtype=bool)
    valid[:, 0] = True  # unused rows: one valid pad token
    valid.reshape(-1)[tok_row] = True
    token_entity = np.full(T, E, dtype=np.int64)
    token_entity[tok_row] = ent_row[tok_ent]
    entity_lengths = np.ones(E, dtype=np.float32)
    entity_lengths[ent_row] = ent_len
    entity_index = np.full((sets, entities), E, dtype=np.int64)
    entity_index[ent_set, ent_slot] = ent_row
    entity_mask = entity_index < E
    return SetBatch(
        layout="entity",
        sizes=tuple(int(n) for n in sizes),
        segments=((0, E, length),),
        input_ids=torch.from_numpy(input_ids)[:, None],
        position_ids=torch.from_numpy(position_ids)[:, None],
        segment_valid=(torch.from_numpy(valid),),
        token_entity=torch.from_numpy(token_entity),
        entity_lengths=torch.from_numpy(entity_lengths),
        entity_index=torch.from_numpy(entity_index),
        entity_mask=torch.from_numpy(entity_mask),
        **_set_view(f, tok_row, sets, S, T),
    )
