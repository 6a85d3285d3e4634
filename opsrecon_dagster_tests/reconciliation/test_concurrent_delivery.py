"""Four reconcilers at once, on both databases: two evaluating the real reconciliation sensor
tick after tick, two running ``opsrecon reconcile`` process after process, over 5,000 stale
runs in 5,000 environments. Every run is decided once, every decision is shown in Dagster
exactly once, no reconciler fails, and nothing is left in the outbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, insert, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.instance.decisions import STAND_IN_TAG
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML, initialize_instance
from opsrecon_dagster.operations import outbox
from opsrecon_dagster_tests.conftest import throwaway_database

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
RUNS = 5_000
LOOP = "opsrecon_dagster_tests.harness.reconcile_loop"
ASSET = dg.AssetKey("inventory_items")


@pytest.fixture
def home(app: AppContext, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """``$DAGSTER_HOME``: Dagster's SQLite default beside a SQLite application database,
    PostgreSQL storage (a throwaway database) beside a PostgreSQL one."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if app.url.get_backend_name() == "sqlite":
        shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
        yield home
        return
    server = request.getfixturevalue("postgres_server_url")
    for url in throwaway_database(server, "dagster_concurrent"):
        (home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {url}\ntelemetry:\n  enabled: false\n"
        )
        yield home


def _seed(app: AppContext) -> None:
    """One stale inventory sync per environment, never launched, stale for a day."""
    now = datetime.now(UTC)
    with app.engine.begin() as conn:
        ws_id = conn.execute(
            insert(Workspace).values(slug="many", name="many").returning(Workspace.id)
        ).scalar_one()
        conn.execute(
            insert(ManagedEnvironment),
            [
                {
                    "workspace_id": ws_id,
                    "slug": f"e{i}",
                    "name": f"e{i}",
                    "partition_key": f"many.e{i}",
                }
                for i in range(RUNS)
            ],
        )
        env_ids = conn.scalars(
            select(ManagedEnvironment.id).where(ManagedEnvironment.workspace_id == ws_id)
        ).all()
        at = now - timedelta(days=1)
        conn.execute(
            insert(OperationRun),
            [
                {
                    "workspace_id": ws_id,
                    "managed_environment_id": env_id,
                    "type": "inventory.sync",
                    "status": "queued",
                    "input_hash": f"{env_id:064x}",
                    "identity_key": f"{env_id:064x}",
                    "context": {},
                    "created_at": at,
                    "last_progress_at": at,
                    "stale_at": at,
                }
                for env_id in env_ids
            ],
        )


def test_four_reconcilers_decide_and_show_every_run_exactly_once(
    app: AppContext, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(app)
    # Dagster's storage is created once, before four processes open it at the same time
    # (two first opens of a fresh SQLite instance can both stamp its schema).
    initialize_instance(home)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OPSRECON_DATABASE_URL": app.url.render_as_string(hide_password=False),
    }
    env.pop("OPSRECON_STALE_THRESHOLDS", None)
    logs = [tmp_path / f"reconciler{i}.log" for i in range(4)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", LOOP, kind],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for kind, log in zip(("sensor", "cli", "sensor", "cli"), logs, strict=True)
    ]
    codes = [w.wait(timeout=900) for w in workers]
    outputs = [log.read_text() for log in logs]
    print("\n".join(o[-300:] for o in outputs))
    assert codes == [0, 0, 0, 0], [o[-2000:] for o in outputs]
    assert not any("Traceback" in o or "error" in o.lower() for o in outputs)

    with app.sessions() as session:
        open_rows = session.scalar(
            select(func.count()).select_from(OperationRun).where(OperationRun.status != "completed")
        )
        assert open_rows == 0
        assert outbox.count(session) == 0
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_observations(ASSET, limit=2 * RUNS).records
        seen = Counter(
            r.asset_observation.metadata["operation_run_id"].value  # type: ignore[union-attr]
            for r in records
        )
        assert len(seen) == RUNS and set(seen.values()) == {1}
        stand_ins = instance.get_runs(filters=dg.RunsFilter(tags={STAND_IN_TAG: "never_launched"}))
        assert stand_ins and {r.status for r in stand_ins} == {dg.DagsterRunStatus.FAILURE}
        checks: Counter[str | None] = Counter()
        for run in stand_ins:
            for record in instance.event_log_storage.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
            ).records:
                event = record.event_log_entry.dagster_event
                assert event is not None
                checks[event.event_specific_data.partition] += 1  # type: ignore[union-attr]
        assert len(checks) == RUNS and set(checks.values()) == {1}
        print(
            f"{RUNS} decisions, {len(stand_ins)} stand-in runs, one observation and one check each"
        )
