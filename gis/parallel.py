"""A shared worker thread pool for the compiled loops of bulk lookups and hot spots (they release the GIL)."""
from __future__ import annotations

import os
import threading

import numpy as np

_MIN_PART = 1 << 16  # smaller parts cost more in hand-over than they gain
_POOL = None
_POOL_LOCK = threading.Lock()


def thread_count() -> int:
    """The CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(thread_count(), thread_name_prefix="zonechief-assign")
    return _POOL


def _forget_pool():  # a forked child has none of its parent's threads
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def in_parts(n: int, fn, min_part: int = _MIN_PART) -> list:
    """[fn(a, b) for consecutive ranges covering 0..n], on the thread pool when n is large (parts of at
    least `min_part`: items that cost more, such as the hot-spot kernel's cells, warrant smaller parts)."""
    parts = min(thread_count(), max(1, n // max(1, min_part)))
    if parts == 1:
        return [fn(0, n)]
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return list(_pool().map(lambda k: fn(bounds[k], bounds[k + 1]), range(parts)))
