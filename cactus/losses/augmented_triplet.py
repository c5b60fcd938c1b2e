"""The augmented triplet loss with a learnable neutral similarity (Tipirneni et al., 2024, eq. 8)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cactus.losses.masks import pair_masks
from cactus.losses.triplet import DEFAULT_MARGIN, triplet_terms


class AugmentedTripletLoss(nn.Module):
    """Triplet terms plus pair terms around a learnable neutral similarity s_neu.

    L = [Σ_T (γ - sim(e, e_p) + sim(e, e_n))+ + Σ_{P_intra} (γ/2 - sim + s_neu)+ + Σ_{P_inter} (γ/2 - s_neu + sim)+]
        / (|T| + |P_intra| + |P_inter|)

    Tipirneni et al., 2024, eq. (8). T is the set of triplets of eq. (7); P_intra and P_inter are the *ordered*
    pairs (e, e'), e != e', in the same and in different clusters (ordered, like the anchor-positive pairs of T).
    The pair terms anchor similarities to an absolute scale, so that one threshold separates clusters in every
    set: the triplet loss alone is zero for Figure 3's case, where an intra-cluster pair is less similar than
    some inter-cluster pairs of other clusters. s_neu starts at 0 and is trained with the encoder.

    Args:
        margin: γ (default 0.3).

    Inputs: similarity (B, N, N), mask (B, N) bool, same (B, N, N) bool co-cluster matrix.
    """

    def __init__(self, margin: float = DEFAULT_MARGIN) -> None:
        super().__init__()
        self.margin = margin
        self.neutral = nn.Parameter(torch.zeros(()))  # s_neu

    def forward(self, similarity: Tensor, mask: Tensor, same: Tensor) -> Tensor:
        triplet_sum, triplet_count = triplet_terms(similarity, mask, same, self.margin)
        intra, inter = pair_masks(mask, same)  # (B, N, N) each
        neutral = self.neutral.to(similarity.dtype)
        intra_terms = torch.relu(self.margin / 2 - similarity + neutral) * intra
        inter_terms = torch.relu(self.margin / 2 - neutral + similarity) * inter
        count = triplet_count + intra.sum() + inter.sum()
        return (triplet_sum + intra_terms.sum() + inter_terms.sum()) / count.clamp(min=1)

    def get_config_dict(self) -> dict[str, float]:
        return {"margin": self.margin, "neutral": float(self.neutral.detach())}
