"""The app reaches the store only through db's functions (no SQLAlchemy, tables or queries of its own), and its
pages are listed in one place."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
#: Session methods that run or stage SQL; the app leaves them to db's functions.
SQL_METHODS = {"execute", "scalar", "scalars", "query", "add", "delete", "flush", "get"}


def sql_in(source: str, name: str) -> list[str]:
    """Where a module imports SQLAlchemy or db's tables, calls ``select(...)`` or runs SQL on a session."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] == "sqlalchemy" or a.name == "db.models"]
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] == "sqlalchemy" or node.module == "db.models"):
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "select":
                found.append(f"{where} calls select(")
            elif (isinstance(func, ast.Attribute) and func.attr in SQL_METHODS and isinstance(func.value, ast.Name)
                  and func.value.id == "session"):
                found.append(f"{where} calls session.{func.attr}(")
    return found


def test_the_app_has_no_sql_of_its_own():
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 10
    found = [hit for path in files
             for hit in sql_in(path.read_text(encoding="utf-8"), str(path.relative_to(APP.parent)))]
    assert found == [], "move these into functions of db/"


def test_the_check_sees_sql():
    probe = ("from sqlalchemy import select\nimport db.models\n\ndef f(session):\n"
             "    return session.execute(select(1))\n")
    assert [hit.split(" ", 1)[1] for hit in sql_in(probe, "probe.py")] == [
        "imports from sqlalchemy", "imports db.models", "calls session.execute(", "calls select("]


def test_the_page_list_names_every_page_once():
    from app.page_list import PAGES, page

    files = sorted(p.relative_to(APP).as_posix() for p in (APP / "app_pages").glob("*.py"))
    assert sorted(entry.path for entry in PAGES) == files
    assert len({entry.key for entry in PAGES}) == len({entry.title for entry in PAGES}) == len(PAGES)
    assert [entry.key for entry in PAGES if entry.default] == ["review"]
    assert page("train").title == "Train"
