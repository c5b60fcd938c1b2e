"""Cluster colours: one qualitative palette shared by the cluster cards, the heatmaps and the charts.

A colour is referred to by its index in :data:`PALETTE`; :mod:`app.compare` decides which cluster of which
clustering gets which index, so that the same group of entities has the same colour everywhere on a page.
"""

from __future__ import annotations

# Tableau 10 followed by lighter and darker companions: distinct on white, readable as text and as outlines.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#7f7f7f",
    "#1f5f8b", "#c85200", "#2c7a3f", "#a4262c", "#7b4f9d", "#3e8e8a", "#b59a1d", "#6b4c3b", "#d4627a", "#4d4d4d",
)


def color(index: int) -> str:
    """The colour of palette index ``index`` (wrapping around after :data:`PALETTE`)."""
    return PALETTE[index % len(PALETTE)]


def tint(hex_color: str, amount: float = 0.85) -> str:
    """``hex_color`` mixed with white (``amount`` 0: unchanged, 1: white), for card backgrounds."""
    value = hex_color.lstrip("#")
    red, green, blue = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    mixed = (round(c + (255 - c) * amount) for c in (red, green, blue))
    return "#" + "".join(f"{c:02x}" for c in mixed)
