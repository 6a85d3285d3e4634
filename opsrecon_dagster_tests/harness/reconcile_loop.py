"""One of several reconcilers running at once, for the concurrency test.

``python -m opsrecon_dagster_tests.harness.reconcile_loop sensor`` evaluates the real
reconciliation sensor on the instance in ``$DAGSTER_HOME`` (with the code location's jobs,
as the daemon does), tick after tick; ``... cli`` runs the real ``opsrecon reconcile
--limit 500`` command, process after process. Each stops after two rounds in a row with
nothing left to decide or deliver, and exits non-zero on the first error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from opsrecon_dagster.definitions import defs
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import TickCursor, reconciliation_sensor

OPSRECON = Path(sys.executable).with_name("opsrecon")


def _sensor_loop() -> int:
    rounds, idle, cursor = 0, 0, None
    resources = {
        "app_db": AppDatabaseResource(database_url=os.environ["OPSRECON_DATABASE_URL"]),
        "clock": ClockResource(),
    }
    with dg.DagsterInstance.get() as instance:
        while idle < 2:
            result = reconciliation_sensor(
                dg.build_sensor_context(
                    instance=instance,
                    cursor=cursor,
                    repository_def=defs.get_repository_def(),
                    resources=resources,
                )
            )
            assert isinstance(result, dg.SensorResult)
            cursor = result.cursor
            tick = TickCursor.parse(cursor)
            idle = idle + 1 if tick.considered == 0 and tick.delivered == 0 else 0
            rounds += 1
    return rounds


def _cli_loop() -> int:
    rounds, idle = 0, 0
    while idle < 2:
        done = subprocess.run(
            [str(OPSRECON), "reconcile", "--limit", "500"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(done.returncode)
        idle = idle + 1 if done.stdout.strip() == "nothing to do" else 0
        rounds += 1
    return rounds


if __name__ == "__main__":
    rounds = _sensor_loop() if sys.argv[1] == "sensor" else _cli_loop()
    print(f"{sys.argv[1]}: {rounds} rounds")
