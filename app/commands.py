"""``cactus app``: start the workbench (Streamlit) with ``streamlit_config.toml`` and a worker beside it.

It listens on 127.0.0.1 unless ``--host`` says otherwise, and exposing it needs login (an ``[auth]`` section in
the secrets file, :func:`login_settings`) or an explicit ``--no-login``.

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
LOCAL_HOST = "127.0.0.1"
LOCAL_HOSTS = (LOCAL_HOST, "localhost", "::1")
AUTH_KEYS = ("redirect_uri", "cookie_secret")  # what st.login needs in [auth] besides the provider's settings
LOGIN_HELP = (
    "Configure login in .streamlit/secrets.toml (in the folder you start `cactus app` from, or pass --secrets "
    "FILE) with an [auth] section: redirect_uri = \"http://HOST:PORT/oauth2callback\", cookie_secret (32+ random "
    "characters), and your OpenID Connect provider's client_id, client_secret and server_metadata_url; then add "
    "the first admin with `cactus users add EMAIL --role admin` (see the README, \"Login and roles\")."
)


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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CactusError(f"{path} is not valid TOML: {exc}") from None


def secrets_files(secrets: Path | None) -> list[Path]:
    """Where Streamlit reads secrets: ``secrets`` when given, else ``~/.streamlit`` then ``./.streamlit``.

    Raises:
        CactusError: ``secrets`` was given and does not exist.
    """
    if secrets is not None:
        if not secrets.is_file():
            raise CactusError(f"secrets file {secrets} not found")
        return [secrets]
    return [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"]


def login_settings(files: list[Path]) -> dict[str, Any] | None:
    """The ``[auth]`` section of the secrets files (later files win, as in Streamlit), None when there is none.

    Raises:
        CactusError: a file is not valid TOML, or the section lacks what ``st.login`` needs.
    """
    auth: dict[str, Any] | None = None
    where: Path | None = None
    for path in files:
        if path.is_file():
            section = _read_toml(path).get("auth")
            if section is not None:
                if not isinstance(section, dict):
                    raise CactusError(f"{path}: auth must be a [auth] section")
                auth, where = {**(auth or {}), **section}, path
    if auth is None:
        return None
    missing = [key for key in AUTH_KEYS if not auth.get(key)]
    if not any(isinstance(v, dict) for v in auth.values()):  # no named provider: the [auth] section is the provider
        missing += [key for key in ("client_id", "client_secret", "server_metadata_url") if not auth.get(key)]
    if missing:
        raise CactusError(f"{where}: the [auth] section lacks {', '.join(missing)}. {LOGIN_HELP}")
    if len(str(auth["cookie_secret"])) < 32:
        raise CactusError(f"{where}: [auth] cookie_secret must be at least 32 characters (random ones)")
    return auth


def check_exposure(host: str, *, login: bool, no_login: bool) -> None:
    """Refuse to listen beyond this machine without login, unless ``--no-login`` says so.

    Raises:
        CactusError: with how to configure login.
    """
    if host in LOCAL_HOSTS or login or no_login:
        return
    raise CactusError(f"--host {host} exposes the workbench to other machines, and login is not configured: anyone "
                      f"who reaches the port could queue jobs that spend the API key. {LOGIN_HELP} To expose it "
                      "without login anyway, add --no-login.")


def streamlit_command(config: Path, *, port: int | None, address: str | None,
                      secrets: Path | None = None) -> list[str]:
    """The ``streamlit run app/main.py`` command line with the settings of ``config`` (port and address last)."""
    command = [sys.executable, "-m", "streamlit", "run", str(app_folder() / "main.py"), *config_flags(config)]
    if port is not None:
        command.append(f"--server.port={port}")
    if address is not None:
        command.append(f"--server.address={address}")
    if secrets is not None:
        command.append(f"--secrets.files={secrets.resolve()}")
    return command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``app``."""
    parser = subparsers.add_parser(
        "app",
        help="start the workbench in the browser (and a worker for its jobs)",
        description="Start the Streamlit workbench with the settings of streamlit_config.toml, and a `cactus worker` "
        "beside it for the jobs it queues (training, labelling, prediction, evaluation). On a first start with an "
        "empty store it imports the bundled demo sets and queues a small demo model (about a minute on 2 CPU "
        "cores). The store is --db, else CACTUS_DB_URL, else ~/.local/share/cactus/cactus.db. The teacher (Claude) "
        "needs ANTHROPIC_API_KEY in the environment; everything else works without it. It listens on 127.0.0.1 only; "
        "--host exposes it, which needs login (an [auth] section in .streamlit/secrets.toml or --secrets FILE; "
        "users and roles with `cactus users`) or an explicit --no-login. Stop with Ctrl-C.",
    )
    parser.add_argument("--port", type=int, metavar="P", help="port to serve on (default: the config's, 8501)")
    parser.add_argument("--host", "--address", dest="host", default=LOCAL_HOST, metavar="HOST",
                        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0: every interface, "
                        "which needs login or --no-login)")
    parser.add_argument("--secrets", type=Path, metavar="FILE",
                        help="Streamlit secrets file with the [auth] login settings (default: .streamlit/secrets.toml "
                        "here, or in ~/.streamlit)")
    parser.add_argument("--no-login", action="store_true",
                        help="run without login even when exposed with --host (everyone who reaches it is an admin)")
    parser.add_argument("--no-worker", action="store_true", help="do not start a worker (run `cactus worker` yourself)")
    parser.add_argument("--no-demo", action="store_true", help="do not set up the demo, even on an empty store")
    add_db_option(parser)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"Streamlit settings (default: {CONFIG_NAME} at the top of the cactus source folder)")
    parser.set_defaults(func=run)


def admin_note(db_url: str | None, admin: str | None) -> str:
    """With login on: make ``admin`` (``CACTUS_ADMIN``) an admin of the store, and say who the admins are."""
    from db.session import session_scope
    from db.users import ensure_admin, list_users

    with session_scope(db_url) as session:
        if admin:
            ensure_admin(session, admin)
        admins = [u.email for u in list_users(session) if u.role == "admin"]
    if not admins:
        return ("login is on and the store has no admin yet: add one with `cactus users add EMAIL --role admin` "
                "(or set CACTUS_ADMIN=EMAIL)")
    return f"login is on; admins: {', '.join(admins)} (`cactus users list` shows every user)"


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
    auth = None if args.no_login else login_settings(secrets_files(args.secrets))
    check_exposure(args.host, login=auth is not None, no_login=args.no_login)
    # checks the settings first
    command = streamlit_command(config, port=args.port, address=args.host, secrets=args.secrets)
    env = dict(os.environ)
    if args.db:
        env["CACTUS_DB_URL"] = args.db
    env["CACTUS_LOGIN"] = "required" if auth is not None else "off"
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

    if auth is not None:
        print(admin_note(env.get("CACTUS_DB_URL"), env.get("CACTUS_ADMIN")), flush=True)

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
