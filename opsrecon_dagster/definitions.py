"""The Dagster entry point: ``opsrecon_dagster.definitions:defs``."""

import os

import dagster as dg

from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.assets.overview import (
    operations_overview,
    operations_overview_schedule,
    overview_job,
)
from opsrecon_dagster.executors import configured_executor
from opsrecon_dagster.jobs import JOBS
from opsrecon_dagster.resources.configured import configured_resources
from opsrecon_dagster.sensors.alerts import decision_alerts_sensor
from opsrecon_dagster.sensors.reconciliation import RUN_END_SENSORS, reconciliation_sensor
from opsrecon_dagster.sensors.scheduling import (
    backup_schedules_sensor,
    environment_partitions_sensor,
    inventory_sync_schedule,
)

defs = dg.Definitions(
    assets=[*ARTIFACT_ASSETS, operations_overview],
    jobs=[*JOBS, overview_job],
    schedules=[inventory_sync_schedule, operations_overview_schedule],
    sensors=[
        environment_partitions_sensor,
        backup_schedules_sensor,
        reconciliation_sensor,
        *RUN_END_SENSORS,
        decision_alerts_sensor,
    ],
    # Wired from the environment of the process that loads the definitions (the code
    # server, the daemon, a run worker): each set variable as an EnvVar.
    resources=configured_resources(os.environ),
    # The steps' executor from the same environment: Dagster's default, or Celery workers.
    executor=configured_executor(os.environ),
)
