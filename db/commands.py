"""The store's commands, registered with ``cactus`` through the ``cactus.commands`` entry point ``db``.

``cactus import-sets`` loads a sets file (or a train/val/test folder) into the store as a dataset; ``cactus
export-labels`` writes a stored dataset's best labels as a train/val/test folder for ``cactus train``; ``cactus
users`` adds, lists and removes who may sign in to the workbench, with their roles.
:func:`add_db_option` is the ``--db URL`` option of every command that works on the store.

Registration stays light (``cactus --help`` imports this module): the store's modules load only when a command
runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--db URL`` (read by the command as ``args.db``; None means the store's own default)."""
    parser.add_argument("--db", metavar="URL", help="database URL (default: CACTUS_DB_URL or the default SQLite file)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import-sets``, ``export-labels`` and ``users``."""
    register_import(subparsers)
    register_export(subparsers)
    register_users(subparsers)


def register_import(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-sets",
        help="load a sets file or a dataset folder into the store (for the app and the jobs)",
        description="Validate every line of SOURCE (a sets .jsonl file, or a folder with train.jsonl, val.jsonl "
        "and test.jsonl) and store its sets as the dataset NAME, all or nothing: an invalid line or a set id "
        "that is already there stores nothing. Sets with clusters keep them as reference labels. The store "
        "is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db.",
    )
    parser.add_argument("source", type=Path, help="sets file (.jsonl) or dataset folder")
    parser.add_argument("--dataset", required=True, metavar="NAME", help="the dataset to create (or --append to)")
    parser.add_argument("--noun", choices=("products", "queries"), default="products",
                        help="what the entities are (default products)")
    parser.add_argument("--split", choices=("train", "val", "test", "unassigned"),
                        help="put every set in this split (default: each set's \"split\" key, else unassigned; "
                        "a folder keeps its files' splits)")
    parser.add_argument("--append", action="store_true", help="add to an existing dataset of that name")
    add_db_option(parser)
    parser.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from db.datasets import import_dataset_folder, import_sets_file
    from db.session import session_scope

    def progress(done: int, total: int) -> None:
        print(f"\rstored {done}/{total} sets", end="", file=sys.stderr, flush=True)

    with session_scope(args.db) as session:
        if args.source.is_dir():
            if args.split is not None:
                from cactus.errors import CactusError

                raise CactusError("--split applies to a sets file; a dataset folder keeps the splits of its files")
            summary = import_dataset_folder(session, args.source, dataset=args.dataset, noun=args.noun,
                                            append=args.append, on_progress=progress)
        else:
            summary = import_sets_file(session, args.source, dataset=args.dataset, noun=args.noun, split=args.split,
                                       append=args.append, on_progress=progress)
    print(file=sys.stderr)
    print(f"dataset {args.dataset!r} (id {summary.dataset_id}): {summary.sets} sets, {summary.entities} entities, "
          f"{summary.labelled} with reference labels")
    return 0


def register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-labels",
        help="write a stored dataset's best labels (human > teacher > reference) for `cactus train`",
        description="Write OUT/train.jsonl, val.jsonl and test.jsonl from the dataset NAME in the store. Each set "
        "gets its reviewed human clustering, else its newest teacher clustering, else its reference labels; "
        "unlabelled sets are left out. Sets in no split are dealt into train/val/test by a seeded shuffle "
        "(--seed, --fractions), and that choice is saved so later exports keep the same test sets.",
    )
    parser.add_argument("dataset", metavar="NAME", help="the dataset in the store")
    parser.add_argument("out", type=Path, help="folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split shuffle (default 0)")
    parser.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                        help="shares of unassigned sets per split (default 0.8 0.1 0.1)")
    parser.add_argument("--any-human", action="store_true",
                        help="use human clusterings of sets not yet marked reviewed too")
    add_db_option(parser)
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from db.datasets import find_dataset
    from db.export import export_labels
    from db.session import session_scope

    with session_scope(args.db) as session:
        dataset = find_dataset(session, args.dataset)
        summary = export_labels(session, dataset.id, args.out, seed=args.seed, fractions=tuple(args.fractions),
                                human="any" if args.any_human else "reviewed")
    counts = ", ".join(f"{split} {n}" for split, n in summary.sets.items())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(summary.sources.items()))
    print(f"wrote {args.out}: {counts} sets (labels: {sources})")
    if summary.newly_assigned:
        print("gave a split to unassigned sets: " + ", ".join(f"{k} {v}" for k, v in summary.newly_assigned.items()))
    return 0


ROLE_CHOICES = ("viewer", "annotator", "admin")  # db.models.ROLES, without importing SQLAlchemy here


def register_users(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "users",
        help="who may sign in to the workbench, and their roles (viewer, annotator, admin)",
        description="When the workbench runs with login (an [auth] section in its secrets file), only the users "
        "listed here get in, each with a role: viewer (reads), annotator (also corrects and saves clusterings), "
        "admin (also calls the teacher, trains, activates and deletes models, uploads and deletes data). A user "
        "is the email the login provider reports (else its subject). Add the first admin here, or with the "
        "CACTUS_ADMIN setting when `cactus app` starts.",
    )
    commands = parser.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    add = commands.add_parser("add", help="add a user, or change a user's role",
                              description="Add EMAIL with role R; an existing user gets the new role.")
    add.add_argument("email", metavar="EMAIL", help="the email (or subject) the login provider reports")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES, help="what they may do")
    add_db_option(add)
    add.set_defaults(func=run_users_add)
    listing = commands.add_parser("list", help="list the users and their roles",
                                  description="Every user of the store with its role, admins first.")
    add_db_option(listing)
    listing.set_defaults(func=run_users_list)
    remove = commands.add_parser("remove", help="remove a user (their edits keep their name)",
                                 description="Remove EMAIL: they can no longer sign in. Their edits, jobs and "
                                 "models keep their name.")
    remove.add_argument("email", metavar="EMAIL")
    add_db_option(remove)
    remove.set_defaults(func=run_users_remove)


def run_users_add(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.users import add_user

    with session_scope(args.db) as session:
        user, created = add_user(session, args.email, args.role)
    print(f"{'added' if created else 'updated'} {user.email}: {user.role}")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.users import list_users

    with session_scope(args.db, readonly=True) as session:
        users = list_users(session)
    if not users:
        print("no users yet: with login on, nobody can get in; add the first admin with "
              "`cactus users add EMAIL --role admin`")
        return 0
    width = max(len(u.email) for u in users)
    for user in users:
        print(f"{user.email:<{width}}  {user.role:<9}  added {user.created_at:%Y-%m-%d %H:%M} UTC")
    return 0


def run_users_remove(args: argparse.Namespace) -> int:
    from db.session import session_scope
    from db.users import remove_user

    with session_scope(args.db) as session:
        remove_user(session, args.email)
    print(f"removed {args.email.strip().lower()}")
    return 0
