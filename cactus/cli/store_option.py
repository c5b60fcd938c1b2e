"""The ``--db URL`` option of every command that works on the workbench's store."""

from __future__ import annotations

import argparse


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--db URL`` (read by the command as ``args.db``; None means the store's own default)."""
    parser.add_argument("--db", metavar="URL", help="database URL (default: CACTUS_DB_URL or the default SQLite file)")
