"""Partition and backup sensors evaluated for real: ``build_sensor_context`` on a real instance."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.jobs import backup_execute_job, inventory_sync_job
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, RunContext, RunInputs
from opsrecon_dagster.reconciliation.dagster_view import ENVIRONMENT_TAG, RUN_TAG, WORKSPACE_TAG
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster.resources import AppDatabaseResource
from opsrecon_dagster.sensors.scheduling import (
    PARTITIONS_NAME,
    backup_schedules_sensor,
    environment_partitions_sensor,
    inventory_sync_schedule,
)
from opsrecon_dagster_tests.conftest import Scope, add_schedule, make_scope


def resources(app: AppContext) -> dict[str, object]:
    return {"app_db": AppDatabaseResource(database_url=app.url.render_as_string(False))}


def test_environments_become_partitions(app: AppContext, instance: dg.DagsterInstance) -> None:
    make_scope(app, "acme", "contoso")
    make_scope(app, "globex", "contoso")
    ctx = dg.build_sensor_context(instance=instance, resources=resources(app))
    result = environment_partitions_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests or []
    assert list(request.partition_keys) == ["acme.contoso", "globex.contoso"]
    instance.add_dynamic_partitions(PARTITIONS_NAME, list(request.partition_keys))
    again = environment_partitions_sensor(
        dg.build_sensor_context(instance=instance, resources=resources(app))
    )
    assert isinstance(again, dg.SensorResult)
    assert not again.dynamic_partitions_requests


def test_backup_sensor_launches_due_schedules_once(
    app: AppContext, instance: dg.DagsterInstance
) -> None:
    due = make_scope(app, "acme", "contoso")
    disabled = make_scope(app, "acme", "fabrikam")
    not_due = make_scope(app, "globex", "contoso")
    due_id = add_schedule(app, due, cron="* * * * *")
    add_schedule(app, disabled, cron="* * * * *", enabled=False)
    add_schedule(app, not_due, cron="0 0 1 1 *")  # once a year
    add_schedule(app, not_due, cron="not a cron")
    cursor = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()

    def tick() -> dg.SensorResult:
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(app))
        result = backup_schedules_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        return result

    first = tick()
    [request] = first.run_requests or []
    assert request.partition_key == "acme.contoso"
    assert request.run_key is not None
    assert request.run_key.startswith(f"backup:{due_id}:")
    run = app.runs.get(int(request.tags[RUN_TAG]))
    # The tenant's tags, which the production run queue limits per workspace and environment.
    assert (request.tags[WORKSPACE_TAG], request.tags[ENVIRONMENT_TAG]) == ("acme", "acme.contoso")
    assert (run.type, run.status, run.managed_environment_id) == (
        "backup.schedule.execute",
        "queued",
        due.environment_id,
    )
    inputs = RunContext.load(run.context).inputs
    assert (inputs.backup_schedule_id, inputs.trigger) == (due_id, "schedule")
    assert first.cursor is not None
    assert first.cursor > cursor
    # The same window evaluated again: same run key, same operation run (no duplicate row).
    [repeat] = tick().run_requests or []
    assert repeat.run_key == request.run_key
    assert repeat.tags[RUN_TAG] == request.tags[RUN_TAG]


def runs_of(app: AppContext, op_type: str) -> list[OperationRun]:
    with app.sessions() as s:
        stmt = select(OperationRun).where(OperationRun.type == op_type).order_by(OperationRun.id)
        return list(s.scalars(stmt))


def succeed(app: AppContext, run_id: int, reason: str) -> None:
    """Finalize a run as its job would, through the lifecycle service."""
    result = app.runs.complete(
        run_id,
        Decision(
            outcome=RunOutcome.SUCCEEDED,
            reason_code=reason,
            adapter="test",
            decided_by=Actor.JOB,
            decided_at=datetime.now(UTC),
        ),
    )
    assert result.applied


def daily_window(now: datetime) -> tuple[str, datetime]:
    """A daily cron whose latest tick was two hours ago: the window stays the same for the
    whole test (a per-minute cron would move on at the next minute)."""
    tick = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    return f"0 {tick.hour} * * *", tick


@pytest.mark.parametrize("evaluated_again_with", ["no_cursor", "rewound_cursor"])
def test_backup_window_completed_is_never_requested_again(
    app: AppContext, instance: dg.DagsterInstance, evaluated_again_with: str
) -> None:
    """One row per (schedule, window): evaluated again after its run completed (the cursor
    lost, then rewound past the window), the window gets no second row and no request."""
    scope = make_scope(app, "acme", "contoso")
    cron, window = daily_window(datetime.now(UTC))
    schedule_id = add_schedule(app, scope, cron=cron)
    before_window = (window - timedelta(hours=1)).isoformat()

    def evaluate(cursor: str | None) -> dg.SensorResult:
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(app))
        result = backup_schedules_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        return result

    [request] = evaluate(before_window).run_requests or []
    assert request.run_key == f"backup:{schedule_id}:{window.isoformat()}"
    [run] = runs_of(app, "backup.schedule.execute")
    assert RunContext.load(run.context).inputs.scheduled_for == window
    succeed(app, run.id, "backup_all_items_captured")

    if evaluated_again_with == "no_cursor":
        lost = evaluate(None)  # the cursor lost: initialised again, nothing requested
        assert not lost.run_requests
        assert lost.cursor is not None
    again = evaluate(before_window)  # then rewound past the window (e.g. a restored instance)
    assert not again.run_requests
    rows = runs_of(app, "backup.schedule.execute")
    assert [(r.id, r.status, r.outcome) for r in rows] == [(run.id, "completed", "succeeded")]


def test_open_backup_window_is_requested_again_with_its_row(
    app: AppContext, instance: dg.DagsterInstance
) -> None:
    """A window whose row is still open (its request may never have reached Dagster) is
    requested again under the same run key, tagged with the same row."""
    scope = make_scope(app, "acme", "contoso")
    cron, window = daily_window(datetime.now(UTC))
    add_schedule(app, scope, cron=cron)
    cursor = (window - timedelta(hours=1)).isoformat()
    requests = [
        backup_schedules_sensor(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(app))
        )
        for _ in range(2)
    ]
    first, second = [r.run_requests or [] for r in requests if isinstance(r, dg.SensorResult)]
    assert [(r.run_key, r.tags[RUN_TAG]) for r in first] == [
        (r.run_key, r.tags[RUN_TAG]) for r in second
    ]
    assert len(runs_of(app, "backup.schedule.execute")) == 1


def window_inputs(schedule_id: int, window: datetime) -> RunInputs:
    return RunInputs(backup_schedule_id=schedule_id, scheduled_for=window, trigger="schedule")


def test_concurrent_evaluations_of_a_window_create_one_row(app: AppContext, scope: Scope) -> None:
    """Two sensor evaluations racing on one window: the unique once key lets one insert win;
    the other finds that row, also after the row completed."""
    schedule_id = add_schedule(app, scope)
    window = datetime(2026, 12, 1, 2, tzinfo=UTC)
    barrier = threading.Barrier(4)

    def start(_i: int) -> int:
        barrier.wait()
        return app.runs.start(
            OperationType.BACKUP_SCHEDULE_EXECUTE,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=window_inputs(schedule_id, window),
            actor=Actor.JOB,
            once=True,
        ).run.id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(start, range(4)))
    assert len(ids) == 1
    [run_id] = ids
    succeed(app, run_id, "backup_all_items_captured")
    barrier.reset()
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(start, range(4))) == {run_id}
    assert [r.id for r in runs_of(app, "backup.schedule.execute")] == [run_id]


def test_the_database_refuses_a_second_row_for_a_window(app: AppContext, scope: Scope) -> None:
    """The guarantee rests on the unique index (migration 0008), not only on the lookup."""
    schedule_id = add_schedule(app, scope)
    started = app.runs.start(
        OperationType.BACKUP_SCHEDULE_EXECUTE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=window_inputs(schedule_id, datetime(2026, 12, 1, 2, tzinfo=UTC)),
        once=True,
    )
    assert started.run.once_key == started.run.identity_key
    succeed(app, started.run.id, "backup_all_items_captured")
    row = app.runs.get(started.run.id)
    copy = {
        c: getattr(row, c) for c in ("workspace_id", "managed_environment_id", "type", "status")
    }
    with pytest.raises(IntegrityError), app.sessions.begin() as s:
        s.add(
            OperationRun(
                **copy,
                input_hash=row.input_hash,
                identity_key=row.identity_key,
                once_key=row.once_key,
                context={},
            )
        )


def test_backup_sensor_first_tick_only_sets_cursor(
    app: AppContext, instance: dg.DagsterInstance
) -> None:
    add_schedule(app, make_scope(app, "acme", "contoso"), cron="* * * * *")
    result = backup_schedules_sensor(
        dg.build_sensor_context(instance=instance, resources=resources(app))
    )
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    assert result.cursor is not None


def test_inventory_schedule_creates_a_row_per_partition_before_the_runs(
    app: AppContext, instance: dg.DagsterInstance
) -> None:
    contoso = make_scope(app, "acme", "contoso")
    initech = make_scope(app, "globex", "initech")
    make_scope(app, "globex", "nopartition")  # no Dagster partition yet: not requested
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["acme.contoso", "globex.initech"])
    tick = datetime(2026, 11, 23, 6, tzinfo=UTC)

    def evaluate() -> list[dg.RunRequest]:
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, resources=resources(app)
        )
        requests = inventory_sync_schedule(ctx)
        assert isinstance(requests, list)
        return requests

    requests = evaluate()
    assert [r.partition_key for r in requests] == ["acme.contoso", "globex.initech"]
    assert len({r.run_key for r in requests}) == 2
    rows = [app.runs.get(int(r.tags[RUN_TAG])) for r in requests]
    assert [(r.type, r.status, r.managed_environment_id) for r in rows] == [
        ("inventory.sync", "queued", contoso.environment_id),
        ("inventory.sync", "queued", initech.environment_id),
    ]
    inputs = RunContext.load(rows[0].context).inputs
    assert (inputs.scheduled_for, inputs.trigger) == (tick, "schedule")
    # The same tick evaluated again finds the same active rows (no duplicates).
    assert [r.tags[RUN_TAG] for r in evaluate()] == [r.tags[RUN_TAG] for r in requests]
    # Once a tick's run completed, the tick evaluated again requests nothing for it.
    succeed(app, rows[0].id, "inventory_all_types_covered")
    assert [r.tags[RUN_TAG] for r in evaluate()] == [str(rows[1].id)]
    assert len(runs_of(app, "inventory.sync")) == 2


@pytest.mark.parametrize("source", ["schedule", "backup_sensor"])
def test_submitted_run_request_is_linked_and_waits_in_the_queue(
    app: AppContext, instance: dg.DagsterInstance, source: str
) -> None:
    """The daemon submits the request; the row learns its Dagster run id from the tag, and a
    run waiting in Dagster's queue past the queued threshold gets no decision."""
    scope = make_scope(app, "acme", "contoso")
    instance.add_dynamic_partitions(PARTITIONS_NAME, [scope.partition_key])
    if source == "schedule":
        requests = inventory_sync_schedule(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=datetime(2026, 11, 23, 6, tzinfo=UTC),
                resources=resources(app),
            )
        )
        assert isinstance(requests, list)
        [request] = requests
        job = inventory_sync_job
    else:
        add_schedule(app, scope, cron="* * * * *")
        result = backup_schedules_sensor(
            dg.build_sensor_context(
                instance=instance,
                cursor=(datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
                resources=resources(app),
            )
        )
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests or []
        job = backup_execute_job
    run_id = int(request.tags[RUN_TAG])
    dagster_run = instance.create_run_for_job(
        defs.resolve_job_def(job.name),
        tags={**request.tags, "dagster/partition": scope.partition_key},
    )  # as the daemon records a submission: NOT_STARTED until a launcher picks it up
    assert app.runs.get(run_id).dagster_run_id is None
    later = datetime.now(UTC) + timedelta(hours=1)  # past the queued threshold
    reconciler = Reconciler(
        app.sessions, app.runs, InstanceDagsterView(instance), clock=lambda: later
    )
    [decision] = reconciler.reconcile()
    assert (decision.verdict.outcome, decision.verdict.reason_code) == (
        None,
        "run_waiting_in_queue",
    )
    row = app.runs.get(run_id)
    assert (row.status, row.dagster_run_id) == ("queued", dagster_run.run_id)
