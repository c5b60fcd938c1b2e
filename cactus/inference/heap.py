"""Hand the C heap's free memory back to the system between windows of a long prediction.

Packed batches have a different shape every time, so the tensors a forward frees are rarely the size the next one
asks for. With glibc the freed memory stays in the process and the resident size grows with the number of sets
(measured: 0.76 GB after 1,000 sets, 0.99 GB after 3,000, 1.5 GB after 19,000, still rising). ``malloc_trim(0)``
after each window keeps it flat at no measurable cost (bench/predict.py; docs/benchmarks.md). Elsewhere (macOS,
musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
