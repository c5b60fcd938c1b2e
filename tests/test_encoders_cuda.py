"""CUDA checks (skipped without a GPU): fp32 SIA equals the reference (values, and gradients of the fused training
path); bf16 autocast runs forward and backward; attention dropout's gradient matches finite differences."""

from __future__ import annotations

import pytest
import torch

from cactus.encoders import MODES, EncoderConfig, SetEncoder, reference_forward
from cactus.encoders.attention import sia_training_path
from cactus.encoders.config import SUMMARY_MODES
from tests.test_encoders import SETS, tiny_backbone
from tests.test_encoders_training import FUSED_NODE, TRAIN_SETS, assert_grads_close, autograd_nodes
from tests.tiny_backbones import tiny_t5

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


# --------------------------------------------------------------------------- the fused training path
@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", SUMMARY_MODES)
def test_cuda_fused_training_equals_reference(family: str, mode: str, record_property) -> None:
    """Memory-efficient kernels forward and backward, merged by hand: values and gradients as the reference's,
    with padded sets and a one-entity set (whose summary softmax is empty) in the batch; no_grad too."""
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(2)).cuda()
    encoder = cuda_encoder(family, mode)
    batch = encoder.tokenize(TRAIN_SETS).to("cuda")
    with torch.no_grad():
        inference, _ = encoder(batch)
    fast, _ = encoder(batch)
    assert FUSED_NODE in autograd_nodes(fast)
    (fast * weights[..., : fast.shape[-1]]).sum().backward()
    fast_grads = {n: p.grad for n, p in encoder.backbone.named_parameters()}
    reference = cuda_encoder(family, mode)
    slow, _ = reference_forward(reference, TRAIN_SETS)
    (slow * weights[..., : slow.shape[-1]]).sum().backward()
    slow_grads = {n: p.grad for n, p in reference.backbone.named_parameters()}
    value_diff = max((fast - slow).abs().max().item(), (inference - slow).abs().max().item())
    grad_diff = max(
        ((fast_grads[n] - g).abs().max() / max(g.abs().max().item(), 1e-2)).item()
        for n, g in slow_grads.items()
        if not n.endswith("attention.self.key.bias")
    )
    record_property("max_value_diff", f"{value_diff:.3g}")
    record_property("max_relative_grad_diff", f"{grad_diff:.3g}")
    assert torch.isfinite(inference).all() and torch.isfinite(fast).all()
    assert value_diff < 1e-5
    assert_grads_close(fast_grads, slow_grads)


def test_cuda_fused_training_with_dropout_matches_finite_differences(record_property) -> None:
    """Attention dropout (the memory-efficient kernel's, replayed in its backward from the forward's seed): the
    gradient along a random direction equals the loss's central difference under the same dropout masks."""
    model, tokenizer = tiny_t5(dropout=0.2)
    encoder = SetEncoder(EncoderConfig(backbone="tiny"), model=model, tokenizer=tokenizer).cuda().train()
    batch = encoder.tokenize(TRAIN_SETS).to("cuda")
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(3)).cuda()
    params = list(encoder.parameters())
    generator = torch.Generator().manual_seed(4)
    # A random direction scaled to each parameter's size, and a step small enough for 1e-4 accuracy (CPU, fp32).
    direction = [torch.randn(p.shape, generator=generator).cuda() * p.detach().abs().mean() for p in params]

    def loss(seed: int = 0) -> torch.Tensor:
        torch.manual_seed(seed)  # the same dropout masks (attention and hidden) in every call
        embeddings, _ = encoder(batch)
        return (embeddings * weights[..., : embeddings.shape[-1]]).sum()

    value = loss()
    assert FUSED_NODE in autograd_nodes(value)
    value.backward()
    analytic = sum((p.grad * u).sum() for p, u in zip(params, direction, strict=True)).item()
    eps = 1e-3
    shifted = []
    for sign in (1, -2, 1):  # +eps, -eps, back to the start
        with torch.no_grad():
            for p, u in zip(params, direction, strict=True):
                p.add_(u, alpha=sign * eps)
        if len(shifted) < 2:
            shifted.append(loss().item())
    numeric = (shifted[0] - shifted[1]) / (2 * eps)
    record_property("analytic", f"{analytic:.6g}")
    record_property("numeric", f"{numeric:.6g}")
    assert abs(analytic - numeric) <= 1e-2 * abs(numeric), (analytic, numeric)
    assert abs(loss(seed=1).item() - value.item()) > 1e-3  # the dropout masks matter: other masks, other loss


