"""Decisions reach Dagster at least once, even when a real ``dagster-daemon`` is SIGKILLed in
the middle of a reconciliation tick.

The kill lands at the worst point, between the tick's committed decisions and the daemon
writing their events. It is placed there by database state, not by timing: the test holds
an exclusive lock on Dagster's ``event_logs`` table, so the daemon can evaluate the sensor
(the decisions commit) but blocks at its first event write; the test sees the decisions
committed and no event written, then kills the daemon's whole process group and ends its
blocked connections. A restarted daemon must deliver every decision.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import SensorInstigatorData
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import Engine

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import TickCursor, reconciliation_sensor
from opsrecon_dagster.settings import Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace
from opsrecon_dagster_tests.conftest import throwaway_database

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
RUNS = 60  # fewer than one batch: the killed tick decides all of them
# Bounds for waiting on events; the restarted daemon delivers the killed tick's claimed
# decisions once their lease (outbox.LEASE, 2 minutes) has ended.
TIMEOUT_SECONDS = 420


@pytest.fixture
def dagster_pg(postgres_server_url: str) -> Iterator[str]:
    yield from throwaway_database(postgres_server_url, "dagster_kill")


@pytest.fixture
def app_pg(postgres_server_url: str) -> Iterator[str]:
    yield from throwaway_database(postgres_server_url, "opsrecon_kill", migrated=True)


def _wait(what: str, condition: Callable[[], bool], daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _seed(app: AppContext, instance: dg.DagsterInstance) -> list[int]:
    """Stale runs that were never launched, one per environment (so each is its
    partition's newest and shows there): each is decided ``queued_never_started``."""
    with app.sessions.begin() as session:
        ws = get_or_create_workspace(session, "acme")
        envs = [get_or_create_environment(session, ws, f"contoso{i}") for i in range(RUNS)]
        scopes = [(ws.id, env.id, env.partition_key) for env in envs]
    instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [p for _w, _e, p in scopes])
    ids = [
        app.runs.start(
            OperationType.INVENTORY_SYNC, workspace_id=ws_id, environment_id=env_id
        ).run.id
        for ws_id, env_id, _partition in scopes
    ]
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with app.engine.begin() as conn:  # history: these rows were queued two days ago
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id.in_(ids))
            .values(created_at=long_ago, last_progress_at=long_ago, stale_at=long_ago)
        )
    return ids


def _observed(instance: dg.DagsterInstance) -> dict[int, int]:
    """Dagster observation events per operation run id."""
    records = instance.fetch_observations(dg.AssetKey("inventory_items"), limit=10 * RUNS).records
    seen: dict[int, int] = {}
    for record in records:
        observation = record.asset_observation
        assert observation is not None
        run_id = observation.metadata["operation_run_id"].value
        assert isinstance(run_id, int)
        seen[run_id] = seen.get(run_id, 0) + 1
    return seen


def _saved_cursor(instance: dg.DagsterInstance, since: datetime) -> str | None:
    """The reconciliation sensor's cursor as the daemon saved it, for a tick since then."""
    for state in instance.all_instigator_state():
        data = state.instigator_data
        if state.name != "reconciliation_sensor" or not isinstance(data, SensorInstigatorData):
            continue
        tick = TickCursor.parse(data.cursor).tick
        if tick is not None and datetime.fromisoformat(tick) >= since:
            return data.cursor
    return None


def _start_daemon(home: Path, app_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "OPSRECON_DATABASE_URL": app_url}
    env.pop("OPSRECON_STALE_THRESHOLDS", None)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes the code server too
    )


def _kill_group(daemon: subprocess.Popen[bytes]) -> None:
    os.killpg(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=60)


def _end_blocked_connections(dagster_engine: Engine) -> int:
    """The killed daemon's connections, still waiting on the lock, end with it."""
    with dagster_engine.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND wait_event_type = 'Lock'"
                )
            ).all()
        )


@pytest.mark.postgres
def test_daemon_killed_mid_tick_loses_no_event(
    dagster_pg: str, app_pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_pg}\ntelemetry:\n  enabled: false\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    log = tmp_path / "daemon.log"
    app = AppContext(Settings(database_url=app_pg))
    dagster_engine = create_engine(dagster_pg, isolation_level="AUTOCOMMIT")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        with dg.DagsterInstance.get() as instance:  # creates Dagster's schema
            ids = _seed(app, instance)

            def decided() -> int:
                with app.sessions() as s:
                    return int(
                        s.scalar(
                            select(func.count())
                            .select_from(OperationRun)
                            .where(OperationRun.id.in_(ids), OperationRun.status == "completed")
                        )
                        or 0
                    )

            def undelivered() -> int:
                with app.sessions() as s:
                    return outbox.count(s)

            locker = dagster_engine.connect().execution_options(isolation_level="READ COMMITTED")
            lock = locker.begin()
            locker.execute(text("LOCK TABLE event_logs IN EXCLUSIVE MODE"))
            daemon = _start_daemon(home, app_pg, log)
            _wait("the tick's decisions", lambda: decided() == RUNS, daemon)
            # Committed decisions, every one pending in the outbox, and no event written.
            assert undelivered() == RUNS
            assert _observed(instance) == {}
            _kill_group(daemon)
            assert _end_blocked_connections(dagster_engine) >= 1  # it was blocked mid-write
            lock.rollback()
            locker.close()
            assert _observed(instance) == {}, "the killed daemon wrote no event"

            restarted = datetime.now(UTC)
            daemon = _start_daemon(home, app_pg, log)
            # The killed delivery's claim is due again once its lease ends.
            _wait("every decision delivered", lambda: undelivered() == 0, daemon)
            _wait("a completed tick", lambda: bool(_saved_cursor(instance, restarted)), daemon)
            _kill_group(daemon)
            missing = [i for i in ids if i not in _observed(instance)]
            print(f"decisions {RUNS}, without an event after the restart: {len(missing)}")
            assert missing == []
            # Delivered and acknowledged: the outbox is empty, and the next evaluation (here
            # directly, instead of waiting another interval) repeats nothing.
            assert undelivered() == 0
            saved = _saved_cursor(instance, restarted)
            after = reconciliation_sensor(
                dg.build_sensor_context(
                    instance=instance,
                    cursor=saved,
                    resources={
                        "app_db": AppDatabaseResource(database_url=app_pg),
                        "clock": ClockResource(),
                    },
                )
            )
            assert isinstance(after, dg.SensorResult)
            assert after.skip_reason is not None
            assert after.skip_reason.skip_message == "no stale operation runs"
            assert set(_observed(instance).values()) == {1}  # one event per decision
            with app.sessions() as s:
                reasons = set(
                    s.scalars(select(OperationRun.reason_code).where(OperationRun.id.in_(ids)))
                )
            assert reasons == {"queued_never_started"}
    finally:
        if daemon is not None and daemon.poll() is None:
            _kill_group(daemon)
        app.dispose()
        dagster_engine.dispose()
        print(log.read_text()[-3000:] if log.exists() else "no daemon log")
