"""SetEncoder: context-aware entity embeddings for batches of entity sets (CACTUS, Tipirneni et al., 2024).

Dimensions: B sets, N entities per set (padded), E entities of the batch, T packed tokens, D hidden.

Example:
    >>> encoder = SetEncoder(EncoderConfig())  # packaged all-MiniLM-L6-v2, SIA
    >>> [e.shape for e in encoder.embed([["glue stick", "hot glue gun", "candle wick"]])]
    [(3, 384)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cactus.data.hygiene import check_text, cut_text
from cactus.encoders.attention import PackedAttention, install_attention
from cactus.encoders.backbones import describe_backbone, load_backbone, relative_bias_module
from cactus.encoders.config import ATTENTION_MODES, EncoderConfig, attention_mode, check_mode
from cactus.encoders.packing import MAX_BUCKETS, SetBatch, pack


class SetEncoder(nn.Module):
    """Embeds every entity of a set in the context of the others (modes ``MODES``), one packed forward per batch.

    All trainable parameters live in ``backbone`` (a ``BertModel``-like model or ``T5EncoderModel``), so a
    checkpoint is ``backbone.state_dict()`` plus ``dataclasses.asdict(config)``. The backbone's attention is
    switched to the ``"cactus"`` implementation, which is standard SDPA unless cactus keywords are passed.

    Args:
        config: backbone, default mode and per-entity truncation.
        model: an already built Hugging Face model (tests inject tiny ones); loaded from ``config.backbone``
            when omitted.
        tokenizer: the tokenizer that goes with ``model``; required exactly when ``model`` is given.
    """

    def __init__(self, config: EncoderConfig, *, model: nn.Module | None = None, tokenizer=None) -> None:
        super().__init__()
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer to SetEncoder, or neither to load config.backbone")
        if model is None:
            model, tokenizer = load_backbone(config.backbone)
        self.config = config
        self.info = describe_backbone(model)
        room = None if self.info.max_positions is None else self.info.max_positions - self.info.position_offset
        if room is not None and config.max_tokens > room:
            raise ValueError(
                f"max_tokens={config.max_tokens} does not fit the backbone's {self.info.max_positions} positions; "
                f"use max_tokens <= {room}"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before building a SetEncoder")
        install_attention(model)
        self.backbone = model
        self.tokenizer = tokenizer
        self.hidden_size = self.info.hidden_size
        # Start in the backbone's mode (eval after from_pretrained) rather than nn.Module's default, train:
        # embed() restores the mode it found, and must not switch a loaded model's dropout on.
        self.train(model.training)

    # ---------------------------------------------------------------- tokenization
    def tokenize_entities(self, sets: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Token ids of every entity, truncated to ``config.max_tokens`` (special tokens included).

        Texts are cut to ``max_tokens * CHARS_PER_TOKEN`` characters first, so that a 10 MB text tokenizes as fast
        as a title; the tokens kept are the same.
        """
        _check_sets(sets)
        texts = [cut_text(text, self.config.max_tokens) for entities in sets for text in entities]
        ids = self.tokenizer(texts, truncation=True, max_length=self.config.max_tokens)["input_ids"]
        out, start = [], 0
        for entities in sets:
            out.append(ids[start : start + len(entities)])
            start += len(entities)
        for i, entities in enumerate(out):
            for j, tokens in enumerate(entities):
                if not tokens:  # only a tokenizer without special tokens can give this
                    raise ValueError(f"entity {j} of set {i} ({sets[i][j]!r}) has no tokens; remove it or fill it in")
        return out

    def tokenize(self, sets: Sequence[Sequence[str]], mode: str | None = None, *,
                 max_buckets: int = MAX_BUCKETS) -> SetBatch:
        """Tokenize and pack a batch of sets (sizes may differ) for ``mode`` (default ``config.mode``).

        Batches made for nia, sia, sia_first and sia_qkey are interchangeable; fia packs whole sets.
        ``max_buckets`` bounds the number of distinct segment lengths (fewer: more padding, fewer kernel calls).
        """
        return self.pack_tokens(self.tokenize_entities(sets), mode, max_buckets=max_buckets)

    def pack_tokens(self, token_ids: Sequence[Sequence[Sequence[int]]], mode: str | None = None, *,
                    max_buckets: int = MAX_BUCKETS) -> SetBatch:
        """Pack sets already tokenized by :meth:`tokenize_entities` for ``mode`` (default ``config.mode``)."""
        spec = attention_mode(mode or self.config.mode)
        return pack(
            token_ids,
            layout=spec.layout,
            pad_id=self.tokenizer.pad_token_id,
            position_offset=self.info.position_offset,
            max_buckets=max_buckets,
        )

    # ---------------------------------------------------------------- forward
    def forward(self, batch: SetBatch, mode: str | None = None) -> tuple[Tensor, Tensor]:
        """Entity embeddings of a packed batch.

        Args:
            batch: from :meth:`tokenize`, on the backbone's device.
            mode: one of ``MODES`` (default ``config.mode``); must match the batch's layout.

        Returns:
            ``(embeddings, mask)``: embeddings (B, N, D), L2-normalised, zero in padded slots; mask (B, N) bool.
        """
        mode = check_mode(mode or self.config.mode)
        if batch.layout != ATTENTION_MODES[mode].layout:
            packed_for = "/".join(m.name for m in ATTENTION_MODES.values() if m.layout == batch.layout)
            raise ValueError(
                f"this batch was packed for {packed_for}, not {mode!r}; call encoder.tokenize(sets, mode={mode!r})"
            )
        attention = PackedAttention(
            mode=mode,
            segments=batch.segments,
            segment_valid=batch.segment_valid,
            segment_bias=self._segment_bias(batch),
            entity_index=batch.entity_index,
            entity_mask=batch.entity_mask,
            set_token_index=batch.set_token_index,
            set_token_entity=batch.set_token_entity,
            token_set_pos=batch.token_set_pos,
        )
        inputs: dict[str, Tensor] = {"input_ids": batch.input_ids}
        if self.info.family == "bert":
            # Positions restart in every entity (a 46-entity set would overflow BERT's 512 positions otherwise).
            inputs["position_ids"] = batch.position_ids
            inputs["token_type_ids"] = torch.zeros_like(batch.input_ids)
        hidden = self.backbone(**inputs, cactus_pack=attention).last_hidden_state  # (T, 1, D)
        hidden = hidden.reshape(batch.num_tokens, -1)  # (T, D)
        E = batch.entity_lengths.shape[0]
        sums = hidden.new_zeros(E + 1, hidden.shape[1]).index_add(0, batch.token_entity, hidden)  # (E + 1, D)
        means = sums[:E] / batch.entity_lengths[:, None].to(sums.dtype)  # (E, D), mean of the entity's tokens
        means = torch.cat([means, means.new_zeros(1, means.shape[1])])  # row E: zero, for padded slots
        embeddings = F.normalize(means[batch.entity_index], dim=-1)  # (B, N, D)
        return embeddings, batch.entity_mask

    def _segment_bias(self, batch: SetBatch) -> dict[int, Tensor] | None:
        """T5: relative position bias (H, L, L) for each bucket length L, computed once per forward."""
        if self.info.family != "t5":
            return None
        module = relative_bias_module(self.backbone)
        return {length: module.compute_bias(length, length)[0] for length in {s[2] for s in batch.segments}}

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def embed(
        self,
        sets: Sequence[Sequence[str]],
        *,
        batch_size: int = 16,
        mode: str | None = None,
        device: torch.device | str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[np.ndarray]:
        """Embed sets of texts in eval mode: one float32 (n_i, D) array per set, in input order.

        Args:
            sets: lists of entity texts; sizes may differ, an empty set gives a (0, D) array.
            batch_size: sets per forward (sets of similar size are batched together).
            mode: one of ``MODES`` (default ``config.mode``).
            device: move the encoder there first (default: where it is).
            progress: called as ``progress(sets_done, total)`` after every batch (counting non-empty sets).
        """
        mode = check_mode(mode or self.config.mode)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        _check_sets(sets, allow_empty=True)
        if device is not None:
            self.to(device)
        device = next(self.backbone.parameters()).device
        out: list[np.ndarray] = [np.zeros((0, self.hidden_size), dtype=np.float32) for _ in sets]
        todo = sorted((i for i, s in enumerate(sets) if len(s)), key=lambda i: -len(sets[i]))  # similar sizes
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                batch = self.tokenize([sets[i] for i in chunk], mode).to(device)
                embeddings, _ = self(batch, mode)
                embeddings = embeddings.float().cpu().numpy()
                for row, i in enumerate(chunk):
                    out[i] = embeddings[row, : len(sets[i])].copy()
                if progress is not None:
                    progress(min(start + batch_size, len(todo)), len(todo))
        finally:
            self.train(was_training)
        return out


def _check_sets(sets: Sequence[Sequence[str]], allow_empty: bool = False) -> None:
    """Reject input that is not a list of lists of strings, naming the offending set and entity."""
    if isinstance(sets, str) or not isinstance(sets, Sequence):
        raise TypeError(f"sets must be a list of sets (lists of texts), got {type(sets).__name__}")
    if not allow_empty and not sets:
        raise ValueError("no sets to encode: pass at least one set of texts")
    for i, entities in enumerate(sets):
        if isinstance(entities, str) or not isinstance(entities, Sequence):
            raise TypeError(f"set {i} must be a list of texts, got {type(entities).__name__}: {entities!r:.60}")
        if not allow_empty and not entities:
            raise ValueError(f"set {i} has no entities; every set needs at least one text")
        for j, text in enumerate(entities):
            if not isinstance(text, str):
                raise TypeError(f"entity {j} of set {i} must be a string, got {type(text).__name__}: {text!r:.60}")
            check_text(text, f"sets[{i}][{j}]")
