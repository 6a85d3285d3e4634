"""The demo: every artifact family through real Dagster executions, real faults, a real
killed worker, then reconciliation until nothing is left open.

It uses its own embedded state under ``data/demo`` (SQLite application database and a
persistent Dagster instance) and resets it on every run, so running it twice works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from sqlalchemy import select

from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.models import BackupSchedule, BaselineProfile, InventoryItem
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML, launch_operation_run
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.enums import Readiness
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.resources import AppDatabaseResource
from opsrecon_dagster.sensors.reconciliation import reconcile_batch
from opsrecon_dagster.settings import AppContext, Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace

DEMO_DIR = Path("data") / "demo"
# Short thresholds so the demo's stale runs go stale within seconds, not minutes.
QUEUED_STALE_SECONDS = 15
RUNNING_STALE_SECONDS = 2

TENANTS: list[tuple[str, str, Readiness]] = [
    ("acme", "contoso", Readiness.READY),
    ("acme", "fabrikam", Readiness.CONSENT_MISSING),
    ("acme", "northwind", Readiness.READY),
    ("globex", "contoso", Readiness.READY),
    ("globex", "hooli", Readiness.DISABLED),
    ("globex", "umbrella", Readiness.READY),
    ("globex", "stark", Readiness.READY),
]
TYPES = ["deviceConfigurations", "compliancePolicies", "appProtectionPolicies"]

Echo = Callable[[str], None]


@dataclass
class Case:
    """One demo scenario and the outcome the product must arrive at."""

    label: str
    op_type: OperationType
    partition: str
    expected: str
    run_id: int = 0


@dataclass(frozen=True)
class DemoRow:
    run_id: int
    label: str
    op_type: str
    environment: str
    expected: str
    decided: str
    reason: str
    decided_by: str


class Demo:
    """Drives the scenarios; each step prints progress."""

    def __init__(self, echo: Echo, data_dir: Path = DEMO_DIR) -> None:
        self.echo = echo
        self.data_dir = data_dir.resolve()
        self.home = self.data_dir / "dagster_home"
        self.db_url = f"sqlite:///{self.data_dir / 'opsrecon.sqlite3'}"
        thresholds = {
            t.value: {
                "queued_seconds": QUEUED_STALE_SECONDS,
                "running_seconds": RUNNING_STALE_SECONDS,
            }
            for t in OperationType
        }
        self.thresholds_json = json.dumps(thresholds)
        self.cases: list[Case] = []
        self.envs: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ setup
    def reset(self) -> None:
        existed = self.data_dir.exists()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.home.mkdir(parents=True)
        shutil.copy(PROJECT_DAGSTER_YAML, self.home / "dagster.yaml")
        verb = "reset (previous demo data removed)" if existed else "created"
        self.echo(f"[1/6] demo state {verb}: {self.data_dir}")
        os.environ["DAGSTER_HOME"] = str(self.home)
        os.environ["OPSRECON_DATABASE_URL"] = self.db_url
        os.environ["OPSRECON_STALE_THRESHOLDS"] = self.thresholds_json

    def seed(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        migrate.upgrade(app.engine)
        with app.sessions.begin() as s:
            for ws_slug, env_slug, readiness in TENANTS:
                ws = get_or_create_workspace(s, ws_slug, ws_slug.title())
                env = get_or_create_environment(s, ws, env_slug, env_slug.title(), readiness)
                self.envs[env.partition_key] = (ws.id, env.id)
            for key in ("acme.northwind", "globex.contoso", "globex.hooli"):
                ws_id, env_id = self.envs[key]
                s.add(
                    BackupSchedule(
                        workspace_id=ws_id,
                        managed_environment_id=env_id,
                        name="Nightly",
                        cron="0 2 * * *",
                        policy_types={"policy_types": TYPES},
                    )
                )
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", list(self.envs))
        self.echo(
            f"[2/6] seeded 2 workspaces, {len(self.envs)} environments "
            "(ready, consent missing, disabled), backup schedules, partitions"
        )

    def add_profiles(self, app: AppContext) -> None:
        """Baseline profiles, written once inventory exists (their subjects name items)."""
        with app.sessions.begin() as s:
            ws_id, env_id = self.envs["acme.northwind"]
            duplicated = s.scalars(
                select(InventoryItem.display_name)
                .where(
                    InventoryItem.managed_environment_id == env_id,
                    InventoryItem.policy_type == "deviceConfigurations",
                )
                .order_by(InventoryItem.id)
            ).first()
            subjects = [
                {"policy_type": "compliancePolicies"},
                {"policy_type": "deviceConfigurations", "display_name": duplicated},
                {"policy_type": "deviceConfigurations", "display_name": "Legacy Kiosk Lockdown"},
            ]
            s.add(
                BaselineProfile(
                    workspace_id=ws_id,
                    managed_environment_id=env_id,
                    name="Standard",
                    subjects={"subjects": subjects},
                )
            )
            ws_id, env_id = self.envs["acme.contoso"]
            s.add(
                BaselineProfile(
                    workspace_id=ws_id,
                    managed_environment_id=env_id,
                    name="Standard",
                    subjects={"subjects": [{"policy_type": "compliancePolicies"}]},
                )
            )

    # ------------------------------------------------------------------ helpers
    def start(self, app: AppContext, case: Case, inputs: RunInputs | None = None) -> Case:
        ws_id, env_id = self.envs[case.partition]
        started = app.runs.start(
            case.op_type, workspace_id=ws_id, environment_id=env_id, inputs=inputs
        )
        case.run_id = started.run.id
        self.cases.append(case)
        return case

    def launch(self, app: AppContext, instance: dg.DagsterInstance, case: Case) -> None:
        result = launch_operation_run(app, case.run_id, instance, log_level="WARNING")
        run = app.runs.get(case.run_id)
        self.echo(
            f"      {case.label:<44} Dagster {result.dagster_run.status.value:<8} -> {run.outcome}"
        )

    def subprocess_launch(self, run_id: int) -> subprocess.Popen[bytes]:
        """Launch a run in a separate worker process (``opsrecon operations launch``)."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsrecon_dagster.cli.main",
                "operations",
                "launch",
                str(run_id),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def reconcile(self, instance: dg.DagsterInstance, run_ids: list[int] | None = None) -> int:
        """One pass of the reconciliation sensor's code path; returns decisions written."""
        _results, events = reconcile_batch(
            instance, AppDatabaseResource(database_url=self.db_url), run_ids=run_ids
        )
        for event in events:
            instance.report_runless_asset_event(event)
        return len(events)

    # ------------------------------------------------------------------ scenario
    def run(self) -> list[DemoRow]:
        started = time.monotonic()
        self.reset()
        app = AppContext(Settings(self.db_url, self.thresholds_json))
        try:
            with dg.DagsterInstance.get() as instance:
                self.seed(app, instance)
                self._scenarios(app, instance)
                self._drain(app, instance)
                self._overview(instance)
            rows = self._rows(app)
        finally:
            app.dispose()
        self.echo(f"done in {time.monotonic() - started:.0f}s")
        return rows

    def _scenarios(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        C, Op = Case, OperationType  # short names keep the scenario table readable
        never = self.start(
            app,
            C("launch that never started", Op.BACKUP_SCHEDULE_EXECUTE, "globex.contoso", "failed"),
            RunInputs(scheduled_for=datetime(2026, 1, 1, 2, tzinfo=UTC), trigger="schedule"),
        )
        self.start(
            app, C("unsupported type gone stale", Op.RESTORE_EXECUTE, "acme.contoso", "failed")
        )
        self.echo(
            f"[3/6] queued run {never.run_id} that no worker will pick up, and an "
            "unsupported restore run"
        )
        self.echo("[4/6] real Dagster executions with the fixture provider's faults")
        in_process = [
            C("inventory: complete", Op.INVENTORY_SYNC, "acme.contoso", "succeeded"),
            C(
                "inventory: throttled type",
                Op.INVENTORY_SYNC,
                "acme.northwind",
                "partially_succeeded",
            ),
            C("inventory: consent missing", Op.INVENTORY_SYNC, "acme.fabrikam", "blocked"),
            C("inventory: complete", Op.INVENTORY_SYNC, "globex.contoso", "succeeded"),
            C(
                "backup: failed items",
                Op.BACKUP_SCHEDULE_EXECUTE,
                "acme.northwind",
                "partially_succeeded",
            ),
            C("backup: complete", Op.BACKUP_SCHEDULE_EXECUTE, "globex.contoso", "succeeded"),
            C(
                "backup: environment disabled",
                Op.BACKUP_SCHEDULE_EXECUTE,
                "globex.hooli",
                "blocked",
            ),
        ]
        for case in in_process:
            self.launch(app, instance, self.start(app, case))
        self.add_profiles(app)
        for case in (
            C("baseline: complete", Op.BASELINE_CAPTURE, "acme.contoso", "succeeded"),
            C(
                "baseline: gaps (missing, ambiguous, failed)",
                Op.BASELINE_CAPTURE,
                "acme.northwind",
                "partially_succeeded",
            ),
        ):
            self.launch(app, instance, self.start(app, case))
        with app.sessions() as s:
            ws_id, env_id = self.envs["acme.contoso"]
            fingerprint = current_fingerprint(s, ws_id, env_id)
        inputs = RunInputs(fingerprint=fingerprint)
        review = self.start(
            app,
            C("review: composed", Op.ENVIRONMENT_REVIEW_COMPOSE, "acme.contoso", "succeeded"),
            inputs,
        )
        again = app.runs.start(
            Op.ENVIRONMENT_REVIEW_COMPOSE,
            workspace_id=ws_id,
            environment_id=env_id,
            inputs=inputs.model_copy(update={"trigger": "schedule"}),
        )
        self.echo(
            f"      duplicate review trigger returned run {again.run.id} "
            f"(same as {review.run_id}: {again.run.id == review.run_id})"
        )
        self.launch(app, instance, review)

        self.echo("[5/6] worker processes: one killed mid-materialization, one finishing late")
        killed = self.start(
            app,
            C("worker killed mid-materialization", Op.INVENTORY_SYNC, "globex.umbrella", "failed"),
        )
        code = self.subprocess_launch(killed.run_id).wait(timeout=120)
        self.echo(
            f"      worker for run {killed.run_id} exited with signal {-code} "
            f"(row still {app.runs.get(killed.run_id).status})"
        )
        late = self.start(
            app,
            C(
                "late-finishing job (corrected once)",
                Op.INVENTORY_SYNC,
                "globex.stark",
                "succeeded",
            ),
        )
        worker = self.subprocess_launch(late.run_id)
        deadline = time.monotonic() + 60
        while app.runs.get(late.run_id).status != "completed" and time.monotonic() < deadline:
            self.reconcile(instance, [late.run_id])
            time.sleep(0.5)
        first = app.runs.get(late.run_id)
        self.echo(
            f"      reconciler finalized run {late.run_id} while its worker was still "
            f"busy: {first.outcome} ({first.reason_code})"
        )
        worker.wait(timeout=120)
        after = app.runs.get(late.run_id)
        self.echo(
            f"      the worker reported later with proof: {after.outcome} ({after.reason_code})"
        )

    def _drain(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        self.echo("[6/6] reconciliation until no run is left open")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = self.reconcile(instance)
            open_runs = [c for c in self.cases if app.runs.get(c.run_id).status != "completed"]
            if written:
                self.echo(f"      decided {written}; still open: {len(open_runs)}")
            if not open_runs:
                return
            time.sleep(1)
        self.echo("      gave up waiting for open runs")

    def _overview(self, instance: dg.DagsterInstance) -> None:
        from opsrecon_dagster.assets.overview import operations_overview

        dg.materialize(
            [operations_overview],
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            resources={"app_db": AppDatabaseResource(database_url=self.db_url)},
        )

    def _rows(self, app: AppContext) -> list[DemoRow]:
        from opsrecon_dagster.operations.context import RunContext

        rows = []
        for case in sorted(self.cases, key=lambda c: c.run_id):
            run = app.runs.get(case.run_id)
            decision = RunContext.load(run.context).decision
            rows.append(
                DemoRow(
                    case.run_id,
                    case.label,
                    case.op_type.value,
                    case.partition,
                    case.expected,
                    run.outcome or "-",
                    run.reason_code or "-",
                    decision.decided_by.value if decision else "-",
                )
            )
        return rows


def run_demo(echo: Echo, data_dir: Path = DEMO_DIR) -> list[DemoRow]:
    """Run the whole demo; returns one row per scenario with expected and decided outcome."""
    return Demo(echo, data_dir).run()
