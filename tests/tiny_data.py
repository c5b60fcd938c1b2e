"""A small labelled dataset in the tiny backbones' vocabulary, written as a dataset folder in milliseconds.

Other test modules (training, jobs, app) import ``write_tiny_dataset`` to get real files to train on.
"""

from __future__ import annotations

from pathlib import Path

from cactus.data import write_dataset
from cactus.data.builder import BuilderConfig, build_taxonomy_sets
from cactus.data.entities import LabelledEntity

CATALOGUE = {
    ("home", "candles"): ["scented soy wax candle", "beeswax candle", "candle wick", "soy wax jar candle"],
    ("home", "kitchen"): ["ceramic coffee mug", "steel kitchen knife set", "paper towel roll", "glass bowl"],
    ("office", "glue"): ["glue stick", "hot glue gun", "glue stick pack of two", "white glue"],
    ("office", "writing"): ["pen", "pencil", "red marker", "black pen pack of three", "eraser"],
    ("food", "fruit"): ["apple", "banana", "orange", "fresh lemon", "dried apple"],
    ("food", "dairy"): ["milk", "cheese", "butter", "organic milk"],
    ("tech", "phone"): ["phone case", "screen protector", "usb cable", "phone charger"],
    ("tech", "audio"): ["wireless headphones", "speaker", "small speaker", "headphones for kids"],
}


def tiny_entities() -> list[LabelledEntity]:
    return [LabelledEntity(f"{path[-1]}-{i}", text, path)
            for path, texts in CATALOGUE.items() for i, text in enumerate(texts)]


def write_tiny_dataset(directory: str | Path, *, sets: int = 24, seed: int = 0) -> Path:
    """Write train/val/test sets (60/20/20) built from :data:`CATALOGUE` into ``directory``."""
    report = build_taxonomy_sets(tiny_entities(), BuilderConfig(sets=sets, kmax=4, smax=3, seed=seed,
                                                                split_by="sets"))
    write_dataset(directory, report.splits)
    return Path(directory)
