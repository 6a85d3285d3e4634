"""A real ``dagster-daemon`` drains a backlog spread over hundreds of environments on the
embedded SQLite default (the storage whose one-write-per-event path used to push a tick past
Dagster's 60 s deadline): every run decided, every decision shown, no failed tick.

The backlog: in each of 300 environments one launch that never started and one older run
superseded by it; in 20 more, a run whose worker died with its Dagster run still ``STARTED``.
The test waits on database state (every row final, the outbox empty), never on time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from sqlalchemy import func, select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.settings import Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace
from opsrecon_dagster_tests.ui_agreement import disagreements

pytestmark = pytest.mark.slow  # a real daemon: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
DAEMON = Path(sys.executable).parent / "dagster-daemon"
ENVIRONMENTS_N = 300
DEAD_WORKERS = 20
TIMEOUT_SECONDS = 600  # a bound for waiting on database state, not a figure


def _seed(app: AppContext, instance: dg.DagsterInstance) -> list[int]:
    """The backlog, stale for two days; returns its operation run ids."""
    with app.sessions.begin() as session:
        ws = get_or_create_workspace(session, "scale")
        envs = [
            get_or_create_environment(session, ws, f"env{i}")
            for i in range(ENVIRONMENTS_N + DEAD_WORKERS)
        ]
        scopes = [(ws.id, e.id, e.partition_key) for e in envs]
    instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [p for _w, _e, p in scopes])
    ids: list[int] = []
    for i, (ws_id, env_id, _partition) in enumerate(scopes):
        for attempt in (1,) if i >= ENVIRONMENTS_N else (1, 2):
            ids.append(
                app.runs.start(
                    OperationType.INVENTORY_SYNC,
                    workspace_id=ws_id,
                    environment_id=env_id,
                    inputs=RunInputs(policy_types=[f"type{attempt}"]),
                ).run.id
            )
    job = defs.resolve_job_def("inventory_sync")
    for run_id, (_ws, _env, partition) in zip(
        ids[-DEAD_WORKERS:], scopes[-DEAD_WORKERS:], strict=True
    ):
        dagster_run = instance.create_run_for_job(
            job,
            status=dg.DagsterRunStatus.STARTED,
            tags={RUN_TAG: str(run_id), "dagster/partition": partition},
        )
        app.runs.mark_running(run_id, dagster_run.run_id)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with app.engine.begin() as conn:
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id.in_(ids))
            .values(created_at=long_ago, last_progress_at=long_ago, stale_at=long_ago)
        )
    return ids


def _wait(what: str, condition: Callable[[], bool], daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _sensor_ticks(instance: dg.DagsterInstance, name: str) -> list[dg.InstigationTick]:
    for state in instance.all_instigator_state():
        if state.name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


def test_a_real_daemon_drains_a_backlog_over_hundreds_of_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    app_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    app = AppContext(Settings(database_url=app_url))
    migrate.upgrade(app.engine)
    log = tmp_path / "daemon.log"
    daemon: subprocess.Popen[bytes] | None = None
    try:
        with dg.DagsterInstance.get() as instance:
            ids = _seed(app, instance)

            def open_rows() -> int:
                with app.sessions() as s:
                    stmt = select(func.count()).where(
                        OperationRun.id.in_(ids), OperationRun.status != "completed"
                    )
                    return int(s.scalar(stmt) or 0)

            def undelivered() -> int:
                with app.sessions() as s:
                    return outbox.count(s)

            env = {**os.environ, "DAGSTER_HOME": str(home), "OPSRECON_DATABASE_URL": app_url}
            env.pop("OPSRECON_STALE_THRESHOLDS", None)
            started = time.monotonic()
            daemon = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "dagster-daemon"),
                    "run",
                    "-w",
                    "workspace.yaml",
                ],
                cwd=ROOT,
                env=env,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _wait("every row decided", lambda: open_rows() == 0, daemon)
            _wait("every decision shown in Dagster", lambda: undelivered() == 0, daemon)
            print(
                f"{len(ids)} runs in {ENVIRONMENTS_N + DEAD_WORKERS} environments decided and "
                f"delivered {time.monotonic() - started:.0f} s after the daemon started"
            )
            ticks = _sensor_ticks(instance, "reconciliation_sensor")
            assert ticks, "the reconciliation sensor never ticked"
            failed = [t for t in ticks if t.status is TickStatus.FAILURE]
            assert failed == [], [t.error for t in failed][:3]
            # The tick history says what the deciding ticks did.
            said = [t.skip_reason or "" for t in ticks]
            assert any(r.startswith("decided ") and "shown in Dagster" in r for r in said), said
            assert disagreements(app, instance) == []
            standing = instance.get_runs(filters=dg.RunsFilter(tags={RUN_TAG: str(ids[-1])}))
            assert [r.status for r in standing] == [dg.DagsterRunStatus.FAILURE]
    finally:
        if daemon is not None and daemon.poll() is None:
            os.killpg(daemon.pid, 9)
            daemon.wait(timeout=60)
        app.dispose()
        text = log.read_text() if log.exists() else ""
        print(text[-3000:] if text else "no daemon log")
        assert "DEADLINE_EXCEEDED" not in text
