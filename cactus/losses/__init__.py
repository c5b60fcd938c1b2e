"""Losses over a batch of within-set similarity matrices, one module each.

Every loss is called as ``loss(similarity, mask, same)`` with similarity (B, N, N), mask (B, N) bool (real
entities) and same (B, N, N) bool (co-cluster matrix), and returns a scalar. ``pair_targets`` turns padded
cluster labels into mask and same.
"""

from __future__ import annotations

from torch import nn

from cactus.losses.augmented_triplet import AugmentedTripletLoss
from cactus.losses.bce import PairwiseBCELoss
from cactus.losses.masks import pair_targets
from cactus.losses.names import LOSS_NAMES
from cactus.losses.structural import StructuralLoss
from cactus.losses.triplet import TripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "aug_triplet": AugmentedTripletLoss,
    "triplet": TripletLoss,
    "structural": StructuralLoss,
    "bce": PairwiseBCELoss,
}


assert tuple(LOSSES) == LOSS_NAMES  # the torch-free list of names must follow the registry


def build_loss(name: str) -> nn.Module:
    """The loss named ``name`` with the paper's hyperparameters."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]()


__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "AugmentedTripletLoss",
    "PairwiseBCELoss",
    "StructuralLoss",
    "TripletLoss",
    "build_loss",
    "pair_targets",
]
