"""Tiny random-weight backbones for tests: a 2-layer BERT and a 2-layer T5 encoder, built offline in milliseconds.

Both are deterministic (seeded weights, tokenizers built from fixed word lists) and come in two forms:
in memory (``tiny_bert()`` / ``tiny_t5()`` return ``(model, tokenizer)``) and as a Hugging Face folder
(``save_tiny_bert(dir)`` / ``save_tiny_t5(dir)``) that ``EncoderConfig(backbone=str(folder))`` loads.

Example:
    >>> from cactus.encoders import EncoderConfig, SetEncoder
    >>> model, tokenizer = tiny_bert()
    >>> encoder = SetEncoder(EncoderConfig(backbone="tiny", mode="sia"), model=model, tokenizer=tokenizer)
    >>> [e.shape for e in encoder.embed([["glue stick", "hot glue gun"]])]
    [(2, 32)]
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer, T5Config, T5EncoderModel, T5Tokenizer

# Words of the kind cactus clusters (product titles, queries). The tiny BERT has a whole-word piece for each,
# plus single characters, so any lowercase text tokenizes, and unknown words split into several pieces.
# fmt: off
WORDS = (
    "glue", "stick", "hot", "gun", "candle", "wick", "beeswax", "scented", "soy", "wax", "jar", "lid", "mason",
    "glass", "bottle", "water", "steel", "insulated", "mug", "coffee", "tea", "cup", "ceramic", "plate",
    "bowl", "spoon", "fork", "knife", "set", "kitchen", "towel", "paper", "roll", "notebook", "pen", "pencil",
    "marker", "eraser", "ruler", "tape", "scissors", "stapler", "desk", "lamp", "led", "bulb", "battery",
    "charger", "cable", "usb", "phone", "case", "screen", "protector", "laptop", "stand", "mouse", "keyboard",
    "wireless", "headphones", "speaker", "red", "blue", "green", "black", "white", "small", "large", "pack",
    "of", "two", "three", "for", "kids", "adult", "organic", "fresh", "dried", "apple", "banana", "orange",
    "lemon", "juice", "milk", "bread", "cheese", "butter", "rice", "pasta", "sauce", "salt", "pepper", "sugar",
)
# fmt: on

_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789-'"

TINY_BERT_HIDDEN = 32
TINY_T5_HIDDEN = 32


def _bert_vocab() -> dict[str, int]:
    """Specials, whole words, single characters and their ``##`` continuations, in a fixed order."""
    pieces = [*_SPECIALS, *WORDS, *_LETTERS, *(f"##{c}" for c in _LETTERS)]
    vocab: dict[str, int] = {}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    return vocab


def tiny_bert(
    seed: int = 0, *, hidden_dropout: float = 0.0, initializer_range: float = 0.02
) -> tuple[BertModel, BertTokenizer]:
    """A 2-layer, 4-head, 32-wide random BERT (no pooler) and a WordPiece tokenizer built from ``WORDS``.

    Args:
        seed: seeds the weight initialisation, so equal seeds give equal models.
        hidden_dropout: dropout of hidden states and attention probabilities (0 keeps forwards deterministic).
        initializer_range: std of the random weights; BERT's 0.02 gives nearly uniform attention, 0.2 gives
            attention patterns that change embeddings by about 0.1 (what equivalence tests want).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.
    """
    tokenizer = BertTokenizer(vocab=_bert_vocab(), do_lower_case=True, model_max_length=512)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_BERT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=hidden_dropout,
        attention_probs_dropout_prob=hidden_dropout,
        pad_token_id=0,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False).eval()
    return model, tokenizer


def _sentencepiece_vocab() -> list[tuple[str, float]]:
    """Train a 120-piece unigram SentencePiece model on phrases made of ``WORDS`` (about 0.03 s)."""
    import sentencepiece as spm

    # Deterministic phrases: every word with its two neighbours, so pieces cover every word.
    lines = [" ".join(WORDS[i : i + 3]) for i in range(len(WORDS))] * 3
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=120,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


_SPM_CACHE: list[tuple[str, float]] = []


def tiny_t5(seed: int = 0, *, dropout: float = 0.0) -> tuple[T5EncoderModel, T5Tokenizer]:
    """A 2-layer, 4-head, 32-wide random T5 encoder (gated-gelu, as Flan-T5) and a SentencePiece tokenizer.

    Args:
        seed: seeds the weight initialisation.
        dropout: T5's ``dropout_rate`` (0 keeps forwards deterministic).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode. The relative-position buckets are few (8, max
        distance 16) so that short test entities already exercise the logarithmic buckets.
    """
    if not _SPM_CACHE:
        _SPM_CACHE.extend(_sentencepiece_vocab())
    tokenizer = T5Tokenizer(vocab=list(_SPM_CACHE), extra_ids=0, model_max_length=512)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=TINY_T5_HIDDEN,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        feed_forward_proj="gated-gelu",
        dropout_rate=dropout,
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    model = T5EncoderModel(config).eval()
    # T5's default init gives the relative bias tiny values; make it large enough that a wrong bias shows.
    with torch.no_grad():
        bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
        bias.normal_(0.0, 1.0)
    return model, tokenizer


def save_tiny_bert(directory: str | Path, seed: int = 0) -> Path:
    """Save ``tiny_bert(seed)`` as a Hugging Face folder (config.json, model.safetensors, tokenizer files)."""
    directory = Path(directory)
    model, tokenizer = tiny_bert(seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_t5(directory: str | Path, seed: int = 0) -> Path:
    """Save ``tiny_t5(seed)`` as a Hugging Face folder (config.json, model.safetensors, tokenizer files)."""
    directory = Path(directory)
    model, tokenizer = tiny_t5(seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
