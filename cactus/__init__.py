"""cactus: context-aware supervised clustering of small text sets (Tipirneni et al., 2024)."""

__version__ = "0.1.0"
