"""SIA's training paths on CPU: the fused path (fused kernels, hand-written backward) and the explicit one.

Both must give the dense reference's values and gradients; the fused path is also checked on its own against
finite differences in float64, for every summary mode, with padded buckets, padded sets, a one-entity set and a
learned (T5-style) position bias that needs its own gradient.
"""

from __future__ import annotations

import math

import pytest
import torch

from cactus.encoders import EncoderConfig, SetEncoder, reference_forward
from cactus.encoders.attention import (
    PackedAttention,
    get_sia_training_path,
    sia_training_path,
    summary_mask_value,
)
from cactus.encoders.config import SUMMARY_MODES
from cactus.encoders.packing import pack
from tests.test_encoders import SETS, assert_close, make_encoder
from tests.tiny_backbones import tiny_t5

FAMILIES = ("bert", "t5")
PATHS = ("fused", "explicit")
# SETS plus a set of one entity (no summaries: its part-B softmax is empty) and one of two.
TRAIN_SETS = [*SETS, ["hot glue gun"], ["candle wick", "wax"]]


def autograd_nodes(tensor: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``tensor``."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return names


FUSED_NODE = "SummaryAttentionBackward"


def parameter_grads(encoder, forward, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    embeddings, _ = forward(encoder)
    (embeddings * weights[: embeddings.shape[0], : embeddings.shape[1], : embeddings.shape[2]]).sum().backward()
    return {n: p.grad for n, p in encoder.backbone.named_parameters()}


def assert_grads_close(fast: dict[str, torch.Tensor], slow: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    """Each parameter's gradient, relative to its largest entry.

    BERT's key bias adds the same q·b to every score of a softmax row (summary keys included, unless they come
    from W^Q), so its exact gradient is 0 and the reference holds float32 rounding noise only: then the fast side
    must stay at noise level too (1e-6).
    """
    for name, grad in slow.items():
        if name.endswith("attention.self.key.bias") and grad.abs().max().item() < 1e-6:
            assert fast[name].abs().max().item() < 1e-6, name
            continue
        scale = max(grad.abs().max().item(), 1e-2)
        assert_close(fast[name] / scale, grad / scale, atol=atol)


# --------------------------------------------------------------------------- which path runs
@pytest.mark.parametrize("family", FAMILIES)
def test_fused_path_is_the_default_and_explicit_is_selectable(family: str) -> None:
    assert get_sia_training_path() == "fused"
    encoder = make_encoder(family)
    batch = encoder.tokenize(SETS)
    embeddings, _ = encoder(batch)
    assert FUSED_NODE in autograd_nodes(embeddings)
    with sia_training_path("explicit"):
        embeddings, _ = encoder(batch)
    assert FUSED_NODE not in autograd_nodes(embeddings)
    assert get_sia_training_path() == "fused"
    nia, _ = encoder(batch, "nia")
    assert FUSED_NODE not in autograd_nodes(nia)


def test_cpu_attention_dropout_takes_the_explicit_path() -> None:
    """The CPU kernel cannot replay a dropout mask in the backward pass, so dropout goes the explicit way."""
    model, tokenizer = tiny_t5(dropout=0.3)
    encoder = SetEncoder(EncoderConfig(backbone="tiny"), model=model, tokenizer=tokenizer).train()
    embeddings, _ = encoder(encoder.tokenize(SETS))
    assert FUSED_NODE not in autograd_nodes(embeddings)
    encoder.eval()  # no dropout: fused
    embeddings, _ = encoder(encoder.tokenize(SETS))
    assert FUSED_NODE in autograd_nodes(embeddings)


def test_a_failing_fused_kernel_falls_back_to_the_explicit_path_and_warns_once(monkeypatch) -> None:
    """A kernel that a torch build lacks raises RuntimeError: the layer warns once, then runs the explicit path."""
    from cactus.encoders import attention, fused_training

    def refuse(*args):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(fused_training.SummaryAttention, "apply", refuse)
    monkeypatch.setattr(attention, "_FUSED_TRAINING_FAILED", set())
    encoder = make_encoder("bert")
    batch = encoder.tokenize(SETS)
    with pytest.warns(RuntimeWarning, match="fused SIA training kernels failed on cpu \\(no such kernel\\); using "
                                            "the explicit path") as caught:
        embeddings, _ = encoder(batch)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1  # not once per layer
    with sia_training_path("explicit"):
        explicit, _ = encoder(batch)
    assert_close(embeddings, explicit, atol=1e-6)
    failed_devices = attention._FUSED_TRAINING_FAILED
    assert failed_devices == {"cpu"}


def test_unknown_training_path_is_rejected() -> None:
    with pytest.raises(ValueError, match="fused, explicit"), sia_training_path("flash"):
        pass


# --------------------------------------------------------------------------- against the dense reference
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", SUMMARY_MODES)
@pytest.mark.parametrize("path", PATHS)
def test_training_path_values_and_gradients_equal_reference(family: str, mode: str, path: str) -> None:
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(2))
    with sia_training_path(path):
        encoder = make_encoder(family, mode)
        fast, _ = encoder(encoder.tokenize(TRAIN_SETS))
        assert (FUSED_NODE in autograd_nodes(fast)) == (path == "fused")
        fast_grads = parameter_grads(make_encoder(family, mode), lambda e: e(e.tokenize(TRAIN_SETS)), weights)
    slow, _ = reference_forward(make_encoder(family, mode), TRAIN_SETS)
    slow_grads = parameter_grads(make_encoder(family, mode), lambda e: reference_forward(e, TRAIN_SETS), weights)
    assert_close(fast.detach(), slow.detach())
    assert_grads_close(fast_grads, slow_grads)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("max_buckets", [1, 2])
def test_fused_gradients_with_padded_buckets_equal_reference(family: str, max_buckets: int) -> None:
    """Entities padded to their bucket's length: padding must get no weight in the summaries' gradients."""
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(3))

    def packed(encoder):
        batch = encoder.tokenize(TRAIN_SETS, "sia", max_buckets=max_buckets)
        assert any(v is not None for v in batch.segment_valid)
        return encoder(batch)

    fast = parameter_grads(make_encoder(family), packed, weights)
    slow = parameter_grads(make_encoder(family), lambda e: reference_forward(e, TRAIN_SETS), weights)
    assert_grads_close(fast, slow)


@pytest.mark.parametrize("family", FAMILIES)
def test_fused_and_explicit_agree_under_bf16_autocast(family: str) -> None:
    """The dtype handling of the training step GPUs run (bf16 activations, float32 weights and bias)."""
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(4))
    grads = {}
    for path in PATHS:
        encoder = make_encoder(family)
        with sia_training_path(path), torch.autocast("cpu", dtype=torch.bfloat16):
            grads[path] = parameter_grads(encoder, lambda e: e(e.tokenize(TRAIN_SETS)), weights)
    for name, grad in grads["explicit"].items():
        if name.endswith("attention.self.key.bias"):
            continue  # exactly 0 (see assert_grads_close): bf16 rounding noise on both sides
        fused = grads["fused"][name]
        assert fused.dtype == grad.dtype == torch.float32
        scale = max(grad.abs().max().item(), 1e-2)
        # bf16 rounding differs between the kernels; a wrong gradient would be off by O(1).
        assert ((fused - grad).abs().max() / scale).item() < 0.05, name


