"""Frozen-encoder embeddings of whole sets, with a progress bar (used by baselines and reports)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cactus.data.sets import EntitySet


def frozen_embedder(backbone: str = "minilm", *, mode: str = "nia", batch_size: int = 16, device: str | None = None,
                    show_progress: bool = True):
    """A function mapping sets to one L2-normalised (N, D) array per set, from an untrained encoder."""
    from tqdm import tqdm

    from cactus.encoders import EncoderConfig, SetEncoder

    encoder = SetEncoder(EncoderConfig(backbone=backbone, mode=mode)).eval()

    def embed(sets: Sequence[EntitySet]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        with tqdm(total=len(sets), unit="set", desc="embedding", leave=False, disable=not show_progress) as bar:
            for start in range(0, len(sets), batch_size):
                chunk = [s.texts for s in sets[start:start + batch_size]]
                out.extend(encoder.embed(chunk, batch_size=batch_size, device=device))
                bar.update(len(chunk))
        return out

    return embed
