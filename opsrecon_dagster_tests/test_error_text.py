"""Database errors (whose text carries SQL) never reach Dagster's event log or sensor ticks:
only the error's type does. An unmigrated database makes every query fail."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import dagster as dg
import pytest

from opsrecon_dagster.assets.artifacts import inventory_items
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource, ProviderResource
from opsrecon_dagster.sensors.guard import SensorTickError
from opsrecon_dagster.sensors.reconciliation import RUN_END_SENSORS, reconciliation_sensor
from opsrecon_dagster.sensors.scheduling import (
    backup_schedules_sensor,
    environment_partitions_sensor,
)
from opsrecon_dagster_tests.reconciliation.conftest import ok_job

SQL_WORDS = ("SELECT", "FROM", "operation_runs", "managed_environments", "no such table")


@pytest.fixture
def broken_db(tmp_path: Path) -> AppDatabaseResource:
    return AppDatabaseResource(database_url=f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}")


def test_asset_failure_names_only_the_error_type(
    instance: dg.DagsterInstance, broken_db: AppDatabaseResource
) -> None:
    instance.add_dynamic_partitions(ENVIRONMENTS.name or "", ["acme.contoso"])
    result = dg.materialize(
        [inventory_items],
        partition_key="acme.contoso",
        instance=instance,
        raise_on_error=False,
        resources={"app_db": broken_db, "provider": ProviderResource()},
    )
    assert not result.success
    logged = json.dumps([str(e.dagster_event) for e in instance.all_logs(result.run_id)])
    assert "could not resolve the operation run (OperationalError)" in logged
    for word in SQL_WORDS:
        assert word not in logged


@pytest.mark.parametrize(
    ("sensor", "cursor", "what"),
    [
        (environment_partitions_sensor, None, "environment partition sync"),
        (backup_schedules_sensor, "2026-01-01T00:00:00+00:00", "backup schedule evaluation"),
        (reconciliation_sensor, None, "reconciliation"),
    ],
)
def test_sensor_tick_fails_with_only_the_error_type(
    instance: dg.DagsterInstance, broken_db: AppDatabaseResource, sensor, cursor, what
) -> None:
    """A failing tick is a failed tick (not a skip), and says only what failed and how."""
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"app_db": broken_db, "clock": ClockResource()},
    )
    with pytest.raises(SensorTickError) as raised:
        sensor(ctx)
    assert str(raised.value) == f"{what} failed (OperationalError); the next tick retries"
    assert raised.value.__suppress_context__  # the driver's error is not chained into the tick
    shown = "".join(traceback.format_exception(raised.value))
    for word in SQL_WORDS:
        assert word not in shown


def test_run_end_sensor_fails_with_only_the_error_type(
    instance: dg.DagsterInstance, broken_db: AppDatabaseResource
) -> None:
    run = ok_job.execute_in_process(
        instance=instance, tags={"opsrecon/operation_run_id": "7"}
    ).dagster_run
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None
    ctx = dg.build_run_status_sensor_context(
        sensor_name="reconcile_on_run_success",
        dagster_instance=instance,
        dagster_run=stored,
        dagster_event=instance.all_logs(run.run_id)[-1].dagster_event,  # type: ignore[arg-type]
        resources={"app_db": broken_db, "clock": ClockResource()},
    )
    [sensor] = [s for s in RUN_END_SENSORS if s.name == "reconcile_on_run_success"]
    with pytest.raises(SensorTickError) as raised:
        sensor(ctx)
    assert str(raised.value) == (
        "reconciling operation run 7 failed (OperationalError); the next tick retries"
    )
