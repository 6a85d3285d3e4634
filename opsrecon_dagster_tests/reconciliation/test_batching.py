"""Deciding a batch costs a fixed number of application-database queries, whatever its size,
and rows not decidable yet never hold the front of the backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster._core.events import DagsterEvent, DagsterEventType
from sqlalchemy import event, update

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster_tests.reconciliation.conftest import World, dagster_run

FAMILIES = [
    (OperationType.INVENTORY_SYNC, "inventory_items"),
    (OperationType.BACKUP_SCHEDULE_EXECUTE, "backup_sets"),
    (OperationType.ENVIRONMENT_REVIEW_COMPOSE, "environment_reviews"),
    (OperationType.RESTORE_EXECUTE, None),
]


def _backlog(world: World, per_family: int, offset: int) -> None:
    scope = world.scope("full")
    world.schedule(scope)
    for op, asset in FAMILIES:
        for i in range(per_family):
            tick = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset + i)
            run_id = world.start(op, scope, scheduled_for=tick)
            world.running(run_id)
            if asset and i % 2 == 0:
                world.work_then_die(asset, run_id)


def _queries_for_dry_run(world: World) -> tuple[int, int]:
    count = 0

    def count_query(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(world.app.engine, "before_cursor_execute", count_query)
    try:
        results = world.reconcile(dry_run=True)
    finally:
        event.remove(world.app.engine, "before_cursor_execute", count_query)
    return count, len(results)


def test_query_count_does_not_grow_with_the_batch(world: World) -> None:
    _backlog(world, per_family=1, offset=0)
    small_queries, small_runs = _queries_for_dry_run(world)
    _backlog(world, per_family=6, offset=100)
    large_queries, large_runs = _queries_for_dry_run(world)
    assert (small_runs, large_runs) == (4, 28)
    assert large_queries == small_queries


def test_rows_found_alive_leave_the_front_of_the_backlog(world: World) -> None:
    """A full batch of rows that cannot be decided yet (their Dagster runs have just
    started) does not hide the stale row behind them from the next batch."""
    scope = world.scope("contoso")
    past = datetime.now(UTC) - timedelta(minutes=20)
    alive = []
    for i in range(3):
        run_id = world.start(OperationType.INVENTORY_SYNC, scope, policy_types=[f"t{i}"])
        dagster_run_id = dagster_run(world.instance, "NOT_STARTED")
        world.instance.report_dagster_event(  # the worker has just started
            DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name="ok_job"),
            run_id=dagster_run_id,
        )
        world.app.runs.link_dagster_run(run_id, dagster_run_id)
        alive.append(run_id)
    behind = world.start(OperationType.POLICY_SYNC, scope)  # no Dagster run: decidable
    with world.app.engine.begin() as conn:  # all queued long ago; the alive ones due first
        for position, run_id in enumerate([*alive, behind]):
            conn.execute(
                update(OperationRun)
                .where(OperationRun.id == run_id)
                .values(
                    created_at=past,
                    last_progress_at=past,
                    stale_at=past + timedelta(minutes=10, seconds=position),
                )
            )
    now = datetime.now(UTC)
    reconciler = Reconciler(
        world.app.sessions, world.app.runs, InstanceDagsterView(world.instance), clock=lambda: now
    )
    first = reconciler.reconcile(limit=3)
    assert [(r.run_id, r.verdict.reason_code) for r in first] == [
        (run_id, "run_alive") for run_id in alive
    ]
    [second] = reconciler.reconcile(limit=3)
    assert (second.run_id, second.verdict.reason_code) == (behind, "unsupported_type_stale")
    # Each alive row is due again when the heartbeat rule could call it stale.
    running = world.app.catalog.get(OperationType.INVENTORY_SYNC).running_stale_after
    for run_id in alive:
        due = world.app.runs.get(run_id).stale_at
        assert due is not None and now < due <= now + running
