"""Asset jobs on Celery workers (``OPSRECON_EXECUTOR=celery``) with a Redis broker, and one
worker SIGKILLed mid-step: every operation run still ends truthfully, nothing stays open.

Everything is real and deployed as documented: a throwaway ``redis-server``, two Celery
worker processes (``--pool solo``: the step runs in the worker process), ``dagster-daemon``
with ``deploy/dagster.postgres.yaml`` (queued run coordinator, default run launcher), the
application and Dagster storage on PostgreSQL, runs submitted by ``opsrecon operations
start``. The fixture provider holds every sync at a file gate after its first policy type
(``pause_at`` just before its second ``list_policies`` call), so the test knows which worker
runs which step before it kills one (files, not sleeps).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import CallPoint
from opsrecon_dagster.resources import FIXTURE_PATH_VAR
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.conftest import IN_CI, make_scope, opsrecon, throwaway_database
from opsrecon_dagster_tests.redis_server import ThrowawayRedis

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "deploy" / "dagster.postgres.yaml"
ENVIRONMENT_NAMES = ["contoso", "fabrikam", "northwind", "hooli"]
PAUSE = CallPoint(call="list_policies", number=2)  # its gate files: <partition>.<PAUSE>.*
# The killed run waits for the default running threshold (60 s after its last heartbeat,
# which comes every 15 s) plus a stale scan (10 s); the others for the daemon's dequeue
# loop and their steps. Bounds only: the test moves on as soon as the state is there.
TIMEOUT_SECONDS = 420


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = ThrowawayRedis.find()
    if binary is None:
        message = "no redis-server (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true: {message}", pytrace=False)
        pytest.skip(f"Celery test skipped: {message}")
    server = ThrowawayRedis(binary).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def app_url(postgres_server_url: str) -> Iterator[str]:
    yield from throwaway_database(postgres_server_url, "opsrecon_celery", migrated=True)


@pytest.fixture
def dagster_url(postgres_server_url: str) -> Iterator[str]:
    yield from throwaway_database(postgres_server_url, "dagster_celery")


class Processes:
    """Long-running processes of the deployment, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=(self.logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started[name] = process
        return process

    def alive(self) -> None:
        for name, process in self.started.items():
            if name != "worker1":  # the one the test kills
                code = process.poll()
                assert code is None, f"{name} exited ({code}): see {self.logs}/{name}.log"

    def stop_all(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)


def _wait(what: str, condition: Callable[[], bool], processes: Processes) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        processes.alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _worker_of(instance: dg.DagsterInstance, dagster_run_id: str) -> str:
    """The Celery worker that ran the run's step (dagster-celery's engine event names it)."""
    for record in instance.all_logs(dagster_run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT":
            continue
        data = event.engine_event_data
        if data is not None and "Celery worker" in data.metadata:
            return str(data.metadata["Celery worker"].value).split("@")[0]
    raise AssertionError(f"no Celery worker named in the events of {dagster_run_id}")


def _worker_ended_after_refusal(instance: dg.DagsterInstance, dagster_run_id: str) -> bool:
    """The run's step failed (the refused redelivery) and then the run worker, which had
    been waiting for that step, reported the run's failure and ended."""
    types = [
        r.dagster_event.event_type_value
        for r in instance.all_logs(dagster_run_id)
        if r.dagster_event is not None
    ]
    return "STEP_FAILURE" in types and "PIPELINE_FAILURE" in types[types.index("STEP_FAILURE") :]


@pytest.mark.postgres
def test_celery_workers_one_killed_mid_step_every_run_ends_truthfully(
    redis_url: str,
    app_url: str,
    dagster_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = AppContext(Settings(database_url=app_url))
    scopes = [make_scope(app, "acme", name) for name in ENVIRONMENT_NAMES]
    gates = tmp_path / "gates"
    fixture = tmp_path / "tenants.json"
    fixture.write_text(
        json.dumps(
            {
                "gate_dir": str(gates),
                "environments": {
                    s.partition_key: {"faults": {"pause_at": PAUSE.model_dump()}} for s in scopes
                },
            }
        )
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_url,
        "OPSRECON_DATABASE_URL": app_url,
        FIXTURE_PATH_VAR: str(fixture),
        "OPSRECON_EXECUTOR": "celery",
        "OPSRECON_CELERY_BROKER_URL": redis_url,
        # The shortest allowed: the lost step is handed out again within the test.
        "OPSRECON_CELERY_VISIBILITY_TIMEOUT_SECONDS": "60",
    }
    processes = Processes(env, tmp_path)
    try:
        monkeypatch.setenv("DAGSTER_PG_URL", dagster_url)  # the test's own instance, too
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(
                ENVIRONMENTS.name or "", [s.partition_key for s in scopes]
            )
        workers = {
            name: processes.start(
                name,
                [
                    str(BIN / "celery"),
                    "-A",
                    "opsrecon_dagster.celery_worker",
                    "worker",
                    "--pool",
                    "solo",
                    "-Q",
                    "dagster",
                    "--hostname",
                    f"{name}@%h",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
            for name in ("worker1", "worker2")
        }
        processes.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"])
        ids: dict[str, int] = {}
        for scope in scopes:
            done = opsrecon(
                "operations",
                "start",
                "inventory.sync",
                "--environment",
                scope.partition_key,
                "--json",
                env=env,
                timeout=TIMEOUT_SECONDS,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            ids[scope.partition_key] = json.loads(done.stdout)["run"]["id"]

        # Both workers hold a step at the gate: the pid in a ``.reached`` file is the worker's.
        def holders() -> dict[str, str]:
            found = {}
            for reached in gates.glob(f"*.{PAUSE}.reached"):
                pid = reached.read_text().strip()
                for name, worker in workers.items():
                    if pid == str(worker.pid):
                        found[name] = reached.name.removesuffix(f".{PAUSE}.reached")
            return found

        _wait("a step paused on each worker", lambda: len(holders()) == 2, processes)
        killed_partition = holders()["worker1"]
        os.killpg(workers["worker1"].pid, signal.SIGKILL)
        workers["worker1"].wait(timeout=60)
        killed_at = datetime.now(UTC)

        def rows() -> list[OperationRun]:
            with app.sessions() as session:
                return list(session.scalars(select(OperationRun).order_by(OperationRun.id)))

        def final(run_id: int) -> bool:
            return any(r.id == run_id and r.status == "completed" for r in rows())

        # The killed run is decided from its stale heartbeat while worker2 still holds its
        # step at the gate: so the broker's redelivery of the lost step (after the
        # visibility timeout) can only run once the decision is there.
        _wait("the killed run decided", lambda: final(ids[killed_partition]), processes)
        for scope in scopes:  # every other step may go on (and those not yet started)
            (gates / f"{scope.partition_key}.{PAUSE}.release").touch()
        _wait("every run final", lambda: all(r.status == "completed" for r in rows()), processes)
        by_id = {r.id: r for r in rows()}
        assert len(by_id) == len(scopes)
        killed = by_id[ids[killed_partition]]
        assert (killed.outcome, killed.reason_code) == ("failed", "stale_without_proof")
        for partition, run_id in ids.items():
            if partition != killed_partition:
                row = by_id[run_id]
                assert (row.outcome, row.reason_code) == (
                    "succeeded",
                    "inventory_all_types_covered",
                ), partition

        with dg.DagsterInstance.from_config(str(home)) as instance:
            per_worker: dict[str, list[str]] = {}
            dagster_ids = [str(by_id[run_id].dagster_run_id) for run_id in ids.values()]
            _wait(
                "every Dagster run ended",  # a run worker ends its run after the row is final
                lambda: all(
                    r.is_finished for r in instance.get_runs(dg.RunsFilter(run_ids=dagster_ids))
                ),
                processes,
            )
            for partition, run_id in ids.items():
                dagster_run_id = by_id[run_id].dagster_run_id
                assert dagster_run_id is not None
                per_worker.setdefault(_worker_of(instance, dagster_run_id), []).append(partition)
                dagster_run = instance.get_run_by_id(dagster_run_id)
                assert dagster_run is not None
                expected = (
                    dg.DagsterRunStatus.FAILURE
                    if partition == killed_partition
                    else dg.DagsterRunStatus.SUCCESS
                )
                assert dagster_run.status is expected, partition
            # The lost step, handed out again, reaches worker2; the worker guard refuses it
            # (the row is final), and the Dagster run worker that waited for it gets that
            # step failure: it ends instead of waiting forever.
            killed_dagster_run = by_id[ids[killed_partition]].dagster_run_id
            assert killed_dagster_run is not None
            _wait(
                "the lost step redelivered and refused",
                lambda: _worker_ended_after_refusal(instance, killed_dagster_run),
                processes,
            )
        after = {r.id: (r.outcome, r.reason_code, r.completed_at) for r in rows()}
        assert after == {r.id: (r.outcome, r.reason_code, r.completed_at) for r in by_id.values()}
        assert set(per_worker) == {"worker1", "worker2"}
        assert per_worker["worker1"] == [killed_partition]
        completed_at = killed.completed_at
        assert completed_at is not None
        truth = completed_at.replace(tzinfo=completed_at.tzinfo or UTC) - killed_at
        # The figures the README quotes.
        print(
            f"runs per worker: { {k: len(v) for k, v in sorted(per_worker.items())} }; "
            f"killed worker's run decided {truth.total_seconds():.1f} s after the kill"
        )
    finally:
        processes.stop_all()
