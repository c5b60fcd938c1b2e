"""The slow, obviously-correct set encoder: one set at a time, a dense masked attention matrix in every layer.

It exists to check the packed implementation (tests compare the two to 1e-5 in float32) and as the "reference"
row of ``bench/encoders.py``. Costs O((N·L)·(N·L + N)) per set and head, like full attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from cactus.encoders.attention import ReferenceAttention
from cactus.encoders.backbones import attention_modules
from cactus.encoders.config import check_mode


def reference_set_embeddings(encoder, token_ids: Sequence[Sequence[int]], mode: str) -> Tensor:
    """Embeddings (N, D), L2-normalised, of one tokenized set (``token_ids[j]``: entity j's ids), any mode.

    The set runs through ``encoder.backbone`` as one (1, S) sequence of its entities' tokens, positions
    restarting in every entity; the attention pattern of ``mode`` is a dense mask (see ReferenceAttention).
    """
    check_mode(mode)
    backbone, info = encoder.backbone, encoder.info
    device = next(backbone.parameters()).device
    lengths = torch.tensor([len(t) for t in token_ids], device=device)
    ids = torch.tensor([t for entity in token_ids for t in entity], device=device)  # (S,)
    entity = torch.repeat_interleave(torch.arange(len(token_ids), device=device), lengths)  # (S,)
    positions = torch.cat([torch.arange(n, device=device) for n in lengths.tolist()]) + info.position_offset

    inputs: dict = {}

    def keep_input(module, args, kwargs):
        inputs[module] = args[0] if args else kwargs["hidden_states"]

    hooks = [m.register_forward_pre_hook(keep_input, with_kwargs=True) for m in attention_modules(backbone, info)]
    try:
        kwargs = {"input_ids": ids[None], "cactus_reference": ReferenceAttention(mode, entity, inputs)}
        if info.family == "bert":
            kwargs["position_ids"] = positions[None]
            kwargs["token_type_ids"] = torch.zeros_like(ids)[None]
        hidden = backbone(**kwargs).last_hidden_state[0]  # (S, D)
    finally:
        for hook in hooks:
            hook.remove()
    members = F.one_hot(entity, len(token_ids)).T.to(hidden.dtype)  # (N, S)
    return F.normalize(members @ hidden / lengths[:, None].to(hidden.dtype), dim=-1)  # (N, D)


def reference_forward(encoder, sets: Sequence[Sequence[str]], mode: str | None = None) -> tuple[Tensor, Tensor]:
    """Same contract as ``SetEncoder.forward`` on texts: ``(embeddings (B, N, D), mask (B, N))``, one set at a time."""
    return reference_forward_ids(encoder, encoder.tokenize_entities(sets), mode)


def reference_forward_ids(
    encoder, token_ids: Sequence[Sequence[Sequence[int]]], mode: str | None = None
) -> tuple[Tensor, Tensor]:
    """``reference_forward`` on token ids (``token_ids[i][j]``: ids of entity j of set i)."""
    mode = check_mode(mode or encoder.config.mode)
    per_set = [reference_set_embeddings(encoder, ids, mode) for ids in token_ids]
    N = max(len(s) for s in token_ids)
    embeddings = torch.stack([F.pad(e, (0, 0, 0, N - e.shape[0])) for e in per_set])  # (B, N, D)
    mask = torch.arange(N)[None, :] < torch.tensor([len(s) for s in token_ids])[:, None]
    return embeddings, mask.to(embeddings.device)
