"""Packed inter-entity attention, plugged into transformers through its ``AttentionInterface``.

Tipirneni et al., 2024, "Context-Aware Clustering using Large Language Models", section 3.1, eq. (2)-(5).

Dimensions: B sets, N entities per set (padded), L tokens per entity, S tokens per set (padded), T packed tokens of
the whole batch, E entities of the whole batch, H heads, d head width.

The set encoder calls the backbone on a *flat* layout: ``input_ids`` of shape (T, 1), one token per row. Every
per-token module (embeddings, projections, layer norms, feed-forward) then runs on exactly the packed tokens, and
the only module that mixes tokens, self-attention, is this function. It receives query/key/value of shape
(T, H, 1, d) and the packing description in the keyword argument ``cactus_pack`` (a :class:`PackedAttention`).
The sequence length seen by transformers is 1, so T5's layer-0 position bias is (1, H, 1, 1) and never (1, H, T, T):
the within-entity relative bias is computed per bucket length by the set encoder and passed in ``cactus_pack``.

Tokens are packed *segment-major*: a segment is one entity (nia, sia*) or one whole set (fia); segments of
similar length share a bucket of length L_b and bucket b occupies rows ``[offset, offset + count * L_b)`` as a
(count, L_b) block, so a bucket's queries and keys are free views. Short segments are padded to their bucket's
length, never to the longest segment of the batch.

SIA (one softmax over own-entity tokens and other-entity summaries, eq. 3) is computed in two parts, each an
ordinary softmax attention that also returns its log-sum-exp (lse):

* part A, per bucket: each token against its own entity's tokens, scores (count, H, L_b, L_b);
* part B, per set: each token against the N summaries of its set, scores (B, H, S, N), each summary computed
  once per set and layer; a token's own entity and padded entity slots are masked.

The joint softmax gives the entity's tokens the total weight sigmoid(lse_A - lse_B) and the summaries the rest,
each shared as its own softmax says, so SIA's output is lerp(o_A, o_B, sigmoid(lse_B - lse_A)). Without autograd
both parts run in PyTorch's fused kernels (flash on CPU, memory-efficient on CUDA), which return the lse.
With autograd, the ``"fused"`` training path (default; :mod:`cactus.encoders.fused_training`) runs the same kernels
and differentiates the merge by hand, so no scores are kept for the backward pass; the ``"explicit"`` path
materialises the scores and lets autograd differentiate them (CPU with attention dropout always takes it). Choose
with :func:`sia_training_path`.
Memory is O(N·L·(L + N)) per set and head; nothing is repeated per entity.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cactus.encoders import fused_training
from cactus.encoders.config import ATTENTION_MODES, AttentionMode, check_mode

ATTENTION_NAME = "cactus"

#: How SIA computes gradients: "fused" (fused kernels, hand-written backward) or "explicit" (materialised scores).
TRAINING_PATHS = ("fused", "explicit")
_training_path = "fused"


def get_sia_training_path() -> str:
    """The training path in use, one of ``TRAINING_PATHS``."""
    return _training_path


@contextmanager
def sia_training_path(path: str) -> Iterator[None]:
    """Within the block, SIA modes compute gradients on ``path`` (one of ``TRAINING_PATHS``).

    Both paths compute the same function and gradient; ``"explicit"`` is the older, slower one, kept for
    comparison (tests, ``bench/encoders.py``'s ``sia+explicit``).
    """
    global _training_path
    if path not in TRAINING_PATHS:
        raise ValueError(f"unknown SIA training path {path!r}; choose from {', '.join(TRAINING_PATHS)}")
    before, _training_path = _training_path, path
    try:
        yield
    finally:
        _training_path = before


@dataclass
class PackedAttention:
    """Layout of one packed batch, handed to every attention layer as the keyword argument ``cactus_pack``.

    Attributes:
        mode: one of ``MODES``; ``nia`` and ``fia`` attend within segments only.
        segments: ``(offset, count, length)`` per bucket, in row order, covering all T rows.
        segment_valid: per bucket a (count, length) bool mask of real tokens, or ``None`` when none is padding.
        segment_bias: T5 only, bucket length -> within-segment relative position bias (H, length, length).
        entity_index: (B, N) row of each set's entities among the E bucket-ordered entities (E = padding slot).
        entity_mask: (B, N) True for real entities.
        set_token_index: (B, S) row among the T tokens of each set's tokens (T = padding); SIA modes only.
        set_token_entity: (B, S) entity slot (0..N-1) of each set token, -1 for padding; SIA modes only.
        token_set_pos: (T,) position of each token in the flattened (B * S) set layout; SIA modes only.
    """

    mode: str
    segments: tuple[tuple[int, int, int], ...]
    segment_valid: tuple[Tensor | None, ...]
    segment_bias: dict[int, Tensor] | None
    entity_index: Tensor
    entity_mask: Tensor
    set_token_index: Tensor | None = None
    set_token_entity: Tensor | None = None
    token_set_pos: Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False)  # masks and indices derived once per forward

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @property
    def spec(self) -> AttentionMode:
        """The record of ``mode``: what tokens attend within, how summaries are made."""
        return ATTENTION_MODES[self.mode]

    def attend(self, query: Tensor, key: Tensor, value: Tensor, scaling: float, dropout: float) -> Tensor:
        """Attention over packed tokens: query, key, value (T, H, d) -> output (T, H, d)."""
        if self.spec.has_summaries:
            return self._attend_with_summaries(query, key, value, scaling, dropout)
        outputs = []
        for b, (offset, count, length) in enumerate(self.segments):
            rows = slice(offset, offset + count * length)
            q, k, v = (x[rows].view(count, length, *x.shape[1:]).transpose(1, 2) for x in (query, key, value))
            mask = self._segment_mask(b, query.dtype)  # None, (count, 1, 1, L) or (count|1, H|1, L, L)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
            outputs.append(out.transpose(1, 2).reshape(count * length, *query.shape[1:]))  # (count*L, H, d)
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    def _segment_mask(self, b: int, dtype: torch.dtype) -> Tensor | None:
        """SDPA mask for bucket b: padding keys off, plus T5's relative bias; None when neither applies.

        Cached per forward: every layer uses the same (T5 shares its layer-0 bias across layers).
        """
        key = ("segment_mask", b, dtype)
        if key not in self._cache:
            self._cache[key] = self._build_segment_mask(b, dtype)
        return self._cache[key]

    def _additive_segment_mask(self, b: int, dtype: torch.dtype) -> Tensor | None:
        """``_segment_mask`` as an additive float mask (the fused kernels that return lse take no bool)."""
        key = ("additive_segment_mask", b, dtype)
        if key not in self._cache:
            mask = self._segment_mask(b, dtype)
            if mask is not None and mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
                    ~mask, torch.finfo(dtype).min
                )
            self._cache[key] = mask
        return self._cache[key]

    def _build_segment_mask(self, b: int, dtype: torch.dtype) -> Tensor | None:
        valid = self.segment_valid[b]
        length = self.segments[b][2]
        bias = self.segment_bias[length][None] if self.segment_bias is not None else None  # (1, H, L, L)
        if valid is None:
            return None if bias is None else bias.to(dtype)
        keys = valid[:, None, None, :]  # (count, 1, 1, L)
        if bias is None:
            return keys
        return bias.to(dtype).masked_fill(~keys, torch.finfo(dtype).min)  # (count, H, L, L)

    def _summaries(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """One key and one value summary per entity, gathered per set: two (B, H, N, d) tensors.

        hid-mean (eq. 5): W^K mean(h) + b_K equals mean(W^K h + b_K), so the mean of an entity's keys is its
        summary key (and likewise for values); with ``project_summary_keys`` (``sia_qkey``) the summary key comes
        from the queries (W^Q), as the published code does; ``summary == "first"`` (``sia_first``) takes the
        entity's first token.
        """
        first_token = self.spec.summary == "first"
        source = query if self.spec.project_summary_keys else key
        keys, values = [], []
        for b, (offset, count, length) in enumerate(self.segments):
            rows = slice(offset, offset + count * length)
            kb = source[rows].view(count, length, *key.shape[1:])  # (count, L, H, d)
            vb = value[rows].view(count, length, *value.shape[1:])
            if first_token:
                keys.append(kb[:, 0])  # (count, H, d)
                values.append(vb[:, 0])
                continue
            valid = self.segment_valid[b]
            if valid is None:
                keys.append(kb.mean(1))  # (count, L, H, d) -> (count, H, d)
                values.append(vb.mean(1))
            else:
                weights = (valid / valid.sum(1, keepdim=True)).to(kb.dtype)  # (count, L), rows sum to 1
                keys.append(torch.einsum("cl,clhd->chd", weights, kb))
                values.append(torch.einsum("cl,clhd->chd", weights, vb))
        pad = key.new_zeros(1, *key.shape[1:])  # the summary of a padded entity slot
        k_sum = torch.cat([*keys, pad.to(keys[0].dtype)])[self.entity_index]  # (E+1, H, d) -> (B, N, H, d)
        v_sum = torch.cat([*values, pad.to(values[0].dtype)])[self.entity_index]
        return k_sum.transpose(1, 2), v_sum.transpose(1, 2)  # (B, H, N, d)

    def _summary_mask(self, dtype: torch.dtype) -> Tensor:
        """(B, 1, S, N) additive mask of part B: 0 for other real entities, ``summary_mask_value(dtype)`` for the
        token's own entity and padded slots. Built once per forward and dtype, then shared by all layers."""
        key = ("summary_mask", dtype)
        if key not in self._cache:
            N = self.entity_mask.shape[1]
            slots = torch.arange(N, device=self.entity_mask.device)
            allowed = (self.set_token_entity[:, :, None] != slots) & self.entity_mask[:, None, :]  # (B, S, N)
            mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            self._cache[key] = mask.masked_fill_(~allowed, summary_mask_value(dtype))[:, None]
        return self._cache[key]

    def _attend_with_summaries(
        self, query: Tensor, key: Tensor, value: Tensor, scaling: float, dropout: float
    ) -> Tensor:
        """SIA: one softmax per token over its entity's tokens and the other entities' summaries (eq. 3).

        The joint softmax is merged from two: with lse_A and lse_B the log-sum-exps of the token scores and
        of the summary scores, the tokens get the total weight w = sigmoid(lse_A - lse_B) and the summaries
        1 - w, each shared as its own softmax says. So the output is lerp(o_B, o_A, w), with o_A and o_B the
        outputs of the two softmaxes. (Dropout within each part equals dropout of the joint probabilities.)
        """
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        if needs_grad and _training_path == "fused":
            fused = self._fused_training(query, key, value, scaling, dropout)
            if fused is not None:
                return fused
        o_sum, lse_sum = self._summary_part(query, key, value, scaling, dropout)  # (T, H, d), (T, H)
        o_tok, lse_tok = self._token_part(query, key, value, scaling, dropout)  # (T, H, d), (T, H)
        # The summaries' share 1 - w = sigmoid(lse_B - lse_A). A set of one entity has no summary: its lse_B
        # is about -1e30 (see summary_mask_value), so the share is exactly 0.
        share = torch.sigmoid(lse_sum - lse_tok).unsqueeze(-1).to(o_tok.dtype)  # (T, H, 1)
        o_sum = o_sum.to(o_tok.dtype)
        if torch.is_grad_enabled() and (o_tok.requires_grad or o_sum.requires_grad):
            return torch.lerp(o_tok, o_sum, share).to(query.dtype)
        # Inference: blend into o_A's fresh buffer (new large tensors cost page faults on CPU).
        return o_tok.lerp_(o_sum, share).to(query.dtype)

    def _fused_training(
        self, query: Tensor, key: Tensor, value: Tensor, scaling: float, dropout: float
    ) -> Tensor | None:
        """SIA with gradients through :class:`fused_training.SummaryAttention`; None where it does not run."""
        device = query.device.type
        if device in _FUSED_TRAINING_FAILED or not fused_training.supports(query, dropout):
            return None
        masks = [self._additive_segment_mask(b, query.dtype) for b in range(len(self.segments))]
        try:
            return fused_training.SummaryAttention.apply(self, scaling, dropout, query, key, value, *masks)
        except RuntimeError as exc:  # a kernel this torch build lacks or refuses: fall back, and say so once
            return _fall_back(_FUSED_TRAINING_FAILED, device, "fused SIA training kernels", exc)

    # Helpers of the fused training path (cactus.encoders.fused_training).
    def kernel_mask(self, b: int, mask: Tensor | None, query: Tensor) -> Tensor | None:
        """Bucket b's additive mask as the fused kernel takes it, for query (count, L, H, d): on CUDA rows
        aligned and expanded to (count, H, L, L); elsewhere the mask itself."""
        if mask is None or query.device.type != "cuda":
            return mask
        count, length, H, _ = query.shape
        return self._fused_mask(b, mask, query).expand(count, H, length, length)

    def kernel_summary_mask(self, query: Tensor) -> Tensor:
        """Part B's additive mask as the fused kernel takes it, for query (B, S, H, d) (see ``kernel_mask``)."""
        mask = self._fused_mask("summary", self._summary_mask(query.dtype), query)  # (B, 1, S, N)
        if query.device.type != "cuda":
            return mask
        B, S, H, _ = query.shape
        return mask.expand(B, H, S, mask.shape[-1])

    def set_rows(self, num_tokens: int) -> Tensor:
        """(B * S,) packed row of each set slot; padded slots clamped onto row T - 1 (read, never used)."""
        if "set_rows" not in self._cache:
            self._cache["set_rows"] = self.set_token_index.clamp(max=num_tokens - 1).view(-1)
        return self._cache["set_rows"]

    def set_padding(self) -> Tensor:
        """(B * S,) True for padded set slots."""
        if "set_padding" not in self._cache:
            self._cache["set_padding"] = (self.set_token_entity < 0).view(-1)
        return self._cache["set_padding"]

    def summary_weights(self, b: int, dtype: torch.dtype) -> Tensor | None:
        """hid-mean weights of bucket b's tokens, (count, L, 1) with rows summing to 1 (padding 0); None when
        the bucket has no padding (a plain mean)."""
        valid = self.segment_valid[b]
        if valid is None:
            return None
        key = ("summary_weights", b, dtype)
        if key not in self._cache:
            self._cache[key] = (valid / valid.sum(1, keepdim=True)).to(dtype)[..., None]
        return self._cache[key]

    def _summary_part(
        self, query: Tensor, key: Tensor, value: Tensor, scaling: float, dropout: float
    ) -> tuple[Tensor, Tensor]:
        """Part B, per set: each token against the N summaries of its set (own entity and padding masked).

        Returns the softmax output (T, H, d) and log-sum-exp (T, H) of every packed token.
        """
        k_sum, v_sum = self._summaries(query, key, value)  # (B, H, N, d)
        T, H, d = query.shape
        B, S = self.set_token_index.shape
        # Padded set slots index row T, one past the end: set_rows clamps them onto a real row; never read back.
        q_set = query.reshape(T, H * d).index_select(0, self.set_rows(T)).view(B, S, H, d).transpose(1, 2)
        mask = self._fused_mask("summary", self._summary_mask(q_set.dtype), q_set)  # (B, 1, S, N)
        output, lse = _attention_with_lse(
            q_set, k_sum.to(q_set.dtype), v_sum.to(q_set.dtype), mask, scaling, dropout
        )  # (B, H, S, d), (B, H, S)
        # Back to packed token order; row-wise index_select is the fast gather on CPU.
        output = output.transpose(1, 2).reshape(B * S, H * d).index_select(0, self.token_set_pos)  # (T, H * d)
        lse = lse.transpose(1, 2).reshape(B * S, H).index_select(0, self.token_set_pos)  # (T, H)
        return output.view(T, H, d), lse

    def _fused_mask(self, name: object, mask: Tensor | None, query: Tensor) -> Tensor | None:
        """On CUDA without autograd, the mask re-laid for the memory-efficient kernel, which needs its rows
        16-element aligned; built once per forward. Elsewhere the mask itself."""
        if mask is None or query.device.type != "cuda" or (torch.is_grad_enabled() and mask.requires_grad):
            return mask
        key = ("aligned", name, mask.dtype)
        if key not in self._cache:
            K = mask.shape[-1]
            aligned = mask.new_zeros(*mask.shape[:-1], -(-K // 16) * 16)
            aligned[..., :K] = mask
            self._cache[key] = aligned[..., :K]
        return self._cache[key]

    def _token_part(
        self, query: Tensor, key: Tensor, value: Tensor, scaling: float, dropout: float
    ) -> tuple[Tensor, Tensor]:
        """Part A, per bucket: each token against its own entity's tokens (with T5's relative bias).

        Returns the softmax output (T, H, d) and log-sum-exp (T, H) of every packed token.
        """
        outputs, lses = [], []
        H, d = query.shape[1:]
        for b, (offset, count, length) in enumerate(self.segments):
            rows = slice(offset, offset + count * length)
            q, k, v = (x[rows].view(count, length, H, d).transpose(1, 2) for x in (query, key, value))
            mask = self._fused_mask(b, self._additive_segment_mask(b, q.dtype), q)  # (count|1, H|1, L|1, L)
            output, lse = _attention_with_lse(q, k, v, mask, scaling, dropout)  # (count, H, L, d), (count, H, L)
            outputs.append(output.transpose(1, 2).reshape(count * length, H, d))
            lses.append(lse.transpose(1, 2).reshape(count * length, H))
        if len(outputs) == 1:
            return outputs[0], lses[0]
        return torch.cat(outputs), torch.cat(lses)


def _attention_with_lse(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float, dropout: float
) -> tuple[Tensor, Tensor]:
    """Softmax attention that also returns the log-sum-exp of each query's scores.

    Args:
        query: (X, H, Q, d); key, value: (X, H, K, d); mask: additive, broadcastable to (X, H, Q, K), or None.

    Returns:
        ``(output (X, H, Q, d), lse (X, H, Q))``. Without autograd and dropout this is one fused PyTorch kernel
        that returns the log-sum-exp (flash on CPU, memory-efficient on CUDA); otherwise the scores are
        materialised, since the kernels' log-sum-exp has no gradient.
    """
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if not needs_grad and dropout == 0.0:
        fused = _fused_attention_with_lse(query, key, value, mask, scaling)
        if fused is not None:
            return fused
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (X, H, Q, K)
    if mask is not None:
        scores = scores + mask.to(scores.dtype)
    # Softmax in the scores' dtype (the kernel accumulates in float32), so that autograd keeps one (X, H, Q, K)
    # tensor, the probabilities, rather than float32 copies (autocast would run softmax in float32).
    with torch.autocast(query.device.type, enabled=False):
        probs = torch.softmax(scores, -1)
    # lse from the probabilities, without a second exp pass: at the row's argmax k, p_k = exp(s_k - lse), so
    # lse = s_k - log p_k. Its gradient is exact, d lse / d s = softmax(s), and gather keeps only the index.
    top = scores.argmax(-1, keepdim=True)  # (X, H, Q, 1)
    lse = (scores.gather(-1, top).float() - torch.log(probs.gather(-1, top).float())).squeeze(-1)
    return torch.matmul(_dropout(probs, dropout), value.to(probs.dtype)), lse


def summary_mask_value(dtype: torch.dtype) -> float:
    """The additive mask of an excluded summary slot: -1e30 (dtype's min where that is larger, float16).

    Very negative, yet finite even after the kernels scale scores by log2(e) in float32. A token of a set of one
    entity has every summary slot excluded; with dtype's min (which overflows to -inf there) PyTorch's CUDA
    memory-efficient kernel treats such a row as fully masked and returns output 0 with log-sum-exp 0, which
    the merge would read as a real part B of weight sigmoid(-lse_A). Finite, the row is an ordinary softmax
    whose lse, about -1e30, gives it weight exactly 0, on every kernel.
    """
    return max(torch.finfo(dtype).min, -1e30)


_FUSED_FAILED: set[str] = set()  # device types whose fused kernel raised once; they use the explicit path
_FUSED_TRAINING_FAILED: set[str] = set()  # likewise for the fused training path


def _fused_attention_with_lse(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float
) -> tuple[Tensor, Tensor] | None:
    """PyTorch's fused attention kernels that return the log-sum-exp, or None where none applies."""
    device = query.device.type
    if device not in ("cpu", "cuda") or device in _FUSED_FAILED:
        return None
    if mask is not None:
        mask = mask.to(query.dtype)
    try:
        if device == "cpu":
            output, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, 0.0, False, attn_mask=mask, scale=scaling
            )
            return output, lse
        X, H, Q, _ = query.shape
        if mask is not None:
            # A 4-D bias; PackedAttention._fused_mask has aligned its rows (the kernel checks).
            mask = mask.expand(X, H, Q, key.shape[2])
        output, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, mask, True, 0.0, False, scale=scaling
        )
        return output, lse[..., :Q]  # the kernel pads the log-sum-exp to a multiple of 32 queries
    except RuntimeError as exc:  # a kernel this torch build lacks or refuses: fall back, and say so once
        return _fall_back(_FUSED_FAILED, device, "fused attention with log-sum-exp", exc)


def _fall_back(failed: set[str], device: str, what: str, exc: RuntimeError) -> None:
    """Mark ``device`` as lacking ``what`` so later calls take the explicit path, and warn about it once."""
    failed.add(device)
    warnings.warn(f"cactus: {what} failed on {device} ({exc}); using the explicit path", RuntimeWarning, stacklevel=4)


@dataclass
class ReferenceAttention:
    """The slow, obviously-correct attention of one set, handed to the layers as ``cactus_reference``.

    The backbone runs on the set's S tokens as one (1, S) sequence; every layer builds the dense (S, S + N)
    score matrix of eq. (3): token-token scores masked to the token's own entity (not masked in the ``"set"``
    layout, ``fia``), and token-summary scores masked to the other entities. Summaries follow eq. (5) literally:
    the mean (or first) of the entity's input states to the attention, projected with the layer's own W^K (W^Q
    with ``project_summary_keys``, ``sia_qkey``) and W^V. T5's position bias is the backbone's own over the whole
    sequence, which inside an entity equals the within-entity bias because entities are contiguous.

    Attributes:
        mode: one of ``MODES``.
        token_entity: (S,) entity slot 0..N-1 of each token.
        inputs: the input states of each attention module, (1, S, D), filled by forward pre-hooks.
    """

    mode: str
    token_entity: Tensor
    inputs: dict[nn.Module, Tensor]

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @property
    def spec(self) -> AttentionMode:
        """The record of ``mode``."""
        return ATTENTION_MODES[self.mode]

    def attend(
        self,
        module: nn.Module,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        scaling: float,
        dropout: float,
        position_bias: Tensor | None,
    ) -> Tensor:
        """query, key, value (1, H, S, d) -> output (1, S, H, d)."""
        H, d = query.shape[1], query.shape[3]
        spec = self.spec
        ent = self.token_entity
        N = int(ent.max()) + 1
        scores = torch.matmul(query[0], key[0].transpose(-1, -2)) * scaling  # (H, S, S)
        if position_bias is not None:
            scores = scores + position_bias[0]
        same = ent[:, None] == ent[None, :]  # (S, S)
        if spec.layout == "entity":
            scores = scores.masked_fill(~same, float("-inf"))
        keys, values = key[0], value[0]  # (H, S, d)
        if spec.has_summaries:
            hidden = self.inputs[module][0]  # (S, D), the states the layer projects into q, k, v
            q_proj, k_proj, v_proj = _projections(module)
            members = F.one_hot(ent, N).T.to(hidden.dtype)  # (N, S)
            if spec.summary == "first":
                first = members.cumsum(1).eq(1) & members.bool()  # each entity's first token
                pooled = first.to(hidden.dtype) @ hidden  # (N, D)
            else:
                pooled = (members @ hidden) / members.sum(1, keepdim=True)  # (N, D), eq. (5)
            k_sum = (q_proj if spec.project_summary_keys else k_proj)(pooled).view(N, H, d).transpose(0, 1)  # (H, N, d)
            v_sum = v_proj(pooled).view(N, H, d).transpose(0, 1)
            s_sum = torch.matmul(query[0], k_sum.transpose(-1, -2)) * scaling  # (H, S, N), no position term
            other = ent[:, None] != torch.arange(N, device=ent.device)  # (S, N)
            scores = torch.cat([scores, s_sum.masked_fill(~other, float("-inf"))], -1)  # (H, S, S + N)
            keys, values = torch.cat([keys, k_sum], 1), torch.cat([values, v_sum], 1)
        probs = _dropout(torch.softmax(scores.float(), -1).to(values.dtype), dropout)
        return torch.matmul(probs, values).transpose(0, 1)[None]  # (H, S, d) -> (1, S, H, d)


def _dropout(weights: Tensor, p: float) -> Tensor:
    """Attention dropout; transformers passes p = 0 in eval mode. Dropping unnormalised weights before the
    value product (and not in the denominator) equals dropping the normalised probabilities."""
    return F.dropout(weights, p) if p > 0 else weights


def _projections(module: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The (W^Q, W^K, W^V) linear layers of a BERT-family or T5 self-attention module."""
    if hasattr(module, "query"):
        return module.query, module.key, module.value
    return module.q, module.k, module.v


def cactus_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    position_bias: Tensor | None = None,
    cactus_pack: PackedAttention | None = None,
    cactus_reference: ReferenceAttention | None = None,
    **kwargs,
) -> tuple[Tensor, None]:
    """The attention function registered as ``"cactus"``; without cactus keywords it is transformers' SDPA.

    Args:
        module: the calling BERT-family or T5 self-attention module.
        query, key, value: (T, H, 1, d) under ``cactus_pack``; (B, H, L, d) otherwise.
        attention_mask: the backbone's mask; the packed path carries its own padding and ignores it.
        scaling: the module's score scale (d^-0.5 for BERT, 1.0 for T5).
        dropout: attention-probability dropout (0 in eval mode).
        position_bias: T5's bias; (1, H, 1, 1) and unused on the packed path.
        cactus_pack: the packed layout, see :class:`PackedAttention`.
        cactus_reference: the slow reference, see :class:`ReferenceAttention`.

    Returns:
        ``(output, None)`` with output (T, 1, H, d) (packed) or (B, L, H, d).
    """
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if cactus_pack is not None:
        T, H, _, d = query.shape
        flat = (x.reshape(T, H, d) for x in (query, key, value))  # sequence length is 1: views
        return cactus_pack.attend(*flat, scaling, dropout).view(T, 1, H, d), None
    if cactus_reference is not None:
        return cactus_reference.attend(module, query, key, value, scaling, dropout, position_bias), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        position_bias=position_bias,
        **kwargs,
    )


def install_attention(model: nn.Module) -> None:
    """Register ``"cactus"`` with transformers (attention and mask) and switch ``model`` to it.

    Called without cactus keywords the model still computes standard SDPA attention with its padding mask,
    so ``model(input_ids, attention_mask)`` keeps its usual meaning.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, cactus_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    if getattr(model.config, "_attn_implementation", None) != ATTENTION_NAME:
        model.set_attn_implementation(ATTENTION_NAME)
