"""A trained clustering model: a set encoder, its card and its threshold, ready to predict clusterings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cactus.data.sets import EntitySet
from cactus.inference.per_set_cut import cut_labels
from cactus.inference.threshold import check_threshold, resolve_cut
from cactus.training.checkpoint import ModelCard, backbone_dir, read_card


def resolve_device(device: str | None = None) -> str:
    """``device`` as given, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_similarities(encoder, sets: Sequence[Sequence[str]], *, mode: str | None = None, batch_size: int = 16,
                     device: str | None = None, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Cosine similarity matrices (N, N) of each set's entities under ``encoder`` (eval mode, no gradient)."""
    out: list[np.ndarray] = []
    was_training = encoder.training
    encoder.eval()
    try:
        for start in range(0, len(sets), batch_size):
            chunk = [list(s) for s in sets[start:start + batch_size]]
            for emb in encoder.embed(chunk, batch_size=batch_size, mode=mode, device=device):
                sim = emb @ emb.T  # (N, D) @ (D, N) -> (N, N)
                out.append(np.clip(sim, -1.0, 1.0).astype(np.float64))
            if progress is not None:
                progress(len(chunk))
    finally:
        encoder.train(was_training)
    return out


class ClusteringModel:
    """A model folder loaded for inference.

    Example:
        >>> model = ClusteringModel.load("runs/toys-sia")  # doctest: +SKIP
        >>> [s.clusters for s in model.predict(sets)]  # doctest: +SKIP
    """

    def __init__(self, encoder, card: ModelCard, *, device: str | None = None, path: Path | None = None,
                 dtype: str = "auto") -> None:
        self.encoder = encoder
        self.card = card
        self.path = path
        self.device = resolve_device(device)
        self.dtype = dtype  # on CUDA: "auto"/"bfloat16" autocast, "float32" none (see cactus.inference.graphs)
        self.encoder.to(self.device).eval()
        self._forwards: dict[str | None, object] = {}  # CUDA: one EncoderForward (its graphs) per mode

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str | None = None, dtype: str = "auto") -> ClusteringModel:
        from cactus.encoders import EncoderConfig, SetEncoder

        card = read_card(model_dir)
        config = EncoderConfig(backbone=str(backbone_dir(model_dir)), mode=card.mode, max_tokens=card.max_tokens)
        return cls(SetEncoder(config), card, device=device, path=Path(model_dir), dtype=dtype)

    @property
    def threshold(self) -> float:
        return self.card.threshold

    @property
    def cut(self) -> str:
        """Where sets are cut: "threshold" or "silhouette" (per set), as chosen on validation (see the card)."""
        return self.card.cut

    def cut_for(self, threshold: float | None, cut: str | None = None) -> str:
        """The cut a prediction uses: ``cut`` when given; else a threshold given by the caller means that threshold,
        and no threshold means the card's choice."""
        return resolve_cut(self.card.cut, threshold is not None, cut)

    def similarities(self, sets: Sequence[EntitySet | Sequence[str]], *, mode: str | None = None,
                     batch_size: int = 16, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """(N, N) cosine similarities per set; ``mode`` overrides the trained attention (e.g. "nia")."""
        texts = [s.texts if isinstance(s, EntitySet) else list(s) for s in sets]
        if self.device.startswith("cuda"):
            return self._graph_similarities(texts, mode, batch_size, progress)
        return set_similarities(self.encoder, texts, mode=mode, batch_size=batch_size, device=self.device,
                                progress=progress)

    def _graph_similarities(self, texts: list[list[str]], mode: str | None, batch_size: int,
                            progress: Callable[[int], None] | None) -> list[np.ndarray]:
        """On CUDA: the similarities from CUDA graphs under bf16 autocast (``dtype``), as prediction computes them."""
        from cactus.inference.graphs import EncoderForward
        from cactus.inference.streaming_defaults import DEFAULT_MAX_BATCH_TOKENS

        if mode not in self._forwards:
            self._forwards[mode] = EncoderForward(self.encoder, mode, dtype=self.dtype)
        forward = self._forwards[mode]
        out: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            filled = [t for t in chunk if t]
            embedded = iter(forward.embed(self.encoder.tokenize_entities(filled), DEFAULT_MAX_BATCH_TOKENS)
                            if filled else [])
            for entities in chunk:
                emb = next(embedded) if entities else np.zeros((0, self.encoder.hidden_size), dtype=np.float32)
                out.append(np.clip(emb @ emb.T, -1.0, 1.0).astype(np.float64))
            if progress is not None:
                progress(len(chunk))
        return out

    def predict(self, sets: Sequence[EntitySet], *, threshold: float | None = None, cut: str | None = None,
                with_similarity: bool = False, mode: str | None = None, batch_size: int = 16,
                progress: Callable[[int], None] | None = None) -> list[EntitySet]:
        """Each set clustered by average link at ``threshold`` (default: the card's) under ``cut`` (see
        :meth:`cut_for`)."""
        cut = self.cut_for(threshold, cut)
        threshold = check_threshold(self.card.threshold if threshold is None else threshold)
        sims = self.similarities(sets, mode=mode, batch_size=batch_size, progress=progress)
        out = []
        for entity_set, sim in zip(sets, sims, strict=True):
            predicted = entity_set.with_labels(cut_labels(sim, threshold, cut))
            if with_similarity:
                predicted.similarity = np.round(sim, 5).tolist()
            out.append(predicted)
        return out
