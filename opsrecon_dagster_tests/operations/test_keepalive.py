"""The background heartbeat: it beats while the block runs, and stops with it."""

from __future__ import annotations

import threading

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.keepalive import keep_alive
from opsrecon_dagster_tests.conftest import Scope


def test_a_silent_step_keeps_its_run_alive_and_stops_beating_after(
    app: AppContext, scope: Scope
) -> None:
    run = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    app.runs.mark_running(run.id, None)
    beats: list[bool] = []
    three = threading.Event()

    def beat() -> bool:
        beats.append(app.runs.heartbeat(run.id))
        if len(beats) >= 3:
            three.set()
        return beats[-1]

    with keep_alive(beat, every=0.01):
        # The step itself reports nothing; the thread beats on its own.
        assert three.wait(timeout=60)
    assert app.runs.get(run.id).last_heartbeat_at is not None
    count = len(beats)
    assert not any(t.name == "opsrecon-heartbeat" for t in threading.enumerate())
    assert len(beats) == count  # no beat after the block


def test_beating_stops_once_the_run_is_no_longer_running() -> None:
    calls: list[int] = []
    done = threading.Event()

    def beat() -> bool:
        calls.append(1)
        done.set()
        return False  # e.g. the reconciler finalized the run

    with keep_alive(beat, every=0.01):
        assert done.wait(timeout=60)
        # The thread ends by itself, while the block is still running.
        for thread in [t for t in threading.enumerate() if t.name == "opsrecon-heartbeat"]:
            thread.join(timeout=60)
            assert not thread.is_alive()
    assert len(calls) == 1


def test_a_failing_beat_is_retried() -> None:
    calls: list[int] = []
    second = threading.Event()

    def beat() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database hiccup")
        second.set()
        return False

    with keep_alive(beat, every=0.01):
        assert second.wait(timeout=60)
    assert len(calls) == 2
