"""The bundled demo dataset: product-title sets from the CC BY-SA 'Toy Products on Amazon' sample (NOTICE.md)."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
TOYS = DEMO_DIR / "toys"
