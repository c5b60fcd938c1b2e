"""The ``cactus`` command: one entry point, one module per subcommand.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function of the parsed arguments returning an exit status. Heavy imports
(torch, transformers) happen inside those functions so that ``cactus --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cactus import __version__
from cactus.errors import CactusError

COMMANDS = (
    "make_sets",
    "baseline",
    "evaluate",
    "pretrain",
    "train",
    "predict",
    "report",
    "label",
    "worker",
    "jobs",
    "db_import",
    "db_export",
    "app",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cactus",
        description="Context-aware clustering of small text sets (CACTUS). "
        "Run `cactus COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"cactus {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"cactus.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors meant for the user print as one message with exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CactusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
