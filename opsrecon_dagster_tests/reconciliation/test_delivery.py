"""Delivering decisions to Dagster through the outbox: claimed chunks, grouped writes, a
time budget, and exactly one set of Dagster writes however often an entry is delivered."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from opsrecon_dagster.definitions import defs
from opsrecon_dagster.instance.decisions import STAND_IN_TAG, InstancePort
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.outbox import DecisionEvent
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.service import Delivered, deliver, reconcile_batch
from opsrecon_dagster_tests.reconciliation.conftest import World
from opsrecon_dagster_tests.ui_agreement import disagreements

INV = OperationType.INVENTORY_SYNC
ASSET = dg.AssetKey("inventory_items")
LATER = timedelta(hours=3)


def _never_launched(world: World, n: int) -> list[int]:
    """``n`` inventory syncs in ``n`` environments whose launch never started, decided (not
    yet delivered) as of three hours later."""
    run_ids = []
    for i in range(n):
        scope = world.scope(f"env{i}")
        world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
        run_ids.append(world.start(INV, scope))
    results = reconcile_batch(world.app, _port(world), now=_now())
    assert sorted(r.run_id for r in results) == run_ids
    return run_ids


def _now() -> datetime:
    return datetime.now(UTC) + LATER


def _port(world: World) -> InstancePort:
    return InstancePort(world.instance, defs.resolve_job_def)


def _observations(world: World) -> Counter[int]:
    records = world.instance.fetch_observations(ASSET, limit=10_000).records
    return Counter(
        int(r.asset_observation.metadata["operation_run_id"].value)  # type: ignore[union-attr,arg-type]
        for r in records
    )


def _check_evaluations(world: World) -> Counter[str | None]:
    """Check evaluation events per partition, across every run."""
    found: Counter[str | None] = Counter()
    for run in world.instance.get_runs():
        for record in world.instance.event_log_storage.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records:
            event = record.event_log_entry.dagster_event
            assert event is not None
            found[event.event_specific_data.partition] += 1  # type: ignore[union-attr]
    return found


def _stand_ins(world: World) -> list[dg.DagsterRun]:
    return list(
        world.instance.get_runs(filters=dg.RunsFilter(tags={STAND_IN_TAG: "never_launched"}))
    )


def _pending(world: World) -> int:
    with world.app.sessions() as session:
        return outbox.count(session)


def test_a_delivery_shows_never_launched_runs_through_one_stand_in_run(world: World) -> None:
    run_ids = _never_launched(world, 6)
    sent = deliver(world.app, _port(world), now=_now())
    assert (sent.entries, sent.chunks, sent.finished) == (6, 1, True)
    # One Dagster run stands in for the whole group (one job, outcome and reason), failed.
    [stand_in] = _stand_ins(world)
    assert stand_in.status is dg.DagsterRunStatus.FAILURE
    assert stand_in.tags["opsrecon/reason"] == "queued_never_started"
    assert _observations(world) == Counter(run_ids)
    assert set(_check_evaluations(world).values()) == {1}
    assert len(_check_evaluations(world)) == 6
    assert _pending(world) == 0
    # Every partition shows its newest run's failure, its check too; no run left open.
    assert disagreements(world.app, world.instance) == []


def test_overlapping_deliveries_never_write_an_entry_twice(world: World) -> None:
    """A tick that outlives its deadline and its successor deliver at the same time: the
    first holds its claim while the second runs; both succeed, one set of writes."""
    run_ids = _never_launched(world, 4)
    held, release = threading.Event(), threading.Event()
    real = InstancePort.show

    def slow_show(self: InstancePort, *args: Any, **kwargs: Any) -> None:
        held.set()
        assert release.wait(timeout=60)
        real(self, *args, **kwargs)

    first: list[Delivered] = []
    port = _port(world)
    port.show = slow_show.__get__(port)  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: first.append(deliver(world.app, port, now=_now())))
    thread.start()
    assert held.wait(timeout=60)
    second = deliver(world.app, _port(world), now=_now())  # the claimed entries are not due
    release.set()
    thread.join(timeout=120)
    assert second.entries == 0 and first[0].entries == 4
    assert _observations(world) == Counter(run_ids)
    assert set(_check_evaluations(world).values()) == {1}
    assert len(_stand_ins(world)) == 1
    assert _pending(world) == 0


def test_a_delivery_repeated_after_a_crash_writes_nothing_twice(world: World) -> None:
    """A deliverer that wrote everything and died before acknowledging: once its lease has
    ended, the next delivery takes the entries as repeated and writes only what is missing."""
    run_ids = _never_launched(world, 3)
    with world.app.sessions.begin() as session:
        _token, entries = outbox.claim(session, now=_now())
    _port(world).show([e.event for e in entries], "en")  # ... and the process dies here
    assert _pending(world) == 3
    after_lease = _now() + outbox.LEASE + timedelta(seconds=1)
    again = deliver(world.app, _port(world), now=after_lease)
    assert again.entries == 3
    assert _observations(world) == Counter(run_ids)
    assert set(_check_evaluations(world).values()) == {1}
    [stand_in] = _stand_ins(world)
    assert stand_in.status is dg.DagsterRunStatus.FAILURE
    assert disagreements(world.app, world.instance) == []


def test_a_delivery_past_its_budget_leaves_the_rest_for_the_next(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is checked between chunks: once it is spent, the claimed chunk is
    finished and the rest stays pending, untouched, for the next delivery."""
    run_ids = _never_launched(world, 5)
    shown: list[list[int]] = []
    real = InstancePort.show

    def show(self: InstancePort, decisions: list[DecisionEvent], *a: Any, **k: Any) -> None:
        shown.append([d.operation_run_id for d in decisions])
        real(self, decisions, *a, **k)

    monkeypatch.setattr(InstancePort, "show", show)
    # The clock passes the deadline while the first chunk is written.
    first = deliver(
        world.app,
        _port(world),
        now=_now(),
        deadline=50.0,
        chunk=2,
        monotonic=lambda: 100.0 if shown else 0.0,
    )
    assert (first.entries, first.finished) == (2, False)
    assert _pending(world) == 3
    with world.app.sessions() as session:
        assert all(not e.repeated for e in outbox.pending(session))  # never claimed
    rest = deliver(
        world.app, _port(world), now=_now(), deadline=50.0, chunk=2, monotonic=lambda: 0.0
    )
    assert (rest.entries, rest.finished) == (3, True)
    assert shown == [run_ids[:2], run_ids[2:4], run_ids[4:]]
    assert _observations(world) == Counter(run_ids)
    assert _pending(world) == 0


