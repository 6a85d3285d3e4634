"""Sensors and schedules that turn the database into Dagster runs.

- environment partitions follow the ``managed_environments`` table;
- backups follow the cron of each row in ``backup_schedules``: one operation run per
  (schedule, window), ever, even when a window is evaluated again after its run completed;
- inventory syncs run on a fixed schedule for every environment (one run per tick, likewise).

A run key is used by Dagster once: a second request with it is dropped. So the row behind a
request is started ``once`` as well; a window whose row is already final gets no request
(nor a row that no Dagster run would ever pick up).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.scheduling import due_backups
from opsrecon_dagster.enums import Actor, RunStatus
from opsrecon_dagster.jobs import backup_execute_job, inventory_sync_job
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import run_tags
from opsrecon_dagster.resources import AppDatabaseResource
from opsrecon_dagster.sensors.guard import guarded_tick
from opsrecon_dagster.tenancy import all_environments, all_partition_keys

PARTITIONS_NAME = ENVIRONMENTS.name or "managed_environments"
ACTIVE = tuple(s.value for s in RunStatus.active())


def tagged_request(
    app: AppContext,
    op_type: OperationType,
    scope: tuple[int, int, str],
    inputs: RunInputs,
    *,
    run_key: str,
) -> dg.RunRequest | None:
    """Create (or find) the operation run first, then request its Dagster run tagged with
    the row's id: no scheduled or sensor-requested run exists without its row.

    The row is started ``once`` (one row per run key, whatever its status). A found row that
    is still open is requested again under the same run key (Dagster launches it if the
    first request never arrived); a final one gets no request: None.
    """
    workspace_id, environment_id, partition_key = scope
    run = app.runs.start(
        op_type,
        workspace_id=workspace_id,
        environment_id=environment_id,
        inputs=inputs,
        actor=Actor.JOB,
        once=True,
    ).run
    if run.status not in ACTIVE:
        return None
    return dg.RunRequest(
        run_key=run_key, partition_key=partition_key, tags=run_tags(run.id, partition_key)
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each managed environment in the application database.",
)
def environment_partitions_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource
) -> dg.SensorResult:
    """Add a partition for every managed environment in the database that has none yet."""

    def tick() -> dg.SensorResult:
        with app_db.opened() as app, app.sessions() as session:
            keys = list(all_partition_keys(session))
        known = set(context.instance.get_dynamic_partitions(PARTITIONS_NAME))
        missing = [k for k in keys if k not in known]
        if not missing:
            return dg.SensorResult(skip_reason=f"{len(known)} environments, none new")
        return dg.SensorResult(
            dynamic_partitions_requests=[ENVIRONMENTS.build_add_request(missing)]
        )

    return guarded_tick(context, "environment partition sync", tick)


@dg.sensor(
    job=backup_execute_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a backup run for each backup schedule whose cron tick is due.",
)
def backup_schedules_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource
) -> dg.SensorResult:
    """Launch one backup run per due schedule tick; the cursor is the last evaluated instant.

    The first evaluation only sets the cursor, so enabling the sensor never backfills.
    """
    now = datetime.now(UTC)
    if context.cursor is None:
        return dg.SensorResult(cursor=now.isoformat(), skip_reason="cursor initialised")
    cursor = context.cursor

    def tick() -> dg.SensorResult:
        since = max(datetime.fromisoformat(cursor), now - timedelta(days=1))
        requests: list[dg.RunRequest] = []
        with app_db.opened() as app:
            with app.sessions() as session:
                due, invalid = due_backups(session, since, now)
            if invalid:
                context.log.warning(f"{invalid} backup schedule(s) have an invalid cron; skipped")
            done = 0
            for item in due:
                request = tagged_request(
                    app,
                    OperationType.BACKUP_SCHEDULE_EXECUTE,
                    (item.workspace_id, item.environment_id, item.partition_key),
                    RunInputs(
                        backup_schedule_id=item.schedule_id,
                        scheduled_for=item.tick,
                        trigger="schedule",
                    ),
                    run_key=f"backup:{item.schedule_id}:{item.tick.isoformat()}",
                )
                if request is None:
                    done += 1
                else:
                    requests.append(request)
        if done:
            context.log.info(f"{done} due backup window(s) already have a final run; skipped")
        return dg.SensorResult(run_requests=requests, cursor=now.isoformat())

    return guarded_tick(context, "backup schedule evaluation", tick)


@dg.schedule(
    job=inventory_sync_job,
    cron_schedule="0 */6 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Syncs every environment's inventory every six hours.",
)
def inventory_sync_schedule(
    context: dg.ScheduleEvaluationContext, app_db: AppDatabaseResource
) -> list[dg.RunRequest]:
    """Sync every environment's inventory every six hours (one run per partition).

    Each request's operation run is created first (or found: the same tick evaluated twice
    returns the same row; a final one is not requested again) and the request carries its
    id, so a scheduled launch that never starts is still a row the reconciler finalizes.
    """
    tick = context.scheduled_execution_time
    known = set(context.instance.get_dynamic_partitions(PARTITIONS_NAME))
    requests: list[dg.RunRequest] = []
    with app_db.opened() as app:
        with app.sessions() as session:
            environments = [e for e in all_environments(session) if e.partition_key in known]
        for env in environments:
            request = tagged_request(
                app,
                OperationType.INVENTORY_SYNC,
                (env.workspace_id, env.id, env.partition_key),
                RunInputs(scheduled_for=tick, trigger="schedule"),
                run_key=f"inventory:{env.partition_key}:{tick.isoformat()}",
            )
            if request is not None:
                requests.append(request)
    return requests
