"""The store and the job system never import Streamlit, and stay light enough for the app to import (no torch)."""

from __future__ import annotations

import subprocess
import sys


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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
