"""Set encoders: context-aware entity embeddings with NIA, SIA (and its ablations) and FIA attention.

Tipirneni et al., 2024, "Context-Aware Clustering using Large Language Models", section 3.1.

The names below load on first use (PEP 562), so that ``cactus.encoders.config`` (modes, options) is
importable without torch: the CLI's help and the job queue check options without loading a model stack.
"""

from __future__ import annotations

from cactus.encoders.config import ATTENTION_MODES, MODES, AttentionMode, EncoderConfig, attention_mode, check_mode
from cactus.lazy import lazy_getattr

_LAZY = {
    "BackboneError": "cactus.encoders.backbones",
    "BackboneInfo": "cactus.encoders.backbones",
    "describe_backbone": "cactus.encoders.backbones",
    "load_backbone": "cactus.encoders.backbones",
    "SetBatch": "cactus.encoders.packing",
    "reference_forward": "cactus.encoders.reference",
    "SetEncoder": "cactus.encoders.set_encoder",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ATTENTION_MODES",
    "MODES",
    "AttentionMode",
    "BackboneError",
    "BackboneInfo",
    "EncoderConfig",
    "SetBatch",
    "SetEncoder",
    "attention_mode",
    "check_mode",
    "describe_backbone",
    "load_backbone",
    "reference_forward",
]
