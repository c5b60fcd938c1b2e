"""Hand the C heap's free memory back to the system between windows of a long prediction.

Packed batches have a different shape every time, so the tensors a forward frees are rarely the size the next one
asks for. With glibc the freed memory stays in the process and the resident size grows with the number of sets
(a 100,000-set ``bench/predict.py`` run: 1.28 GB after 10,000 sets, 1.48 GB after 16,600, still rising).
``malloc_trim(0)`` after each window keeps it flat at no measurable cost (the probes in docs/benchmarks.md,
"Streaming prediction"). Elsewhere (macOS, musl) this does nothing.
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
