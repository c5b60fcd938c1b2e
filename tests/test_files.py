"""Atomic writes keep the mode an ordinary write would give and leave the old file when the write fails."""

from __future__ import annotations

import os
import stat

import pytest

from cactus.files import atomic_text


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_text(tmp_path / "sub" / "out.jsonl") as handle:
            handle.write("x\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "sub" / "out.jsonl") == 0o644
    assert (tmp_path / "sub" / "out.jsonl").read_text() == "x\n"


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    path.chmod(0o640)
    with atomic_text(path) as handle:
        handle.write("new\n")
    assert mode(path) == 0o640 and path.read_text() == "new\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text(path) as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
