"""SIA with gradients in fused attention kernels: the merge of two softmaxes, differentiated by hand.

Dimensions as in :mod:`cactus.encoders.attention`: B sets, N entity slots per set, S token slots per set, T packed
tokens, E entities, H heads, d head width; a bucket is ``count`` entities of ``L`` tokens.

SIA's softmax runs over two key sets: part A, each token's own entity's tokens (per bucket, scores
(count, H, L, L)); part B, the summaries of the other entities of its set (per set, scores (B, H, S, N)). The
forward pass runs each part in a fused kernel that returns its output o_X and log-sum-exp lse_X, and merges them:
lse = logaddexp(lse_A, lse_B), out = lerp(o_A, o_B, exp(lse_B - lse)).

The backward pass needs no scores saved. With the joint probabilities P_ij = exp(s_ij - lse_i) over all keys of
both parts, the gradient of softmax attention is

    dS_ij = P_ij (dO_i · v_j - D_i),  D_i = dO_i · out_i,
    dq_i = scale Σ_j dS_ij k_j,  dk_j = scale Σ_i dS_ij q_i,  dv_j = Σ_i P_ij dO_i,  dbias_ij = dS_ij,

and every term either sums over one key's row or over the keys of one part. So the backward kernel of each part,
given the *merged* output and log-sum-exp (it recomputes P from lse and takes D from out), returns exactly that
part's share: dq is the sum of the two parts' dq, dk and dv are per part. Dropout (CUDA) fits the same pattern: the
kernel regenerates each part's dropout mask from the seed its forward used, and out already includes it.

Kernels: CUDA, PyTorch's memory-efficient attention (``_efficient_attention_forward``/``_backward``: additive bias
with gradient, dropout, log-sum-exp). CPU, the flash kernel for CPU, whose backward takes no bias gradient: where
a bias needs one (T5's learned relative position bias), that part's backward is computed explicitly from the
saved lse. CPU runs without dropout only (its kernel cannot replay a dropout mask); see :func:`supports`.

Summaries (eq. 5) are computed inside the function as well, from the keys (W^K), the queries (W^Q, ``sia_qkey``)
or the entity's first token (``sia_first``), and their gradients are spread back onto the tokens they average.

The gradient is exact for every real token's output. A bucket-padding row's output (never read: its key and value
are masked, its summary weight is 0) gets part A's gradient only, which is 0 since nothing reads it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def supports(query: Tensor, dropout: float) -> bool:
    """Whether the fused training path runs here: CUDA always, CPU without attention dropout."""
    device = query.device.type
    return device == "cuda" or (device == "cpu" and dropout == 0.0)


# --------------------------------------------------------------------------- one softmax part, fused
# Layout "BMHK": query (X, M, H, d), key and value (X, K, H, d), output (X, M, H, d), as packed rows are laid out.
# bias: additive, broadcastable to (X, H, M, K) (CPU) or exactly (X, H, M, K) with aligned rows (CUDA).


def _forward(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, scale: float, dropout: float):
    """``(output (X, M, H, d), lse (X, H, M), state)``; ``state`` is what :func:`_backward` needs again."""
    if query.device.type == "cuda":
        output, lse, seed, offset, _, _ = torch.ops.aten._efficient_attention_forward(
            query, key, value, bias, None, None, None, None, dropout, 0, True, scale=scale
        )
        # lse is (X, H, M rounded up to 32), padded with +inf, which the backward kernel relies on.
        return output, lse[..., : query.shape[1]], (lse, seed, offset)
    output, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), 0.0, False, attn_mask=bias, scale=scale
    )
    return output.transpose(1, 2), lse, None


def _backward(
    grad_out: Tensor,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    bias: Tensor | None,
    out: Tensor,
    lse: Tensor,
    state,
    scale: float,
    dropout: float,
    bias_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """This part's share of the gradient, given the merged ``out`` (X, M, H, d) and ``lse`` (X, H, M).

    Returns ``(dq, dk, dv, dbias)`` in the inputs' layouts; dbias (X, H, M, K) only when ``bias_grad``.
    """
    if query.device.type == "cuda":
        lse_padded, seed, offset = state
        lse_padded[..., : query.shape[1]].copy_(lse)  # the forward's buffer: its +inf padding stays
        dq, dk, dv, dbias = torch.ops.aten._efficient_attention_backward(
            grad_out, query, key, value, bias, out, None, None, query.shape[1], key.shape[1], lse_padded,
            dropout, seed, offset, 0, bias_grad, scale=scale,
        )  # fmt: skip
        return dq, dk, dv, (dbias if bias_grad else None)
    if bias_grad:
        return _explicit_backward(grad_out, query, key, value, bias, out, lse, scale)
    t = [x.transpose(1, 2) for x in (grad_out, query, key, value, out)]
    dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
        *t, lse, 0.0, False, attn_mask=bias, scale=scale
    )
    return dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2), None


def _explicit_backward(
    grad_out: Tensor, query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, out: Tensor, lse: Tensor,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """The backward formulas of the module docstring with the scores materialised (CPU, bias with gradient)."""
    acc = torch.promote_types(query.dtype, torch.float32)
    do, q, k, v, o = (x.transpose(1, 2).to(acc) for x in (grad_out, query, key, value, out))  # (X, H, ., d)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias.to(acc)
    probs = torch.exp(scores - lse.to(acc)[..., None])  # (X, H, M, K), the joint softmax's share of this part
    delta = (do * o).sum(-1, keepdim=True)  # (X, H, M, 1)
    dscores = probs * (torch.matmul(do, v.transpose(-1, -2)) - delta)
    dq = torch.matmul(dscores, k) * scale
    dk = torch.matmul(dscores.transpose(-1, -2), q) * scale
    dv = torch.matmul(probs.transpose(-1, -2), do)
    grads = (g.transpose(1, 2).to(query.dtype) for g in (dq, dk, dv))
    return (*grads, dscores)


# --------------------------------------------------------------------------- SIA
class SummaryAttention(torch.autograd.Function):
    """SIA attention over packed tokens with a hand-written backward; see the module docstring.

    ``apply(pack, scaling, dropout, query, key, value, *masks)``: ``pack`` a ``PackedAttention`` of a summary
    mode; query, key, value (T, H, d); ``masks[b]`` bucket b's additive mask (``pack``'s, may carry T5's bias
    and its gradient) or None. Returns the output (T, H, d).
    """

    @staticmethod
    def forward(ctx, pack, scaling: float, dropout: float, query: Tensor, key: Tensor, value: Tensor, *masks):
        with torch.autocast(query.device.type, enabled=False):
            T, H, d = query.shape
            # Part A, per bucket: own-entity tokens.
            outs, lses, states = [], [], []
            for b, (offset, count, length) in enumerate(pack.segments):
                rows = slice(offset, offset + count * length)
                q, k, v = (x[rows].view(count, length, H, d) for x in (query, key, value))
                out, lse, state = _forward(q, k, v, pack.kernel_mask(b, masks[b], q), scaling, dropout)
                outs.append(out.reshape(count * length, H, d))
                lses.append(lse.transpose(1, 2).reshape(count * length, H))
                states.append(state)
            out_a = outs[0] if len(outs) == 1 else torch.cat(outs)  # (T, H, d), fresh: merged into in place
            lse_a = lses[0] if len(lses) == 1 else torch.cat(lses)  # (T, H)
            # Part B, per set: the other entities' summaries.
            B, S = pack.set_token_index.shape
            k_sum, v_sum = _summaries(pack, query, key, value)  # (B, N, H, d)
            q_set = query.reshape(T, H * d).index_select(0, pack.set_rows(T)).view(B, S, H, d)
            bias_b = pack.kernel_summary_mask(q_set)
            out_b, lse_b, state_b = _forward(q_set, k_sum, v_sum, bias_b, scaling, dropout)
            out_b = out_b.reshape(B * S, H * d).index_select(0, pack.token_set_pos).view(T, H, d)
            lse_b = lse_b.transpose(1, 2).reshape(B * S, H).index_select(0, pack.token_set_pos)  # (T, H)
            # Merge. A set of one entity has no summary: its lse_B is about -1e30 (the mask), its share 0.
            lse = torch.logaddexp(lse_a, lse_b)  # (T, H), float32
            share = torch.exp(lse_b - lse).unsqueeze(-1).to(out_a.dtype)
            output = out_a.lerp_(out_b.to(out_a.dtype), share)
        ctx.pack, ctx.scaling, ctx.dropout = pack, scaling, dropout
        ctx.states, ctx.state_b = states, state_b
        ctx.mask_count = len(masks)
        ctx.save_for_backward(query, key, value, k_sum, v_sum, output, lse, *(m for m in masks if m is not None))
        ctx.mask_present = [m is not None for m in masks]
        return output

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        pack, scaling, dropout = ctx.pack, ctx.scaling, ctx.dropout
        query, key, value, k_sum, v_sum, output, lse, *present = ctx.saved_tensors
        it = iter(present)
        masks = [next(it) if p else None for p in ctx.mask_present]
        T, H, d = query.shape
        grad_output = grad_output.contiguous().to(output.dtype)
        # Part A, per bucket.
        dqs, dks, dvs, dmasks = [], [], [], []
        for b, (offset, count, length) in enumerate(pack.segments):
            rows = slice(offset, offset + count * length)
            q, k, v, go, o = (x[rows].view(count, length, H, d) for x in (query, key, value, grad_output, output))
            lse_rows = lse[rows].view(count, length, H).transpose(1, 2)  # (count, H, L)
            mask_grad = ctx.needs_input_grad[6 + b] and masks[b] is not None
            dq, dk, dv, dbias = _backward(
                go, q, k, v, pack.kernel_mask(b, masks[b], q), o, lse_rows, ctx.states[b], scaling, dropout, mask_grad
            )
            dqs.append(dq.reshape(count * length, H, d))
            dks.append(dk.reshape(count * length, H, d))
            dvs.append(dv.reshape(count * length, H, d))
            dmasks.append(None if dbias is None else dbias.sum_to_size(masks[b].shape).to(masks[b].dtype))
        dq, dk, dv = (x[0] if len(x) == 1 else torch.cat(x) for x in (dqs, dks, dvs))
        dq, dk, dv = (x if x.is_contiguous() else x.contiguous() for x in (dq, dk, dv))
        # Part B, in the set layout. Padded set slots (clamped onto a real row) get no output gradient.
        B, S = pack.set_token_index.shape
        rows = pack.set_rows(T)
        go_set = grad_output.view(T, H * d).index_select(0, rows).masked_fill_(pack.set_padding()[:, None], 0)
        o_set = output.reshape(T, H * d).index_select(0, rows).view(B, S, H, d)
        lse_set = lse.index_select(0, rows).view(B, S, H).transpose(1, 2)  # (B, H, S)
        q_set = query.reshape(T, H * d).index_select(0, rows).view(B, S, H, d)
        dq_set, dk_sum, dv_sum, _ = _backward(
            go_set.view(B, S, H, d), q_set, k_sum, v_sum, pack.kernel_summary_mask(q_set), o_set, lse_set,
            ctx.state_b, scaling, dropout, False,
        )  # fmt: skip
        dq.index_add_(0, rows, dq_set.reshape(B * S, H, d).to(dq.dtype))
        _summaries_backward(pack, dk_sum, dv_sum, dq, dk, dv)
        return (None, None, None, dq, dk, dv, *dmasks)


def _summaries(pack, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Each set's N summary keys and values, (B, N, H, d) each; padded slots get zeros (and are masked)."""
    H, d = query.shape[1:]
    first_token = pack.spec.summary == "first"
    source = query if pack.spec.project_summary_keys else key
    keys, values = [], []
    for b, (offset, count, length) in enumerate(pack.segments):
        rows = slice(offset, offset + count * length)
        kb, vb = (x[rows].view(count, length, H * d) for x in (source, value))
        if first_token:
            keys.append(kb[:, 0])
            values.append(vb[:, 0])
            continue
        weights = pack.summary_weights(b, kb.dtype)  # None (plain mean) or (count, L, 1), rows summing to 1
        if weights is None:
            keys.append(kb.mean(1))
            values.append(vb.mean(1))
        else:
            keys.append((kb * weights).sum(1))
            values.append((vb * weights).sum(1))
    pad = key.new_zeros(1, H * d)
    index = pack.entity_index.view(-1)  # (B * N,), E for padded slots: the zero row
    B, N = pack.entity_index.shape
    k_sum = torch.cat([*keys, pad]).index_select(0, index).view(B, N, H, d)
    v_sum = torch.cat([*values, pad]).index_select(0, index).view(B, N, H, d)
    return k_sum, v_sum


