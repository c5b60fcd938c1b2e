"""The loss names, without importing torch (for option checking)."""

LOSS_NAMES: tuple[str, ...] = ("aug_triplet", "triplet", "structural", "bce")
