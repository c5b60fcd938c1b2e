"""The losses by name: one record each (its label for users, the class that computes it), and :func:`build_loss`.

Importable without torch: a loss's class is imported when the loss is built, so the CLI's help, the job queue and
the app check and list loss names without loading torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LossKind:
    """One loss users can train with.

    Attributes:
        name: what configs, cards, the CLI and job parameters call it.
        label: how the app shows it.
        factory: ``"module:Class"`` of its ``nn.Module``, built without arguments (the paper's hyperparameters).
    """

    name: str
    label: str
    factory: str

    def build(self) -> nn.Module:
        """A fresh loss module."""
        module, _, attribute = self.factory.partition(":")
        return getattr(importlib.import_module(module), attribute)()


#: Every loss, by name, in the order users see them (the first is the default).
LOSSES: dict[str, LossKind] = {
    loss.name: loss
    for loss in (
        LossKind("aug_triplet", "augmented triplet (the paper's)",
                 "cactus.losses.augmented_triplet:AugmentedTripletLoss"),
        LossKind("triplet", "triplet", "cactus.losses.triplet:TripletLoss"),
        LossKind("structural", "structural (SCL)", "cactus.losses.structural:StructuralLoss"),
        LossKind("bce", "pairwise binary cross-entropy", "cactus.losses.bce:PairwiseBCELoss"),
    )
}

#: The losses' names (``aug_triplet``, ``triplet``, ``structural``, ``bce``).
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


def loss_kind(name: str) -> LossKind:
    """The record of the loss ``name``, else a ValueError that lists the losses."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def build_loss(name: str) -> nn.Module:
    """The loss named ``name`` with the paper's hyperparameters."""
    return loss_kind(name).build()