# --------------------------------------------------------------------------- the autograd function alone
def random_pack(mode: str, seed: int):
    """A packed batch of sets (varied entity lengths, two buckets with padding, a one-entity set).

    Returns ``(build, T, real_rows)``: ``build(table)`` makes its PackedAttention with a relative bias cut from
    ``table`` (H, 8, 8) for every bucket length (as T5's), or none; T the packed rows; real_rows (T,) True for
    real tokens (a bucket-padding row's output is unspecified and never read)."""
    rng = torch.Generator().manual_seed(seed)
    sizes = [3, 1, 4]
    token_ids = [[list(range(1, 1 + int(torch.randint(1, 6, (1,), generator=rng)))) for _ in range(n)] for n in sizes]
    batch = pack(token_ids, layout="entity", pad_id=0, max_buckets=2)
    assert any(v is not None for v in batch.segment_valid)

    def build(bias_table: torch.Tensor | None) -> PackedAttention:
        segment_bias = None
        if bias_table is not None:
            segment_bias = {length: bias_table[:, :length, :length] for length in {s[2] for s in batch.segments}}
        return PackedAttention(
            mode=mode,
            segments=batch.segments,
            segment_valid=batch.segment_valid,
            segment_bias=segment_bias,
            entity_index=batch.entity_index,
            entity_mask=batch.entity_mask,
            set_token_index=batch.set_token_index,
            set_token_entity=batch.set_token_entity,
            token_set_pos=batch.token_set_pos,
        )

    real_rows = batch.token_entity < batch.entity_lengths.shape[0]  # bucket padding rows: output unspecified
    return build, batch.num_tokens, real_rows