def _summaries_backward(pack, dk_sum: Tensor, dv_sum: Tensor, dq: Tensor, dk: Tensor, dv: Tensor) -> None:
    """Add the summaries' gradients (B, N, H, d) onto the tokens they were computed from (in place)."""
    H, d = dq.shape[1:]
    E = sum(count for _, count, _ in pack.segments)  # entity layout: one segment per entity
    index = pack.entity_index.view(-1)
    per_entity = []
    for grad in (dk_sum, dv_sum):
        rows = grad.reshape(-1, H * d).to(dq.dtype)
        per_entity.append(rows.new_zeros(E + 1, H * d).index_add_(0, index, rows))  # (E + 1, H * d)
    first_token = pack.spec.summary == "first"
    target_k = dq if pack.spec.project_summary_keys else dk
    first = 0
    for b, (offset, count, length) in enumerate(pack.segments):
        rows = slice(offset, offset + count * length)
        for grad, target in zip(per_entity, (target_k, dv), strict=True):
            g = grad[first : first + count]  # (count, H * d)
            tokens = target[rows].view(count, length, H * d)
            if first_token:
                tokens[:, 0].add_(g)
                continue
            weights = pack.summary_weights(b, g.dtype)
            if weights is None:
                tokens.add_((g / length)[:, None])
            else:
                tokens.add_(g[:, None] * weights)
        first += count
