"""Cyclic garbage collection paced for batch work.

A reconciliation batch allocates a few hundred thousand short-lived objects (ORM rows,
pydantic models, Dagster event records), nearly all freed at once by reference counting.
At CPython's default threshold the cyclic collector starts every 700 net allocations, so it
runs hundreds of times per batch and walks the batch's live objects each time: measured on
PostgreSQL, a sixth to a quarter of a tick (``benchmarks/reconcile_backlog.py``). While
batches run, the collector starts less often; it still runs, so cycles are still freed.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Net allocations between collections of the youngest generation while a batch runs: one
# 500-run batch's worth, so a batch triggers a handful of collections instead of hundreds.
BATCH_GEN0_THRESHOLD = 100_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def paced_collection() -> Iterator[None]:
    """Raise the youngest generation's threshold for the block, restored when the last of
    the blocks running at the same time (sensor threads share one process) ends."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(BATCH_GEN0_THRESHOLD, _saved[0]), *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