def test_a_failed_delivery_leaves_its_entries_due_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_ids = _never_launched(world, 2)

    def storage_down(*_args: object) -> None:
        raise ConnectionError("event log storage unavailable")

    monkeypatch.setattr("opsrecon_dagster.instance.decisions.store_events", storage_down)
    with pytest.raises(ConnectionError):
        deliver(world.app, _port(world), now=_now())
    monkeypatch.undo()
    retried = deliver(world.app, _port(world), now=_now())  # no lease to wait out
    assert retried.entries == 2
    assert _observations(world) == Counter(run_ids)
    assert disagreements(world.app, world.instance) == []


def test_a_tick_past_its_budget_stops_between_batches_and_the_next_finishes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain checks its budget after each batch: once spent, the rest of the backlog
    stays open (and its decisions' entries pending) for the next tick, which finishes."""
    from opsrecon_dagster.reconciliation.service import drain

    run_ids = []
    for i in range(5):
        scope = world.scope(f"env{i}")
        world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
        run_ids.append(world.start(INV, scope))
    batches: list[int] = []
    real = reconcile_batch

    def batch(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        batches.append(len(found))
        return found

    monkeypatch.setattr("opsrecon_dagster.reconciliation.service.reconcile_batch", batch)
    # The clock passes the budget while the first batch is decided.
    first = drain(
        world.app,
        _port(world),
        now=_now(),
        budget_seconds=50.0,
        limit=2,
        monotonic=lambda: 100.0 if batches else 0.0,
    )
    assert batches == [2] and not first.finished
    assert sum(world.decided(r)[0] is not None for r in run_ids) == 2
    rest = drain(
        world.app, _port(world), now=_now(), budget_seconds=50.0, limit=2, monotonic=lambda: 0.0
    )
    assert rest.finished and batches[1:] == [2, 1]
    assert all(world.decided(r) == ("failed", "queued_never_started") for r in run_ids)
    assert _observations(world) == Counter(run_ids)
    assert _pending(world) == 0


def test_a_sensor_tick_past_its_budget_says_so_and_a_later_tick_finishes_the_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciliation sensor's tick, with a budget spent as soon as it starts (zero
    seconds: deterministic, the budget is checked only between batches): each tick decides
    one batch, says the rest goes on, and delivers nothing; a tick with a budget finishes
    the decisions and shows every one in Dagster."""
    from opsrecon_dagster.sensors import reconciliation as sensors
    from opsrecon_dagster_tests.reconciliation.test_poison_rows import tick

    run_ids = []
    for i in range(5):
        scope = world.scope(f"env{i}")
        world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
        run_ids.append(world.start(INV, scope))
    monkeypatch.setattr(sensors, "BATCH_SIZE", 2)
    monkeypatch.setattr(sensors, "TICK_BUDGET_SECONDS", 0.0)
    for decided_so_far in (2, 4):
        said = tick(world).skip_reason
        assert said is not None
        assert (said.skip_message or "").startswith("decided 2 of 2 due operation runs")
        assert (said.skip_message or "").endswith("budget spent, the rest goes on next tick")
        assert sum(world.decided(r)[0] is not None for r in run_ids) == decided_so_far
    assert _pending(world) == 4  # decided, not yet shown: the budget was spent
    monkeypatch.setattr(sensors, "TICK_BUDGET_SECONDS", 20.0)
    said = tick(world).skip_reason
    assert said is not None and "budget spent" not in (said.skip_message or "")
    assert all(world.decided(r) == ("failed", "queued_never_started") for r in run_ids)
    assert _observations(world) == Counter(run_ids)
    assert _pending(world) == 0
