"""SetEncoder's public behaviour: configs, backbone folders and their errors, tokenize/embed contracts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from cactus.encoders import (
    ATTENTION_MODES,
    MODES,
    AttentionMode,
    BackboneError,
    EncoderConfig,
    SetEncoder,
    load_backbone,
    reference_forward,
)
from cactus.encoders.config import ENTITY_MODES, SUMMARY_MODES
from cactus.errors import CactusError
from tests.tiny_backbones import save_tiny_bert, save_tiny_t5, tiny_bert, tiny_t5

SETS = [
    ["glue stick", "hot glue gun", "candle wick"],
    ["red pen"],
    [],
    ["beeswax candle", "soy wax jar", "mason glass jar lid", "scented candle", "kitchen towel"],
]


def tiny(family: str = "bert", mode: str = "sia", **config) -> SetEncoder:
    model, tokenizer = tiny_bert() if family == "bert" else tiny_t5()
    return SetEncoder(EncoderConfig(backbone="tiny", mode=mode, **config), model=model, tokenizer=tokenizer)


# --------------------------------------------------------------------------- config
def test_config_defaults_and_validation() -> None:
    config = EncoderConfig()
    assert (config.backbone, config.mode, config.max_tokens) == ("minilm", "sia", 32)
    assert MODES == ("nia", "sia", "sia_first", "sia_qkey", "fia")
    with pytest.raises(ValueError, match="nia, sia, sia_first, sia_qkey, fia"):
        EncoderConfig(mode="full")
    with pytest.raises(ValueError, match="max_tokens"):
        EncoderConfig(max_tokens=1)
    with pytest.raises(ValueError, match="backbone"):
        EncoderConfig(backbone=" ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "nia"  # type: ignore[misc]
    assert dataclasses.asdict(EncoderConfig(mode="fia")) == {"backbone": "minilm", "mode": "fia", "max_tokens": 32}


# --------------------------------------------------------------------------- the table of attention modes
def test_attention_mode_table_names_labels_and_derived_lists() -> None:
    modes = list(ATTENTION_MODES.values())
    assert [m.name for m in modes] == list(ATTENTION_MODES) == list(MODES)
    for field in ("label", "help"):
        texts = [getattr(m, field) for m in modes]
        assert all(t.strip() for t in texts) and len(set(texts)) == len(texts), f"{field}s must be unique"
    assert tuple(m.name for m in modes if m.layout == "entity") == ENTITY_MODES
    assert tuple(m.name for m in modes if m.summary != "none") == SUMMARY_MODES
    assert ATTENTION_MODES["fia"].layout == "set" and not ATTENTION_MODES["nia"].has_summaries


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("set", "mean", False), "summaries need the entity layout"),
        (("entity", "none", True), "project_summary_keys needs summaries"),
        (("tokens", "none", False), "layout must be 'entity' or 'set'"),
        (("entity", "max", False), "summary must be 'none', 'mean' or 'first'"),
    ],
)
def test_attention_mode_records_refuse_combinations_no_kernel_computes(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        AttentionMode("new", *fields, "New", "a new mode")


@pytest.mark.parametrize("family", ["bert", "t5"])
@pytest.mark.parametrize("mode", list(ATTENTION_MODES.values()), ids=list(ATTENTION_MODES))
def test_every_attention_mode_builds_and_runs_as_its_reference_says(family: str, mode: AttentionMode) -> None:
    """Each record of the table builds an encoder whose packed forward equals the dense reference of that mode."""
    encoder = tiny(family, mode.name)
    sets = [SETS[0], SETS[1], SETS[3]]
    batch = encoder.tokenize(sets)
    assert batch.layout == mode.layout
    with torch.no_grad():
        embeddings, mask = encoder(batch)
        reference, _ = reference_forward(encoder, sets)
    assert embeddings.shape == (3, 5, encoder.hidden_size) and mask.sum().item() == 9
    torch.testing.assert_close(embeddings, reference, atol=2e-5, rtol=0)
    alone = encoder.embed([SETS[3]])[0]
    with torch.no_grad():
        nia, _ = encoder(encoder.tokenize([SETS[3]], mode="nia"), mode="nia")
    # Modes that let entities see each other change the embeddings of a many-entity set; NIA does not.
    differs = not np.allclose(alone, nia[0].numpy(), atol=1e-4)
    assert differs == (mode.has_summaries or mode.layout == "set")


# --------------------------------------------------------------------------- backbone folders
@pytest.mark.parametrize("family", ["bert", "t5"])
def test_saved_tiny_folder_loads_and_matches_in_memory(tmp_path, family: str) -> None:
    folder = save_tiny_bert(tmp_path / "m") if family == "bert" else save_tiny_t5(tmp_path / "m")
    from_folder = SetEncoder(EncoderConfig(backbone=str(folder)))
    in_memory = tiny(family)
    assert from_folder.info.family == family
    assert type(from_folder.backbone).__name__ == ("BertModel" if family == "bert" else "T5EncoderModel")
    a = from_folder.embed(SETS)
    b = in_memory.embed(SETS)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_t5_folder_of_a_full_encoder_decoder_loads_as_encoder(tmp_path) -> None:
    from transformers import T5Config, T5ForConditionalGeneration

    encoder_model, tokenizer = tiny_t5()
    config = T5Config(**{**encoder_model.config.to_dict(), "is_encoder_decoder": True, "num_decoder_layers": 1})
    full = T5ForConditionalGeneration(config)
    full.encoder.load_state_dict(encoder_model.encoder.state_dict())
    full.save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    model, _ = load_backbone(str(tmp_path / "full"))
    assert type(model).__name__ == "T5EncoderModel"
    torch.testing.assert_close(
        model.encoder.block[1].layer[1].DenseReluDense.wo.weight,
        encoder_model.encoder.block[1].layer[1].DenseReluDense.wo.weight,
    )


def test_backbone_errors_name_what_was_expected(tmp_path) -> None:
    with pytest.raises(BackboneError, match="neither 'minilm' nor an existing folder"):
        load_backbone(str(tmp_path / "nowhere"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(BackboneError, match="is a file, not a folder"):
        load_backbone(str(tmp_path / "file.bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match=r"has no config.json; expected a Hugging Face BERT or T5 encoder"):
        load_backbone(str(tmp_path / "empty"))
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BackboneError, match=r"model_type .gpt2. is not supported: expected bert-family .* or t5"):
        load_backbone(str(gpt2))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(BackboneError, match="not a readable JSON object"):
        load_backbone(str(tmp_path / "broken"))


def test_backbone_errors_for_missing_weights_or_tokenizer(tmp_path) -> None:
    folder = save_tiny_bert(tmp_path / "bert")
    (folder / "model.safetensors").rename(tmp_path / "weights")
    with pytest.raises(BackboneError, match=r"has no model weights; expected one of model\.safetensors"):
        SetEncoder(EncoderConfig(backbone=str(folder)))
    (tmp_path / "weights").rename(folder / "model.safetensors")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BackboneError, match="has no tokenizer files"):
        load_backbone(str(folder))
    assert issubclass(BackboneError, CactusError)


def test_in_memory_model_must_be_supported() -> None:
    from transformers import GPT2Config, GPT2Model

    _, tokenizer = tiny_bert()
    model = GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(BackboneError, match="model_type 'gpt2' is not supported"):
        SetEncoder(EncoderConfig(backbone="x"), model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="pass both model and tokenizer"):
        SetEncoder(EncoderConfig(backbone="x"), model=model)


def test_backbone_keeps_stock_behaviour_without_cactus_keywords() -> None:
    """The switched attention is plain SDPA (with the padding mask) when called as an ordinary HF model."""
    import copy

    model, tokenizer = tiny_bert(initializer_range=0.2)
    stock = copy.deepcopy(model)
    encoder = SetEncoder(EncoderConfig(backbone="x"), model=model, tokenizer=tokenizer)
    inputs = tokenizer(["glue stick", "a much longer hot glue gun title"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = encoder.backbone(**inputs).last_hidden_state
        theirs = stock(**inputs).last_hidden_state
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- tokenize / forward contracts
def test_tokenize_truncates_and_validates() -> None:
    encoder = tiny(max_tokens=6)
    ids = encoder.tokenize_entities([["glue stick hot glue gun candle wick beeswax", "x"]])
    assert [len(e) for e in ids[0]] == [6, 3]
    with pytest.raises(TypeError, match="set 0 must be a list of texts, got str"):
        encoder.tokenize(["glue stick"])
    with pytest.raises(ValueError, match="set 1 has no entities"):
        encoder.tokenize([["a"], []])
    with pytest.raises(TypeError, match="entity 1 of set 0 must be a string"):
        encoder.tokenize([["a", 3]])
    with pytest.raises(ValueError, match="no sets to encode"):
        encoder.tokenize([])


def test_forward_refuses_a_batch_packed_for_another_layout() -> None:
    encoder = tiny()
    batch = encoder.tokenize([["a", "b"]], mode="sia")
    with pytest.raises(ValueError, match=r"call encoder.tokenize\(sets, mode='fia'\)"):
        encoder(batch, mode="fia")
    with pytest.raises(ValueError, match="mode must be one of"):
        encoder(batch, mode="siaa")
    # nia and the SIA variants share one layout
    for mode in ("nia", "sia", "sia_first", "sia_qkey"):
        embeddings, mask = encoder(batch, mode=mode)
        assert embeddings.shape == (1, 2, encoder.hidden_size) and mask.all()


def test_set_batch_moves_every_tensor() -> None:
    encoder = tiny()
    batch = encoder.tokenize([["glue stick", "a much longer hot glue gun title"], ["x"]])
    moved = batch.to("meta")
    assert moved.input_ids.device.type == "meta" and moved.token_set_pos.device.type == "meta"
    assert all(v is None or v.device.type == "meta" for v in moved.segment_valid)
    assert batch.input_ids.device.type == "cpu" and moved.segments == batch.segments


# --------------------------------------------------------------------------- embed
@pytest.mark.parametrize("family", ["bert", "t5"])
def test_embed_order_batching_and_empty_sets(family: str) -> None:
    encoder = tiny(family)
    calls: list[tuple[int, int]] = []
    one_by_one = encoder.embed(SETS, batch_size=1, progress=lambda done, total: calls.append((done, total)))
    together = encoder.embed(SETS, batch_size=16)
    assert [a.shape for a in together] == [(3, 32), (1, 32), (0, 32), (5, 32)]
    assert all(a.dtype == np.float32 for a in together)
    for a, b in zip(one_by_one, together, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(np.linalg.norm(together[0], axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        direct, _ = encoder(encoder.tokenize([SETS[3]]))
    np.testing.assert_allclose(together[3], direct[0].numpy(), atol=2e-6)


def test_embed_mode_override_and_training_state_restored() -> None:
    encoder = tiny(mode="sia").train()
    sia = encoder.embed([SETS[0]])[0]
    nia = encoder.embed([SETS[0]], mode="nia")[0]
    fia = encoder.embed([SETS[0]], mode="fia")[0]
    assert encoder.training
    assert np.abs(sia - nia).max() > 1e-4 and np.abs(fia - nia).max() > 1e-4
    single = encoder.embed([[text] for text in SETS[0]], mode="nia")
    np.testing.assert_allclose(np.concatenate(single), nia, atol=2e-6)
    with pytest.raises(ValueError, match="batch_size"):
        encoder.embed([SETS[0]], batch_size=0)
