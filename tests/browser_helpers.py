"""What the browser tests share: Debian's chromium and its flags, and `cactus app` run as a user runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.app_helpers import wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_S = 60_000  # ms: one page action and the rerun it causes, on a busy 2-core machine


def require_chromium() -> None:
    """Skip the test, saying how to get it, when Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the browser "
                    "test; .ci/run does")


@contextmanager
def running_app(args: Sequence[str], env: dict[str, str], port: int, folder: Path) -> Iterator[Path]:
    """``cactus app --port PORT ARGS`` in ``folder`` until the block ends (then SIGTERM); yields its log file."""
    log_path = folder / "app.log"
    with log_path.open("wb") as log:
        app = subprocess.Popen([sys.executable, "-m", "cactus", "app", "--port", str(port), *args], env=env,
                               stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            wait_until_serving(port, app, log_path)
            yield log_path
        finally:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(60)
            except subprocess.TimeoutExpired:
                app.kill()


def empty(folder: Path) -> None:
    """Make ``folder`` exist without the screenshots of an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()


def read(url: str, action):
    """What ``action(session)`` returns on a read-only session of the store at ``url``."""
    from db import session_scope

    with session_scope(url, readonly=True) as session:
        return action(session)
