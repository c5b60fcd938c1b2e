"""CUDA checks (skipped without a GPU): fp32 SIA equals the reference; bf16 autocast runs forward and backward."""

from __future__ import annotations

import pytest
import torch

from cactus.encoders import MODES, EncoderConfig, SetEncoder, reference_forward
from tests.test_encoders import SETS, tiny_backbone

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_encoder(family: str, mode: str = "sia") -> SetEncoder:
    model, tokenizer = tiny_backbone(family)
    return SetEncoder(EncoderConfig(backbone="tiny", mode=mode), model=model, tokenizer=tokenizer).cuda()


@pytest.fixture(autouse=True)
def no_tf32():
    """Full fp32 matrix products, so that 1e-5 is a fair tolerance."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", MODES)
def test_cuda_fp32_equals_reference(family: str, mode: str) -> None:
    encoder = cuda_encoder(family, mode)
    with torch.no_grad():
        fast, _ = encoder(encoder.tokenize(SETS).to("cuda"))
        slow, _ = reference_forward(encoder, SETS)
    assert fast.device.type == "cuda"
    assert (fast - slow).abs().max().item() < 1e-5


@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", MODES)
def test_cuda_bf16_autocast_forward_and_backward(family: str, mode: str) -> None:
    encoder = cuda_encoder(family, mode).train()
    batch = encoder.tokenize(SETS).to("cuda")
    with torch.no_grad():
        exact, _ = encoder.eval()(batch)
    encoder.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        embeddings, mask = encoder(batch)
        loss = (embeddings @ embeddings.transpose(1, 2)).square().mean()
    loss.backward()
    assert torch.isfinite(embeddings).all()
    grads = [p.grad for p in encoder.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    cosine = (embeddings.float() * exact).sum(-1)[mask]
    assert cosine.min().item() > 0.98, f"bf16 embeddings drifted: min cosine {cosine.min().item():.4f}"


def test_cuda_embed_matches_cpu() -> None:
    model, tokenizer = tiny_backbone("t5")
    encoder = SetEncoder(EncoderConfig(backbone="tiny"), model=model, tokenizer=tokenizer)
    on_cpu = encoder.embed(SETS)
    on_gpu = encoder.embed(SETS, device="cuda")
    assert next(encoder.parameters()).device.type == "cuda"
    for a, b in zip(on_cpu, on_gpu, strict=True):
        assert abs(a - b).max() < 1e-5