@pytest.mark.parametrize("mode", SUMMARY_MODES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_attention_passes_gradcheck(mode: str, with_bias: bool) -> None:
    H, d = 2, 4
    build, T, real_rows = random_pack(mode, seed=5)
    rng = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(T, H, d, generator=rng, dtype=torch.float64, requires_grad=True) for _ in range(3))
    table = torch.randn(H, 8, 8, generator=rng, dtype=torch.float64, requires_grad=True) if with_bias else None

    def attend(q, k, v, *table):
        out = build(table[0] if table else None).attend(q, k, v, 0.7, 0.0)
        return out[real_rows]

    inputs = (q, k, v, *([table] if with_bias else []))
    with sia_training_path("fused"):
        out = attend(*inputs)
        assert FUSED_NODE in autograd_nodes(out)
        assert torch.autograd.gradcheck(attend, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
    with sia_training_path("explicit"):
        explicit = attend(*inputs)
    assert_close(out.detach(), explicit.detach(), atol=1e-6)  # the explicit path keeps its lse in float32


def test_one_entity_sets_under_fused_training_equal_nia() -> None:
    for family in FAMILIES:
        encoder = make_encoder(family)
        batch = encoder.tokenize([["hot glue gun"], ["glue stick"], [""]])
        sia, _ = encoder(batch)
        assert FUSED_NODE in autograd_nodes(sia)
        with torch.no_grad():
            nia, _ = encoder(batch, "nia")
        assert_close(sia.detach(), nia, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_excluded_summary_slots_stay_finite_under_the_kernels_log2e_scaling(dtype: torch.dtype) -> None:
    """PyTorch's CUDA memory-efficient kernel scales scores by log2(e) in float32 and treats a row whose scores
    are then all -inf as fully masked: output 0 and log-sum-exp 0 (not -inf). A token of a one-entity set has
    every summary slot excluded, so with an infinite mask its empty part B would get weight sigmoid(-lse_A)
    (seen on an H200 with torch 2.11: a one-entity set's embedding off by 0.04). Excluded slots must stay
    finite there, and still get weight exactly 0."""
    build, _, _ = random_pack("sia", seed=5)  # sets of 3, 1 and 4 entities
    mask = build(None)._summary_mask(dtype)
    assert mask.dtype == dtype
    assert torch.isfinite(mask.float() * math.log2(math.e)).all()  # float32, as the kernel computes
    assert (mask == summary_mask_value(dtype)).any() and (mask == 0).any()
    # exp(mask - lse) of an excluded slot underflows to 0 against any real log-sum-exp
    assert math.exp(float(summary_mask_value(dtype)) + 1e4) == 0.0
