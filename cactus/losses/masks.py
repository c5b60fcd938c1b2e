"""Masks over entity pairs and triplets shared by the losses.

Shapes: B sets, N entities (padded to the largest set of the batch).
"""

from __future__ import annotations

import torch
from torch import Tensor


def pair_targets(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Entity mask and co-cluster matrix from cluster labels padded with -1.

    Args:
        labels: (B, N) int cluster id per entity, -1 for padding.

    Returns:
        mask (B, N) bool, True for real entities; same (B, N, N) bool, True where both entities are real and in
        the same cluster (including i == j).
    """
    mask = labels >= 0  # (B, N)
    same = (labels[:, :, None] == labels[:, None, :]) & mask[:, :, None] & mask[:, None, :]  # (B, N, N)
    return mask, same


def pair_masks(mask: Tensor, same: Tensor) -> tuple[Tensor, Tensor]:
    """Ordered intra- and inter-cluster pairs (i != j) of real entities, each (B, N, N) bool."""
    valid = mask[:, :, None] & mask[:, None, :]  # (B, N, N)
    not_self = ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)  # (N, N)
    intra = same & valid & not_self
    inter = ~same & valid
    return intra, inter


def triplet_mask(mask: Tensor, same: Tensor) -> Tensor:
    """``t[b, a, p, n]``: a != p in one cluster, n in another cluster, all real; shape (B, N, N, N)."""
    intra, inter = pair_masks(mask, same)
    return intra[:, :, :, None] & inter[:, :, None, :]  # (B, N, N, 1) & (B, N, 1, N)
