"""Garbage collection paced for batches: raised while batches run, restored after the last."""

from __future__ import annotations

import gc
import threading

from opsrecon_dagster.reconciliation.gc_pacing import BATCH_GEN0_THRESHOLD, paced_collection


def test_the_threshold_is_raised_inside_and_restored_after_the_last_concurrent_block() -> None:
    before = gc.get_threshold()
    entered, release = threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other_sensor() -> None:
        with paced_collection():
            entered.set()
            release.wait(timeout=30)
            seen.append(gc.get_threshold())

    thread = threading.Thread(target=other_sensor)
    with paced_collection():
        assert gc.get_threshold() == (BATCH_GEN0_THRESHOLD, *before[1:])
        thread.start()
        assert entered.wait(timeout=30)
    # This block ended first: the other one still runs paced.
    assert gc.get_threshold()[0] == BATCH_GEN0_THRESHOLD
    release.set()
    thread.join(timeout=30)
    assert seen == [(BATCH_GEN0_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before


def test_an_error_in_the_block_still_restores_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        with paced_collection():
            raise RuntimeError("batch failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
