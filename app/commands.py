"""``cactus app``: start the workbench (Streamlit) with ``streamlit_config.toml`` and a worker beside it.

Registered with ``cactus`` through the ``cactus.commands`` entry point ``app``. Registration stays light
(``cactus --help`` imports this module): the command starts Streamlit as a subprocess, and imports
:mod:`app.bootstrap` (store and jobs, no Streamlit) only when it runs, to set up the demo on a first start.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cactus.errors import CactusError
from db.commands import add_db_option

CONFIG_NAME = "streamlit_config.toml"
STOP_GRACE_S = 20.0


def app_folder() -> Path:
    """The ``app`` package's folder (its ``main.py`` is the Streamlit entry point)."""
    spec = importlib.util.find_spec("app")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / "main.py").is_file():
        raise CactusError("the workbench (the 'app' package with app/main.py) is not installed; reinstall cactus "
                          "from its source folder: pip install -e .")
    return Path(spec.origin).parent


def default_config() -> Path:
    """``streamlit_config.toml`` beside the ``app`` folder (the repository's top level)."""
    return app_folder().parent / CONFIG_NAME


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def config_flags(path: Path) -> list[str]:
    """Every option of a Streamlit config file as ``--section.option value`` flags (nested tables included).

    Raises:
        CactusError: the file is missing or is not valid TOML.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    if not path.is_file():
        raise CactusError(f"Streamlit settings {path} not found; pass --config FILE")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CactusError(f"{path} is not valid TOML: {exc}") from None
    flags: list[str] = []

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(name, value)
            elif prefix:
                flags.append(f"--{name}={_flag_value(value)}")
            else:
                raise CactusError(f"{path}: option {key!r} is outside a [section]")

    walk("", data)
    return flags


def streamlit_command(config: Path, *, port: int | None, address: str | None) -> list[str]:
    """The ``streamlit run app/main.py`` command line with the settings of ``config`` (port and address last)."""
    command = [sys.executable, "-m", "streamlit", "run", str(app_folder() / "main.py"), *config_flags(config)]
    if port is not None:
        command.append(f"--server.port={port}")
    if address is not None:
        command.append(f"--server.address={address}")
    return command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``app``."""
    parser = subparsers.add_parser(
        "app",
        help="start the workbench in the browser (and a worker for its jobs)",
        description="Start the Streamlit workbench with the settings of streamlit_config.toml, and a `cactus worker` "
        "beside it for the jobs it queues (training, labelling, prediction, evaluation). On a first start with an "
        "empty store it imports the bundled demo sets and queues a small demo model (a few minutes on a CPU). The "
        "store is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db. The teacher (Claude) needs "
        "ANTHROPIC_API_KEY in the environment; everything else works without it. Stop with Ctrl-C.",
    )
    parser.add_argument("--port", type=int, metavar="P", help="port to serve on (default: the config's, 8501)")
    parser.add_argument("--address", metavar="HOST", help="address to bind (default: all interfaces, Streamlit's)")
    parser.add_argument("--no-worker", action="store_true", help="do not start a worker (run `cactus worker` yourself)")
    parser.add_argument("--no-demo", action="store_true", help="do not set up the demo, even on an empty store")
    add_db_option(parser)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"Streamlit settings (default: {CONFIG_NAME} at the top of the cactus source folder)")
    parser.set_defaults(func=run)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process (the worker puts its running job back in the queue), SIGKILL after a grace period."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> int:
    config = args.config or default_config()
    command = streamlit_command(config, port=args.port, address=args.address)  # checks the settings first
    env = dict(os.environ)
    if args.db:
        env["CACTUS_DB_URL"] = args.db
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = str(app_folder().parent)  # `import app` works in the subprocesses even without an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)

    if not args.no_demo:
        from app.bootstrap import DEMO_DATASET, bootstrap

        setup = bootstrap(env.get("CACTUS_DB_URL"))
        if setup is not None:
            print(f"first start: imported the demo dataset {DEMO_DATASET!r} ({setup.summary.sets} sets)"
                  + (f"; queued the demo model (jobs {', '.join(map(str, setup.job_ids))})" if setup.job_ids else "")
                  + (f"; {setup.note}" if setup.note else ""), flush=True)

    processes: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not args.no_worker:
            processes.append(subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=env, start_new_session=True))
        app = subprocess.Popen(command, env=env, start_new_session=True)
        processes.append(app)
        while not stopping and app.poll() is None:
            for process in processes[:-1]:
                if process.poll() is not None:
                    print(f"warning: the worker exited with status {process.returncode}; jobs wait until you run "
                          "`cactus worker`", file=sys.stderr, flush=True)
                    processes.remove(process)
            time.sleep(0.5)
    finally:
        _stop(processes)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopping else (app.returncode or 0)
