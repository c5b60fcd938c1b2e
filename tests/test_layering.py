"""The library never imports the app, the store, the jobs or Streamlit (DEVELOPERS.md layout rule)."""

from __future__ import annotations

import subprocess
import sys


def test_cactus_imports_neither_streamlit_nor_db_nor_jobs():
    code = (
        "import sys, importlib, pkgutil, cactus\n"
        "for m in pkgutil.walk_packages(cactus.__path__, 'cactus.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('streamlit', 'db', 'jobs', 'app'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
