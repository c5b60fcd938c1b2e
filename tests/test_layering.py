"""The floors of the house (DEVELOPERS.md layout rule): app -> jobs -> db -> cactus, arrows one way.

Every import in the source counts, also those inside functions and ``importlib.import_module("...")`` with a
literal name: the library imports none of app/db/jobs, the store none of app/jobs, the job system not the app,
and only the app imports Streamlit. The store and the job system also stay light enough for the app and
``cactus --help`` to import (no torch).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "cactus": {"app", "db", "jobs", "streamlit"},
    "db": {"app", "jobs", "streamlit"},
    "jobs": {"app", "streamlit"},
    "app": set(),
}
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (a module of ``package``), wherever it stands."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the module's own package
                base = package.split(".")[: max(0, len(package.split(".")) - node.level + 1)]
                yield node.lineno, ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            first = node.args[0]
            if name in IMPORT_FUNCTIONS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def violations(root: Path, floor: str) -> list[str]:
    """``path:line imports module`` for every import under ``root/floor`` that :data:`FORBIDDEN` rules out."""
    found = []
    for path in sorted((root / floor).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = ".".join(parts[:-1])
        for line, module in imported_modules(path.read_text(encoding="utf-8"), package):
            if module.split(".")[0] in FORBIDDEN[floor]:
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_no_floor_imports_one_above_it(floor):
    assert list((REPO / floor).rglob("*.py")), f"no sources found under {floor}/"
    assert violations(REPO, floor) == []


@pytest.mark.parametrize("source", [
    "import db",
    "import db.session as s",
    "from jobs.queue import enqueue",
    "def f():\n    from app import bootstrap\n",
    "class C:\n    def m(self):\n        import streamlit as st\n",
    "import importlib\nimportlib.import_module('db.models')\n",
    "from importlib import import_module\nimport_module('jobs')\n",
    "__import__('app.main')\n",
])
def test_every_kind_of_import_is_seen(tmp_path, source):
    (tmp_path / "cactus" / "sub").mkdir(parents=True)
    (tmp_path / "cactus" / "sub" / "bad.py").write_text("from cactus.errors import CactusError\n" + source)
    assert len(violations(tmp_path, "cactus")) == 1


def test_relative_imports_resolve_inside_their_package(tmp_path):
    (tmp_path / "db" / "sub").mkdir(parents=True)
    (tmp_path / "db" / "sub" / "__init__.py").write_text("from . import x\nfrom .. import models\n")
    (tmp_path / "db" / "sub" / "mod.py").write_text("from .x import y\nfrom ..session import session_scope\n")
    assert violations(tmp_path, "db") == []
    assert list(imported_modules("from .. import models\n", "db.sub")) == [(1, "db")]
    assert list(imported_modules("from .x import y\n", "db.sub")) == [(1, "db.sub.x")]


def test_db_and_jobs_import_neither_streamlit_nor_torch():
    code = (
        "import sys, importlib, pkgutil, db, jobs\n"
        "for package in (db, jobs):\n"
        "    for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if '.migrations.' not in m.name + '.':\n"
        "            importlib.import_module(m.name)\n"
        "from jobs.types import job_types\n"
        "job_types()\n"
        "print(sorted(n for n in ('streamlit', 'torch', 'transformers') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
