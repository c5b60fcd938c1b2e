"""``cactus`` takes its store, job and app commands as plugins (the ``cactus.commands`` entry points): ``--help``
lists them all, a broken plugin is reported by name and the other commands still run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ["make-sets", "baseline", "evaluate", "pretrain", "train", "adapt", "predict", "report", "label"]
# entry points app, db, jobs: sorted by name
PLUGINS = ["app", "import-sets", "export-labels", "users", "worker", "jobs", "gc"]
PLUGIN_MODULES = {
    "cactus_hello_plugin": "def register(subparsers):\n"
    "    parser = subparsers.add_parser('hello', help='say hello')\n"
    "    parser.set_defaults(func=lambda args: print('hello from a plugin') or 0)\n",
    "cactus_raising_plugin": "raise RuntimeError('this plugin is broken\\non purpose')\n",
    "cactus_failing_register": "def register(subparsers):\n    raise ValueError('no room for me')\n",
}
ENTRY_POINTS = (
    "[cactus.commands]\n"
    "hello = cactus_hello_plugin:register\n"
    "raising = cactus_raising_plugin:register\n"
    "failing = cactus_failing_register:register\n"
    "missing = cactus_no_such_module:register\n"
)


def cactus(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "cactus", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)


def listed_commands(help_text: str) -> list[str]:
    """The subcommands in ``cactus --help``, in the order shown."""
    return re.findall(r"^ {4}([a-z][\w-]*)", help_text, flags=re.MULTILINE)


def plugin_folder(tmp_path: Path) -> Path:
    """A folder that, on ``sys.path``, installs one working and three broken plugins (a distribution's metadata)."""
    info = tmp_path / "cactus_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cactus-test-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    for name, source in PLUGIN_MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    return tmp_path


def test_help_lists_every_command_in_a_stable_order():
    result = cactus("--help")
    assert result.returncode == 0, result.stderr
    assert listed_commands(result.stdout) == LIBRARY + PLUGINS, (
        "plugin commands missing? the installed metadata may predate pyproject.toml: pip install --no-deps -e .")
    assert result.stderr == ""


def test_registering_the_commands_imports_nothing_heavy():
    code = ("import sys\nfrom cactus.cli import build_parser\nbuild_parser()\n"
            "print(sorted(n for n in ('torch', 'transformers', 'sqlalchemy', 'streamlit', 'alembic') "
            "if n in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_broken_plugin_is_reported_by_name_and_the_others_still_run(tmp_path):
    folder = plugin_folder(tmp_path)
    result = cactus("--help", pythonpath=folder)
    assert result.returncode == 0, result.stderr
    assert listed_commands(result.stdout) == LIBRARY + PLUGINS[:4] + ["hello"] + PLUGINS[4:]  # app, db, hello, jobs
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3, result.stderr
    failing, missing, raising = warnings  # in the order of their names
    assert "'failing'" in failing and "ValueError: no room for me" in failing
    assert "'missing'" in missing and "cactus_no_such_module" in missing
    assert "'raising'" in raising and "RuntimeError: this plugin is broken on purpose" in raising

    hello = cactus("hello", pythonpath=folder)
    assert (hello.returncode, hello.stdout) == (0, "hello from a plugin\n")
    types = cactus("jobs", "types", pythonpath=folder)
    assert types.returncode == 0, types.stderr
    assert "finetune" in types.stdout
    library = cactus("make-sets", "--help", pythonpath=folder)
    assert library.returncode == 0 and "usage: cactus make-sets" in library.stdout
