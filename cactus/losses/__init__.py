"""Losses over a batch of within-set similarity matrices, one module each.

Every loss is called as ``loss(similarity, mask, same)`` with similarity (B, N, N), mask (B, N) bool (real
entities) and same (B, N, N) bool (co-cluster matrix), and returns a scalar. ``pair_targets`` turns padded
cluster labels into mask and same. The losses by name are one table, ``LOSSES`` (:mod:`cactus.losses.registry`,
importable without torch); the other names load on first use (PEP 562).
"""

from __future__ import annotations

from cactus.lazy import lazy_getattr
from cactus.losses.registry import LOSS_NAMES, LOSSES, LossKind, build_loss, loss_kind

_LAZY = {
    "AugmentedTripletLoss": "cactus.losses.augmented_triplet",
    "PairwiseBCELoss": "cactus.losses.bce",
    "StructuralLoss": "cactus.losses.structural",
    "TripletLoss": "cactus.losses.triplet",
    "pair_targets": "cactus.losses.masks",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "AugmentedTripletLoss",
    "LossKind",
    "PairwiseBCELoss",
    "StructuralLoss",
    "TripletLoss",
    "build_loss",
    "loss_kind",
    "pair_targets",
]
