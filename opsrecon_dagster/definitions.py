"""The Dagster entry point: ``opsrecon_dagster.definitions:defs``."""

import os
from collections.abc import Mapping

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


def build_defs(environ: Mapping[str, str]) -> dg.Definitions:
    """The project's definitions, wired from ``environ``: each ``OPSRECON_*`` variable set
    there becomes its resource setting's ``EnvVar`` (resolved where the resource runs), the
    rest keep their documented defaults; the steps' executor comes from the same place.

    A process whose configuration is only known later (the demo, which creates its own
    database and fixture first) builds its own set with this instead of ``defs``.
    """
    return dg.Definitions(
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
        resources=configured_resources(environ),
        executor=configured_executor(environ),
    )


# Loaded by the code server, the daemon and each run worker: wired from that process's
# environment as it loads the definitions.
defs = build_defs(os.environ)
