"""Losses over a batch of within-set similarity matrices, one module each.

Every loss is called as ``loss(similarity, mask, same)`` with similarity (B, N, N), mask (B, N) bool (real
entities) and same (B, N, N) bool (co-cluster matrix), and returns a scalar. ``pair_targets`` turns padded
cluster labels into mask and same. The names load on first use (PEP 562), so ``LOSS_NAMES`` needs no torch.
"""

from __future__ import annotations

from cactus.lazy import lazy_getattr
from cactus.losses.names import LOSS_NAMES

_LAZY = {
    "AugmentedTripletLoss": "cactus.losses.augmented_triplet",
    "PairwiseBCELoss": "cactus.losses.bce",
    "StructuralLoss": "cactus.losses.structural",
    "TripletLoss": "cactus.losses.triplet",
    "pair_targets": "cactus.losses.masks",
    "LOSSES": "cactus.losses.registry",
    "build_loss": "cactus.losses.registry",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


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
