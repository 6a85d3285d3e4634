"""A partition launched through Dagster's GraphQL API with no opsrecon tag from the caller
(only ``dagster/partition``), whose worker is killed mid-step, is decided by the run-end
sensor within 10 s of its Dagster run's end, and the Dagster run carries the partition's
queue lane tags (issue #26, item 7).

The UI's launchpad and Materialize button fetch the partition's tags from the jobs'
partitioned config and send them; ``submit_job_execution`` with only the partition does
not, and Dagster's GraphQL launch adds only the job's own tags, so the lane tags must come
from the product.

Real processes: a ``dagster-daemon`` (run queue, run-end sensors) and a ``dagster-webserver``
(the GraphQL endpoint) on a temporary instance, the run worker they launch, and the fixture
provider's ``crash_at`` fault, which SIGKILLs the step's process before its first provider
call. An execution error would be decided by the job itself; a killed process decides
nothing, so only the run-end sensor can decide the row at once (else the stale scan would,
much later). The row is created by the run's first step, which records the Dagster run id;
the sensor must find it by that id. The test waits on state (run status, row status), and
measures the delay from the timestamps Dagster and the row record, not from its own polling.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.jobs import lane_tags
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML, initialize_instance
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import (
    ENVIRONMENT_TAG,
    RUN_TAG,
    WORKSPACE_TAG,
)
from opsrecon_dagster.resources import FIXTURE_PATH_VAR
from opsrecon_dagster.sensors.reconciliation import RUN_END_INTERVAL_SECONDS
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.conftest import make_scope
from opsrecon_dagster_tests.ports import free_port

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOB = "inventory_sync"
FAILURE_SENSOR = "reconcile_on_run_failure"
DECIDED_WITHIN_SECONDS = 10.0  # the rule under test ("at once", README)
# Bounds for waiting on events (a loaded machine starts processes slowly), not figures.
TIMEOUT_SECONDS = 300


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it takes its code server
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def _wait(
    what: str, condition: Callable[[], bool], processes: Sequence[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        for p in processes:
            assert p.poll() is None, f"{p.args!r} exited ({p.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # a polling pace: the measured delay comes from recorded timestamps


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _sensor_ticked(instance: dg.DagsterInstance, name: str) -> bool:
    """The daemon has evaluated the sensor once: a run-status sensor only considers runs
    that end after its first tick."""
    for state in instance.all_instigator_state():
        if state.name == name:
            return bool(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return False


def test_a_graphql_launch_whose_worker_dies_is_decided_within_10s_in_its_lanes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path
) -> None:
    # The sensors' configured pace must leave room for the rule (the daemon's loop is 5 s).
    assert RUN_END_INTERVAL_SECONDS <= DECIDED_WITHIN_SECONDS
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    initialize_instance(home)  # before the daemon and the webserver open it at once
    app_db = tmp_path / "app.sqlite3"
    shutil.copy(sqlite_template, app_db)
    app_url = f"sqlite:///{app_db}"
    app = AppContext(Settings(database_url=app_url))
    scope = make_scope(app, "acme", "contoso")
    partition = scope.partition_key
    fixture = tmp_path / "tenants.json"
    crash = {"crash_at": {"call": "list_policies", "number": 1}}
    calls = tmp_path / "provider_calls.log"
    fixture.write_text(
        json.dumps({"environments": {partition: {"faults": crash}}, "call_log": str(calls)})
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OPSRECON_DATABASE_URL": app_url,
        FIXTURE_PATH_VAR: str(fixture),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("OPSRECON_STALE_THRESHOLDS", None)  # the default thresholds
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [partition])
            processes.append(
                _start(
                    [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                    env,
                    tmp_path / "daemon.log",
                )
            )
            processes.append(
                _start(
                    [
                        str(BIN / "dagster-webserver"),
                        *("-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"),
                    ],
                    env,
                    tmp_path / "webserver.log",
                )
            )
            _wait("the webserver", lambda: _serving(f"http://127.0.0.1:{port}"), processes)
            _wait(
                "the run-failure sensor's first tick",
                lambda: _sensor_ticked(instance, FAILURE_SENSOR),
                processes,
            )

            # What the UI sends: the job and the partition, no opsrecon tag.
            client = DagsterGraphQLClient("127.0.0.1", port_number=port)
            dagster_run_id = client.submit_job_execution(JOB, tags={"dagster/partition": partition})

            def ended() -> bool:
                record = instance.get_run_record_by_id(dagster_run_id)
                return record is not None and record.dagster_run.is_finished

            def row() -> OperationRun | None:
                with app.sessions() as s:
                    return s.scalars(
                        select(OperationRun).where(OperationRun.dagster_run_id == dagster_run_id)
                    ).one_or_none()

            def decided() -> bool:
                found = row()
                return found is not None and found.status == "completed"

            _wait("the Dagster run's end", ended, processes)
            _wait("the operation run's decision", decided, processes)

            record = instance.get_run_record_by_id(dagster_run_id)
            assert record is not None and record.end_time is not None
            run = record.dagster_run
            assert run.status is dg.DagsterRunStatus.FAILURE  # the worker was killed
            decision = row()
            assert decision is not None and decision.completed_at is not None
            delay = decision.completed_at.timestamp() - record.end_time
            print(f"decided {delay:.2f} s after the Dagster run ended")
            assert delay <= DECIDED_WITHIN_SECONDS, f"decided {delay:.1f} s after the run ended"
            # Decided by the run-end sensor from the failed run, not by the (killed) job,
            # which got as far as the fault: its first provider call.
            assert (decision.outcome, decision.reason_code) == (
                "failed",
                "dagster_run_failed_without_proof",
            )
            assert calls.read_text().splitlines() == [f"list_policies\t{partition}"]
            # Untagged by the caller, yet in the partition's queue lanes.
            assert RUN_TAG not in run.tags
            lanes = lane_tags(partition)
            assert lanes == {WORKSPACE_TAG: "acme", ENVIRONMENT_TAG: partition}
            assert {k: run.tags.get(k) for k in lanes} == lanes, (
                "a GraphQL launch naming only dagster/partition got no lane tags"
            )
    finally:
        for p in processes:
            _stop(p)
        app.dispose()
        for name in ("daemon.log", "webserver.log"):
            log = tmp_path / name
            print(f"--- {name}\n{log.read_text()[-3000:] if log.exists() else 'none'}")
