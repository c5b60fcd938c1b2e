"""Rebuild the bundled demo dataset (cactus/demo/toys) from the shared development data.

Usage: python scripts/build_demo.py [PATH/TO/amazon_toys_dev/entities.jsonl]

The demo is a subset of the 'Toy Products on Amazon' sample (PromptCloud, via Kaggle), shipped under
CC BY-SA 4.0 with attribution in cactus/demo/NOTICE.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cactus.data import read_entities, write_dataset
from cactus.data.builder import BuilderConfig, build_taxonomy_sets

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "amazon_toys_dev" / "entities.jsonl"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    entities = read_entities(source).entities
    report = build_taxonomy_sets(entities, BuilderConfig(sets=300, kmax=5, smax=4, seed=2024))
    write_dataset(ROOT / "cactus" / "demo" / "toys", report.splits)
    print(report.summary_text())


if __name__ == "__main__":
    main()
