"""Pairwise binary cross-entropy on similarities mapped to [0, 1]."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from cactus.losses.masks import pair_masks

EPS = 1e-6


class PairwiseBCELoss(nn.Module):
    """Mean BCE of p = (sim + 1) / 2 against "same cluster" over ordered pairs e != e' of real entities.

    Inputs: similarity (B, N, N), mask (B, N) bool, same (B, N, N) bool co-cluster matrix.
    """

    def forward(self, similarity: Tensor, mask: Tensor, same: Tensor) -> Tensor:
        intra, inter = pair_masks(mask, same)
        pairs = intra | inter  # (B, N, N)
        # clamp: cosines of identical texts reach 1 and log(1 - p) would be -inf
        prob = ((similarity.float() + 1) / 2).clamp(EPS, 1 - EPS)
        terms = F.binary_cross_entropy(prob, intra.float(), reduction="none")
        return (terms * pairs).sum() / pairs.sum().clamp(min=1)

    def get_config_dict(self) -> dict[str, float]:
        return {}

