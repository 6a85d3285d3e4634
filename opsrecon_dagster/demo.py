"""The demo: every artifact family through real Dagster executions, real faults, a real
killed worker, then reconciliation until nothing is left open.

It uses the default data location ``data/`` that the CLI and ``tasks.py dev`` use too (the
SQLite application database ``data/opsrecon.sqlite3`` and the Dagster instance
``data/dagster_home``), and resets those on every run, so running it twice works and
``opsrecon runs list`` and the UI show its runs afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from sqlalchemy import select

from opsrecon_dagster import run_queue
from opsrecon_dagster.app import AppContext, dispose_shared, shared_app
from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.assets.overview import overview_job
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import DEFAULT_DATA_DIR, DEFAULT_SQLITE_FILE
from opsrecon_dagster.db.models import BackupSchedule, BaselineProfile, InventoryItem
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.instance.decisions import InstancePort
from opsrecon_dagster.jobs import JOB_BY_TYPE
from opsrecon_dagster.launch import (
    PROJECT_DAGSTER_YAML,
    in_process_job,
    in_process_resources,
    launch_operation_run,
)
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.operations.queries import list_runs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import DEFAULT_FIXTURE_FILE, FileGate
from opsrecon_dagster.reconciliation.reconciler import ReconcileResult
from opsrecon_dagster.reconciliation.service import deliver, reconcile_batch
from opsrecon_dagster.resources import FIXTURE_PATH_VAR
from opsrecon_dagster.settings import Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace

DEMO_DIR = DEFAULT_DATA_DIR
# What the demo owns in its data folder and removes on every run (nothing else there).
DEMO_STATE = (
    DEFAULT_SQLITE_FILE,
    f"{DEFAULT_SQLITE_FILE}-wal",
    f"{DEFAULT_SQLITE_FILE}-shm",
    "dagster_home",
    "tenants.json",
    "gates",
)
# The demo never waits for a threshold to pass on the wall clock: it asks the reconciler
# "as of" a later instant (the clock the sensors can be given), after it has made sure, by
# events (process exit, a file gate, Dagster run status), that the worker is where the
# scenario needs it. So an idle and a fully loaded machine give the same table.
LATER = timedelta(hours=2)  # past every type's running threshold, within the queue wait
WORKER_TIMEOUT_SECONDS = 600  # bounds for waiting on a worker event, not thresholds
PAUSED = ("globex.stark", "list_policies#2")  # the late finisher's gate (its pause_at)

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
        self.db_url = f"sqlite:///{self.data_dir / DEFAULT_SQLITE_FILE}"
        # The demo's database and the catalog's thresholds, in this process's language.
        self.settings = Settings(self.db_url, language=Settings.from_env().language)
        self.fixture_path = self.data_dir / "tenants.json"
        self.gates = self.data_dir / "gates"
        self.cases: list[Case] = []
        self.envs: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ setup
    def reset(self) -> None:
        dispose_shared()  # no pooled connection may outlive the files removed here
        existed = [self.data_dir / name for name in DEMO_STATE if (self.data_dir / name).exists()]
        for path in existed:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self.home.mkdir(parents=True)
        shutil.copy(PROJECT_DAGSTER_YAML, self.home / "dagster.yaml")
        verb = (
            "reset (the previous database and Dagster instance removed)" if existed else "created"
        )
        self.echo(f"[1/7] demo state {verb}: {self.data_dir}")
        # The packaged fixture tenants, with the gate folder of this demo's paused worker.
        fixture = json.loads(DEFAULT_FIXTURE_FILE.read_text())
        fixture["gate_dir"] = str(self.gates)
        self.fixture_path.write_text(json.dumps(fixture, indent=2))
        os.environ["DAGSTER_HOME"] = str(self.home)
        os.environ["OPSRECON_DATABASE_URL"] = self.db_url
        os.environ["OPSRECON_STALE_THRESHOLDS"] = ""  # the catalog's defaults
        os.environ[FIXTURE_PATH_VAR] = str(self.fixture_path)

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
            f"[2/7] seeded 2 workspaces, {len(self.envs)} environments "
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
        result = launch_operation_run(app, case.run_id, instance, log_level="CRITICAL")
        run = app.runs.get(case.run_id)
        self.echo(
            f"      {case.label:<44} Dagster {result.dagster_run.status.value:<8} -> {run.outcome}"
        )

    def subprocess_launch(self, run_id: int) -> subprocess.Popen[bytes]:
        """Execute a run in a separate worker process (``opsrecon operations launch
        --in-process``)."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsrecon_dagster.cli.main",
                "operations",
                "launch",
                "--in-process",  # this process is the worker the scenario kills or pauses
                str(run_id),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def reconcile(
        self,
        instance: dg.DagsterInstance,
        run_ids: list[int] | None = None,
        later: timedelta = LATER,
    ) -> list[ReconcileResult]:
        """One pass of the reconciliation sensor's code path, as of ``later`` from now, with
        this process's settings (its message language and thresholds) on the demo database."""
        app = shared_app(self.settings)
        port = InstancePort(instance, defs.resolve_job_def)
        now = datetime.now(UTC) + later
        results = reconcile_batch(app, port, now=now, run_ids=run_ids)
        deliver(app, port, now=now, run_ids=run_ids)
        return results

    # ------------------------------------------------------------------ scenario
    def run(self) -> list[DemoRow]:
        started = time.monotonic()
        self.reset()
        app = AppContext(self.settings)
        try:
            with dg.DagsterInstance.get() as instance:
                self.seed(app, instance)
                self._scenarios(app, instance)
                self._drain(app, instance)
                self._overview(app, instance)
            rows = self._rows(app)
        finally:
            app.dispose()
        self.echo(f"done in {time.monotonic() - started:.0f}s")
        return rows

    def _scenarios(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        self._unlaunched(app)
        self.echo("[4/7] real Dagster executions with the fixture provider's faults")
        for case in IN_PROCESS_CASES:
            self.launch(app, instance, self.start(app, replace(case)))
        self.add_profiles(app)
        for case in BASELINE_CASES:
            self.launch(app, instance, self.start(app, replace(case)))
        self._review(app, instance)
        self._queued(app, instance)
        self.echo("[6/7] worker processes: one killed mid-materialization, one finishing late")
        self._killed(app)
        self._late(app, instance)

    def _unlaunched(self, app: AppContext) -> None:
        never = self.start(
            app,
            Case("launch that never started", BACKUP, "globex.contoso", "failed"),
            RunInputs(scheduled_for=datetime(2026, 1, 1, 2, tzinfo=UTC), trigger="schedule"),
        )
        self.start(
            app,
            Case(
                "unsupported type gone stale",
                OperationType.RESTORE_EXECUTE,
                "acme.contoso",
                "failed",
            ),
        )
        self.echo(
            f"[3/7] queued run {never.run_id} that no worker will pick up, and an "
            "unsupported restore run"
        )

    def _review(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        ws_id, env_id = self.envs["acme.contoso"]
        with app.sessions() as s:
            fingerprint = current_fingerprint(s, ws_id, env_id)
        inputs = RunInputs(fingerprint=fingerprint)
        review = self.start(
            app, Case("review: composed", REVIEW, "acme.contoso", "succeeded"), inputs
        )
        again = app.runs.start(
            REVIEW,
            workspace_id=ws_id,
            environment_id=env_id,
            inputs=inputs.model_copy(update={"trigger": "schedule"}),
        )
        self.echo(
            f"      duplicate review trigger returned run {again.run.id} "
            f"(same as {review.run_id}: {again.run.id == review.run_id})"
        )
        self.launch(app, instance, review)

    def _queued(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        """A run waits in Dagster's run queue past the queued threshold, then runs."""
        case = self.start(
            app,
            Case("waited in Dagster's run queue, then ran", INVENTORY, "acme.contoso", "succeeded"),
            RunInputs(policy_types=["compliancePolicies"]),
        )
        job = in_process_job(app, JOB_BY_TYPE[INVENTORY.value].name)
        dagster_run_id = run_queue.enqueue(app, instance, job, case.run_id, case.partition)
        wait = app.catalog.get(INVENTORY).queued_stale_after + timedelta(minutes=1)
        [result] = self.reconcile(instance, [case.run_id], later=wait)
        verdict = result.verdict
        self.echo(
            f"[5/7] run {case.run_id} queued in Dagster as {dagster_run_id[:8]}; reconciled as "
            f"of {wait} later: {verdict.outcome or 'no decision'} ({verdict.reason_code})"
        )
        status = run_queue.dequeue(instance, job, dagster_run_id)
        run = app.runs.get(case.run_id)
        self.echo(
            f"      the queue started it: Dagster {status} -> {run.outcome} ({run.reason_code})"
        )

    def _killed(self, app: AppContext) -> None:
        killed = self.start(
            app, Case("worker killed mid-materialization", INVENTORY, "globex.umbrella", "failed")
        )
        code = self.subprocess_launch(killed.run_id).wait(timeout=WORKER_TIMEOUT_SECONDS)
        self.echo(
            f"      worker for run {killed.run_id} exited with signal {-code} "
            f"(row still {app.runs.get(killed.run_id).status})"
        )

    def _late(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        late = self.start(
            app, Case("late-finishing job (corrected once)", INVENTORY, PAUSED[0], "succeeded")
        )
        worker = self.subprocess_launch(late.run_id)
        gate = FileGate(self.gates, *PAUSED)
        try:
            if not gate.wait_reached(WORKER_TIMEOUT_SECONDS, alive=lambda: worker.poll() is None):
                self.echo(f"      worker for run {late.run_id} never reached its gate")
                return
            [result] = self.reconcile(instance, [late.run_id])
            self.echo(
                f"      worker for run {late.run_id} is paused mid-sync; reconciled as of {LATER} "
                f"later: {result.verdict.outcome} ({result.verdict.reason_code})"
            )
        finally:
            gate.release()
            worker.wait(timeout=WORKER_TIMEOUT_SECONDS)
        after = app.runs.get(late.run_id)
        self.echo(
            f"      the worker went on and reported with proof: {after.outcome} "
            f"({after.reason_code})"
        )

    def _drain(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        self.echo(f"[7/7] reconciliation as of {LATER} later, until no run is left open")
        for _ in range(5):  # each pass decides a whole batch; one is normally enough
            results = self.reconcile(instance)
            written = sum(r.status is TransitionStatus.APPLIED for r in results)
            open_runs = [c for c in self.cases if app.runs.get(c.run_id).status != "completed"]
            if written:
                self.echo(f"      decided {written}; still open: {len(open_runs)}")
            if not open_runs:
                return
        self.echo("      runs are still open after reconciliation")

    def _overview(self, app: AppContext, instance: dg.DagsterInstance) -> None:
        # Through the project's own definitions (already loaded), not a new ad-hoc set; the
        # whole job (an asset subset would rebuild it, refusing the demo's own resources).
        defs.resolve_job_def(overview_job.name).execute_in_process(
            instance=instance,
            resources=in_process_resources(app),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )

    def _rows(self, app: AppContext) -> list[DemoRow]:
        rows = []
        for case in sorted(self.cases + self._retention_cases(app), key=lambda c: c.run_id):
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

    def _retention_cases(self, app: AppContext) -> list[Case]:
        """The retention runs the successful backups started (their own operation runs)."""
        partitions = {env_id: partition for partition, (_ws, env_id) in self.envs.items()}
        with app.sessions() as session:
            runs = list_runs(session, op_type=RETENTION.value)
        return [
            Case(
                "backup: retention after the backup",
                RETENTION,
                partitions.get(run.managed_environment_id or 0, "-"),
                "succeeded",
                run.id,
            )
            for run in runs
        ]


def run_demo(echo: Echo, data_dir: Path = DEMO_DIR) -> list[DemoRow]:
    """Run the whole demo; returns one row per scenario with expected and decided outcome."""
    return Demo(echo, data_dir).run()


INVENTORY = OperationType.INVENTORY_SYNC
BACKUP = OperationType.BACKUP_SCHEDULE_EXECUTE
BASELINE = OperationType.BASELINE_CAPTURE
RETENTION = OperationType.BACKUP_RETENTION_PRUNE
REVIEW = OperationType.ENVIRONMENT_REVIEW_COMPOSE
IN_PROCESS_CASES = (
    Case("inventory: complete", INVENTORY, "acme.contoso", "succeeded"),
    Case("inventory: throttled type", INVENTORY, "acme.northwind", "partially_succeeded"),
    Case("inventory: consent missing", INVENTORY, "acme.fabrikam", "blocked"),
    Case("inventory: complete", INVENTORY, "globex.contoso", "succeeded"),
    Case("backup: failed items", BACKUP, "acme.northwind", "partially_succeeded"),
    Case("backup: complete", BACKUP, "globex.contoso", "succeeded"),
    Case("backup: environment disabled", BACKUP, "globex.hooli", "blocked"),
)
BASELINE_CASES = (
    Case("baseline: complete", BASELINE, "acme.contoso", "succeeded"),
    Case(
        "baseline: gaps (missing, ambiguous, failed)",
        BASELINE,
        "acme.northwind",
        "partially_succeeded",
    ),
)
