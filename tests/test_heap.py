"""release_free_heap gives freed heap memory back to the system (glibc), which keeps streaming predict flat."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, os
    import numpy as np
    from cactus.inference.heap import release_free_heap

    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    # 100 KB blocks come from the heap (below glibc's mmap threshold); the last one stays alive, so the freed
    # ones sit below the top of the heap, where glibc's automatic trim does not reach
    blocks = [np.ones(100_000 // 8) for _ in range(2000)]
    keep = blocks[-1]
    del blocks
    before = rss()
    released = release_free_heap()
    print(json.dumps({"released": released, "before": before, "after": rss()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    row = json.loads(done.stdout)
    assert row["released"] is True
    assert row["before"] - row["after"] > 100_000_000, row  # most of the 200 MB freed
