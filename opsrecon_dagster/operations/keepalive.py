"""A heartbeat that does not depend on the work making progress.

While a job step runs (a provider listing may take minutes between progress reports), a
background thread records a heartbeat every few seconds. A worker that is killed stops
beating with it, so the short default running threshold finds it within about a minute,
while a slow but living worker is never mistaken for a dead one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

# Four missed beats fit in the default running threshold (60 s, see the catalog).
HEARTBEAT_SECONDS = 15.0


@contextmanager
def keep_alive(beat: Callable[[], bool], every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Call ``beat`` every ``every`` seconds while the block runs. ``beat`` returns False
    once the run is no longer running (then the beating stops); an error in one beat is
    logged by type and the next beat is tried."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                if not beat():
                    return
            except Exception as exc:  # a database hiccup must not end the worker's beat
                logger.warning("heartbeat failed (%s); retrying", type(exc).__name__)

    thread = threading.Thread(target=loop, name="opsrecon-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
