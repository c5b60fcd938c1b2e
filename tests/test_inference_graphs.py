"""The prediction forward (cactus.inference.graphs) on the CPU: fixed-shape packing gives the embeddings of the
ordinary packing, the graph bookkeeping (buckets, static buffers, one capture per bucket) gives eager's results,
a capture that fails falls back to eager with one warning, and --dtype reaches the run. The CUDA graphs
themselves are compared with eager in tests/test_encoders_cuda.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cactus.cli import main
from cactus.encoders import MODES
from cactus.encoders.config import ATTENTION_MODES
from cactus.encoders.packing import pack_fixed
from cactus.inference import graphs
from cactus.inference.graphs import EncoderForward, batch_sets, bucket_of, resolve_dtype
from cactus.inference.streaming import StreamOptions
from tests.test_encoders import SETS, make_encoder

ENTITY_MODES = [m for m in MODES if ATTENTION_MODES[m].layout == "entity"]
MORE_SETS = [*SETS, ["lonely"], ["a b c d e f g h i j k l m n o p", "q", "r s"], ["pen", "pens", "ink", "nib"]]


def eager_capture(step, pool=None):
    """A stand-in for capture_graph on the CPU: run the step once, and 'replay' by running it again."""
    eager_capture.count += 1
    step()
    return step


@pytest.fixture(autouse=True)
def fresh_capture_state(monkeypatch):
    monkeypatch.setattr(graphs, "_CAPTURE_FAILED", set())
    eager_capture.count = 0


@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", ENTITY_MODES)
def test_fixed_shape_packing_gives_the_packed_embeddings(family, mode):
    encoder = make_encoder(family, mode).eval()
    ids = encoder.tokenize_entities([s for s in SETS if s and all(s)] + MORE_SETS[3:])
    with torch.no_grad():
        expected, _ = encoder(encoder.pack_tokens(ids, mode), mode)
        batch = pack_fixed(ids, sets=8, entities=8, length=32, pad_id=encoder.tokenizer.pad_token_id,
                           position_offset=encoder.info.position_offset)
        got, mask = encoder(batch, mode)
    assert got.shape[:2] == (8, 8)
    assert torch.isfinite(got).all()
    for i, entities in enumerate(ids):
        n = len(entities)
        assert (got[i, :n] - expected[i, :n]).abs().max().item() < 1e-5
        assert mask[i, :n].all() and not mask[i, n:].any()
    assert not mask[len(ids):].any()


def test_fixed_shape_packing_refuses_sets_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        pack_fixed([[[1, 2, 3]]], sets=1, entities=2, length=2, pad_id=0)
    with pytest.raises(ValueError, match="do not fit"):
        pack_fixed([[[1]], [[2]]], sets=1, entities=2, length=2, pad_id=0)


def test_buckets_are_powers_of_two_within_the_token_budget():
    assert bucket_of([[1] * 5, [1] * 9, [1]], max_length=128) == (4, 16)
    assert bucket_of([[1] * 3], max_length=128) == (2, 8)
    assert bucket_of([[1] * 100], max_length=100) == (2, 100)  # never past the encoder's max_tokens
    assert batch_sets(16, 16, 8192) == 32 and batch_sets(16, 16, 5000) == 16 and batch_sets(512, 64, 1000) == 1


def test_dtype_auto_is_bf16_on_cuda_only():
    assert resolve_dtype("auto", "cpu") is None and resolve_dtype("auto", "cuda:0") is torch.bfloat16
    assert resolve_dtype("float32", "cuda") is None and resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("half", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        StreamOptions(threshold=0.5, dtype="fp16")


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert [x.shape for x in a] == [y.shape for y in b]
    assert max(abs(x - y).max() for x, y in zip(a, b, strict=True)) < 1e-5


@pytest.mark.parametrize("mode", ["sia", "nia"])
def test_graph_bookkeeping_gives_eager_results_and_captures_once_per_bucket(mode):
    encoder = make_encoder("t5", mode).eval()
    ids = encoder.tokenize_entities(MORE_SETS[1:] * 3)
    eager = EncoderForward(encoder, mode, graphs=False).embed(ids, max_batch_tokens=256)
    forward = EncoderForward(encoder, mode, graphs=True, capture=eager_capture)
    first = forward.embed(ids, max_batch_tokens=256)
    captured = eager_capture.count
    assert captured == len(forward._graphs) >= 2  # several buckets, one capture each
    again = forward.embed(ids[::-1], max_batch_tokens=256)  # new values in the same buckets: replays only
    assert eager_capture.count == captured
    assert_same(first, eager)
    assert_same(again, eager[::-1])


def test_fia_never_uses_graphs():
    encoder = make_encoder("bert", "fia").eval()
    assert not EncoderForward(encoder, "fia", graphs=True, capture=eager_capture).graphs


def test_a_failing_capture_falls_back_to_eager_with_one_warning():
    encoder = make_encoder("bert", "sia").eval()
    ids = encoder.tokenize_entities(MORE_SETS[1:] * 2)
    eager = EncoderForward(encoder, graphs=False).embed(ids, max_batch_tokens=128)

    def broken(step, pool=None):
        raise RuntimeError("operation not permitted when stream is capturing")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forward = EncoderForward(encoder, graphs=True, capture=broken)
        got = forward.embed(ids, max_batch_tokens=128)
        again = EncoderForward(encoder, graphs=True, capture=broken).embed(ids, max_batch_tokens=128)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "CUDA graph capture failed" in messages[0] and "stream is capturing" in messages[0]
    assert not forward.graphs
    assert_same(got, eager)
    assert_same(again, eager)


def test_cli_dtype_reaches_the_run(tiny_model, tmp_path, capsys):
    from tests.tiny_data import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", sets=10)
    fp32, bf16 = tmp_path / "fp32.jsonl", tmp_path / "bf16.jsonl"
    assert main(["predict", str(tiny_model), str(data / "test.jsonl"), "--out", str(fp32), "--dtype", "float32"]) == 0
    assert main(["predict", str(tiny_model), str(data / "test.jsonl"), "--out", str(bf16), "--dtype", "bfloat16",
                 "--with-similarity"]) == 0
    assert fp32.read_text().count("\n") == bf16.read_text().count("\n") > 0
    with pytest.raises(SystemExit):
        main(["predict", str(tiny_model), str(data / "test.jsonl"), "--out", str(fp32), "--dtype", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_the_models_cuda_similarity_path_gives_the_usual_similarities(tiny_model):
    """ClusteringModel takes EncoderForward on CUDA; run that path here (eager on the CPU): the same matrices,
    an empty set included, and progress per chunk."""
    from cactus.inference.model import ClusteringModel

    model = ClusteringModel.load(tiny_model)
    sets = [["red pen", "blue pen", "stapler"], [], ["glue stick", "hot glue gun", "candle wick", "wax"], ["x"]]
    done: list[int] = []
    got = model._graph_similarities(sets, None, 3, done.append)
    expected = model.similarities(sets)
    assert done == [3, 1]
    assert [s.shape for s in got] == [s.shape for s in expected] == [(3, 3), (0, 0), (4, 4), (1, 1)]
    assert max(abs(a - b).max() for a, b in zip(got, expected, strict=True) if a.size) < 1e-5
