"""Deciding a batch costs a fixed number of application-database queries, whatever its size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster_tests.reconciliation.conftest import World

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
