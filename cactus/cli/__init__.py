"""The ``cactus`` command: one entry point, one module per subcommand, and plugins from the packages above.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function of the parsed arguments returning an exit status. Heavy imports
(torch, transformers) happen inside those functions so that ``cactus --help`` stays fast.

Commands that need the store, the job queue or the app live in those packages (``db.commands``,
``jobs.commands``, ``app.commands``) and register themselves the same way through the entry-point group
:data:`PLUGIN_GROUP` declared in ``pyproject.toml``, so the library never imports them. A plugin that fails to
load or register is reported on stderr by name; the other commands still work.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

from cactus import __version__
from cactus.errors import CactusError

COMMANDS = (
    "make_sets",
    "baseline",
    "evaluate",
    "pretrain",
    "train",
    "adapt",
    "predict",
    "report",
    "label",
)
PLUGIN_GROUP = "cactus.commands"


def plugins() -> list[EntryPoint]:
    """The entry points of :data:`PLUGIN_GROUP`, one per name (the first found), sorted by name."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=PLUGIN_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return [found[name] for name in sorted(found)]


def register_plugins(subparsers: argparse._SubParsersAction) -> None:
    """Let every plugin add its commands; one that fails is reported on stderr in one line and left out."""
    for entry_point in plugins():
        try:
            entry_point.load()(subparsers)
        except Exception as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            print(f"warning: cactus plugin {entry_point.name!r} ({entry_point.value}) not loaded: {why}",
                  file=sys.stderr)


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
    register_plugins(subparsers)
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