def test_cuda_fused_and_explicit_agree_under_bf16_autocast() -> None:
    grads = {}
    for path in ("fused", "explicit"):
        encoder = cuda_encoder("t5")
        batch = encoder.tokenize(TRAIN_SETS).to("cuda")
        with sia_training_path(path), torch.autocast("cuda", dtype=torch.bfloat16):
            embeddings, _ = encoder(batch)
            loss = (embeddings @ embeddings.transpose(1, 2)).float().square().mean()
        loss.backward()
        grads[path] = {n: p.grad for n, p in encoder.backbone.named_parameters()}
    for name, grad in grads["explicit"].items():
        scale = max(grad.abs().max().item(), 1e-2)
        assert ((grads["fused"][name] - grad).abs().max() / scale).item() < 0.05, name


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_cuda_fused_training_with_padded_buckets_equals_reference(family: str) -> None:
    """Two buckets, so entities are padded: broadcast padding masks in the kernels, weighted summaries."""
    weights = torch.randn(5, 7, 32, generator=torch.Generator().manual_seed(3)).cuda()
    grads = []
    for run in ("fast", "reference"):
        encoder = cuda_encoder(family)
        if run == "fast":
            batch = encoder.tokenize(TRAIN_SETS, "sia", max_buckets=2).to("cuda")
            assert any(v is not None for v in batch.segment_valid)
            embeddings, _ = encoder(batch)
            assert FUSED_NODE in autograd_nodes(embeddings)
        else:
            embeddings, _ = reference_forward(encoder, TRAIN_SETS)
        (embeddings * weights[..., : embeddings.shape[-1]]).sum().backward()
        grads.append({n: p.grad for n, p in encoder.backbone.named_parameters()})
    assert_grads_close(*grads)


# --------------------------------------------------------------------------- prediction from CUDA graphs
@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", ["nia", "sia", "sia_qkey"])
def test_cuda_graph_forward_equals_eager(family: str, mode: str) -> None:
    """fp32: the graphs of every bucket give eager's embeddings, also when replayed on new values; bf16: close."""
    from cactus.inference.graphs import EncoderForward

    encoder = cuda_encoder(family, mode).eval()
    ids = encoder.tokenize_entities([s for s in SETS if all(s)] * 5 + [["lonely"], ["a b c d e f g h", "i"]])
    eager = EncoderForward(encoder, mode, graphs=False, dtype="float32").embed(ids, 256)
    graphed = EncoderForward(encoder, mode, dtype="float32")
    assert graphed.graphs
    first = graphed.embed(ids, 256)
    captured = len(graphed._graphs)
    again = graphed.embed(ids[::-1], 256)
    assert captured >= 1 and len(graphed._graphs) == captured
    for a, b, c in zip(eager, first, again[::-1], strict=True):
        assert abs(a - b).max() < 1e-5 and abs(a - c).max() < 1e-5
    bf16 = EncoderForward(encoder, mode).embed(ids, 256)  # auto: bf16 autocast on CUDA
    assert min(float((a * b).sum(-1).min()) for a, b in zip(eager, bf16, strict=True)) > 0.98


def test_cuda_predict_stream_from_graphs_clusters_as_the_cpu() -> None:
    from cactus.data.sets import EntitySet
    from cactus.inference.streaming import StreamOptions, predict_stream

    encoder = cuda_encoder("t5").eval()
    sets = [EntitySet(str(i), s) for i, s in enumerate([s for s in SETS if all(s)] * 20)]
    options = StreamOptions(threshold=0.5, dtype="float32", window=16)
    on_gpu: list = []
    predict_stream(encoder, sets, on_gpu.append, options)
    on_cpu: list = []
    predict_stream(encoder, sets, on_cpu.append, options, device="cpu")
    assert [s.clusters for s in on_gpu] == [s.clusters for s in on_cpu]


def test_cuda_model_similarities_from_graphs_equal_the_cpu(tiny_model) -> None:
    """The app's and evaluate's path (ClusteringModel.similarities) on CUDA: graphs, fp32, as on the CPU."""
    from cactus.inference.model import ClusteringModel

    sets = [["red pen", "blue pen", "stapler"], [], ["glue stick", "hot glue gun", "candle wick", "wax"]] * 3
    on_cpu = ClusteringModel.load(tiny_model, device="cpu").similarities(sets)
    on_gpu = ClusteringModel.load(tiny_model, device="cuda", dtype="float32")
    for _ in range(2):  # the second call replays the captured graphs
        got = on_gpu.similarities(sets, batch_size=4)
        assert [s.shape for s in got] == [s.shape for s in on_cpu]
        assert max(abs(a - b).max() for a, b in zip(got, on_cpu, strict=True) if a.size) < 1e-4
