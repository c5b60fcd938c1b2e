"""WiSE-FT (Wortsman et al., 2022): a fine-tuned backbone averaged with the one it started from.

``ALPHA * fine-tuned + (1 - ALPHA) * start``. With ``wise_ft="auto"`` training tries each alpha of
:data:`WISE_FT_ALPHAS` on the validation split (each with its own threshold and cut, as a finished model would
choose them) and keeps the best; alpha 1 is the fine-tuned model itself, so the search never keeps a worse one on
validation. Measured on four shared datasets (docs/benchmarks.md, issue 14), the average kept the fine-tune's gain
at home and lost less of it off the home domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cactus.data.sets import EntitySet
from cactus.evaluation.metrics import selection_score
from cactus.training.config import WISE_FT_ALPHAS

__all__ = ["WISE_FT_ALPHAS", "WiseChoice", "choose_wise_ft", "wise_ft_average"]


def wise_ft_average(finetuned: nn.Module, start: nn.Module, alpha: float) -> None:
    """``finetuned``'s floating weights become ALPHA * fine-tuned + (1 - ALPHA) * ``start``'s, in place."""
    start_state = start.state_dict()
    done: set[int] = set()  # tied weights (T5's shared embeddings) appear under several names: average once
    with torch.no_grad():
        for name, tensor in finetuned.state_dict().items():
            if tensor.is_floating_point() and tensor.data_ptr() not in done:
                done.add(tensor.data_ptr())
                tensor.copy_(alpha * tensor + (1.0 - alpha) * start_state[name].to(tensor.device, tensor.dtype))


@dataclass(frozen=True)
class WiseChoice:
    """The alpha kept, its threshold and cut, and for every alpha tried its validation scores under its own cut."""

    alpha: float
    threshold: float
    cut: str
    cut_scores: dict[str, dict[str, float]]  # the kept alpha's scores under each cut
    by_alpha: dict[str, dict[str, float | str]]  # str(alpha) -> {"cut", "threshold", "NMI", "AMI", ...}


def choose_wise_ft(encoder, start: nn.Module, sets: Sequence[EntitySet], alphas: Sequence[float], device: str,
                   batch_size: int, cut: str = "auto") -> WiseChoice:
    """Average ``encoder.backbone`` with ``start`` at each alpha, choose its threshold and cut on the labelled
    ``sets``, and leave the backbone at the alpha with the highest NMI + AMI + RI + ARI there."""
    from cactus.training.trainer import choose_model_cut

    if not sets:
        raise ValueError("choosing the WiSE-FT alpha needs labelled validation sets")
    tuned = {k: v.detach().clone() for k, v in encoder.backbone.state_dict().items()}
    tried: list[tuple[float, float, str, dict[str, dict[str, float]]]] = []
    for alpha in sorted(set(alphas), reverse=True):
        encoder.backbone.load_state_dict(tuned)
        wise_ft_average(encoder.backbone, start, alpha)
        threshold, kept, scores = choose_model_cut(encoder, sets, None, device, batch_size, cut)
        tried.append((alpha, threshold, kept, scores))
    alpha, threshold, kept, scores = max(tried, key=lambda t: (selection_score(t[3][t[2]]), t[0]))
    encoder.backbone.load_state_dict(tuned)
    wise_ft_average(encoder.backbone, start, alpha)
    by_alpha = {str(a): {"cut": c, "threshold": round(t, 5), **{k: round(v, 5) for k, v in s[c].items()}}
                for a, t, c, s in tried}
    return WiseChoice(alpha, threshold, kept, scores, by_alpha)
