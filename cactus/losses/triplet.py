"""The triplet loss over cosine similarities within each set (Tipirneni et al., 2024, eq. 7)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cactus.losses.masks import triplet_mask

DEFAULT_MARGIN = 0.3


def triplet_terms(similarity: Tensor, mask: Tensor, same: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Sum and count of (margin - sim(a, p) + sim(a, n))+ over all triplets of the batch.

    Args:
        similarity: (B, N, N) cosine similarities.
        mask: (B, N) bool, real entities.
        same: (B, N, N) bool, co-cluster matrix.
        margin: the margin γ.

    Returns:
        (sum of the hinge terms, number of triplets), both 0-d tensors.
    """
    valid = triplet_mask(mask, same)  # (B, N, N, N): anchor, positive, negative
    hinge = torch.relu(margin - similarity[:, :, :, None] + similarity[:, :, None, :])  # (B, N, N, N)
    return (hinge * valid).sum(), valid.sum()


class TripletLoss(nn.Module):
    """Mean of (γ - sim(e, e_p) + sim(e, e_n))+ over all triplets with e != e_p, f(e) = f(e_p) != f(e_n).

    Tipirneni et al., 2024, eq. (7). A batch without any triplet (every set one cluster or all singletons)
    gives 0 with a gradient of 0, never NaN.

    Args:
        margin: γ (default 0.3).

    Example:
        >>> from cactus.losses import pair_targets
        >>> s = torch.tensor([[[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]]])  # (B=1, N=3, N=3)
        >>> mask, same = pair_targets(torch.tensor([[0, 0, 1]]))
        >>> float(TripletLoss()(s, mask, same))  # 0.9 - 0.2 > 0.3: every triplet is satisfied
        0.0
    """

    def __init__(self, margin: float = DEFAULT_MARGIN) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, similarity: Tensor, mask: Tensor, same: Tensor) -> Tensor:
        total, count = triplet_terms(similarity, mask, same, self.margin)
        return total / count.clamp(min=1)

    def get_config_dict(self) -> dict[str, float]:
        return {"margin": self.margin}
