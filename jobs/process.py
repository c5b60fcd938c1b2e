"""The worker's handle on a job's child process: start it, read its messages and log, stop it.

The child is ``python -m jobs.child`` in a session (process group) of its own, so that stopping it
also stops anything it started (``torchrun`` ranks, data loaders), and so that a Ctrl-C meant for the
worker reaches the worker only.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

LOG_TAIL_LINES = 200
LOG_TAIL_CHARS = 16_000
LOG_LINE_CHARS = 2_000


class JobProcess:
    """A running job: ``messages()`` gives what it reported, ``log_tail()`` the end of its output."""

    def __init__(self, spec: dict[str, Any], *, log_path: Path, env: dict[str, str] | None = None) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "jobs.child", str(write_fd)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True,
                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(write_fd)
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._tail_lock = threading.Lock()
        self.log_changed = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_path.open("a", encoding="utf-8")
        self._log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} job {spec['job_id']} attempt "
                             f"{spec['attempt']} ---\n")
        self._readers = [
            threading.Thread(target=self._read_messages, args=(os.fdopen(read_fd, "rb"),), daemon=True),
            threading.Thread(target=self._read_log, args=(self._proc.stdout,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(spec) + "\n").encode())
        self._proc.stdin.flush()  # stdin stays open: the child watches it to know the worker lives

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_messages(self, pipe: BinaryIO) -> None:
        with pipe:
            for line in pipe:
                try:
                    self._messages.put(json.loads(line))
                except ValueError:
                    self._add_log(f"[worker] unreadable message from the job: {line[:200]!r}")

    def _read_log(self, pipe: BinaryIO | None) -> None:
        assert pipe is not None
        with pipe:
            for raw in pipe:
                self._add_log(raw.decode("utf-8", "replace").rstrip("\n"))

    def _add_log(self, line: str) -> None:
        with self._tail_lock:
            self._tail.append(line[:LOG_LINE_CHARS])
            self.log_changed = True
            if not self._log_file.closed:
                self._log_file.write(line + "\n")
                self._log_file.flush()

    def messages(self) -> list[dict[str, Any]]:
        """Messages received since the last call, in order."""
        out: list[dict[str, Any]] = []
        while True:
            try:
                out.append(self._messages.get_nowait())
            except queue.Empty:
                return out

    def log_tail(self) -> str:
        """The last lines of the job's output (at most ``LOG_TAIL_CHARS``)."""
        with self._tail_lock:
            self.log_changed = False
            text = "\n".join(self._tail)
        return text[-LOG_TAIL_CHARS:]

    def poll(self) -> int | None:
        """The exit status once the process ended (negative: killed by that signal), else None."""
        return self._proc.poll()

    def finish_reading(self, timeout: float = 5.0) -> None:
        """Wait (a little) for the output pipes to drain after the process ended."""
        for reader in self._readers:
            reader.join(timeout)

    def stop(self, grace: float) -> int:
        """SIGTERM the job's process group, SIGKILL it after ``grace`` seconds; returns the exit status."""
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._proc.wait()
        self._signal_group(signal.SIGKILL)  # stragglers the job started
        return self._proc.returncode

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def close(self) -> None:
        """Close stdin (a child still running takes that as the worker leaving), end stragglers, close the log."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        if self._proc.poll() is not None:
            self._signal_group(signal.SIGKILL)  # processes the job left behind in its group
        self.finish_reading(timeout=2.0)
        with self._tail_lock:
            self._log_file.close()
