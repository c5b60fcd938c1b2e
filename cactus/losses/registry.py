"""The losses by name, and :func:`build_loss`."""

from __future__ import annotations

from torch import nn

from cactus.losses.augmented_triplet import AugmentedTripletLoss
from cactus.losses.bce import PairwiseBCELoss
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
