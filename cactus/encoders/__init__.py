"""Set encoders: context-aware entity embeddings with NIA, SIA (and its ablations) and FIA attention.

Tipirneni et al., 2024, "Context-Aware Clustering using Large Language Models", section 3.1.
"""

from cactus.encoders.backbones import BackboneError, BackboneInfo, describe_backbone, load_backbone
from cactus.encoders.config import MODES, EncoderConfig
from cactus.encoders.packing import SetBatch
from cactus.encoders.reference import reference_forward
from cactus.encoders.set_encoder import SetEncoder

__all__ = [
    "MODES",
    "BackboneError",
    "BackboneInfo",
    "EncoderConfig",
    "SetBatch",
    "SetEncoder",
    "describe_backbone",
    "load_backbone",
    "reference_forward",
]
