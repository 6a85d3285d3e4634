"""The demo: a fresh embedded database, seeded tenants, and runs through the lifecycle service.

It resets its own SQLite file under ``data/demo`` each time, so running it twice works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsrecon_dagster.db import migrate
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, RunInputs
from opsrecon_dagster.operations.enums import Actor, Readiness, RunOutcome
from opsrecon_dagster.settings import AppContext, Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace

DEMO_DIR = Path("data") / "demo"

TENANTS = {
    "acme": [("contoso", Readiness.READY), ("fabrikam", Readiness.CONSENT_MISSING)],
    "globex": [("contoso", Readiness.READY), ("initech", Readiness.DISABLED)],
}


@dataclass(frozen=True)
class DemoRow:
    run_id: int
    op_type: str
    environment: str
    expected: str
    decided: str
    reason: str


def _decision(outcome: RunOutcome, reason: str, actor: Actor, **evidence: int) -> Decision:
    return Decision(
        outcome=outcome,
        reason_code=reason,
        adapter="demo",
        decided_by=actor,
        decided_at=datetime.now(UTC),
        evidence=Evidence(counts=evidence),
    )


def run_demo(echo: Callable[[str], None], data_dir: Path = DEMO_DIR) -> list[DemoRow]:
    """Seed tenants, drive runs through every lifecycle path, return what was decided."""
    db_file = data_dir / "opsrecon.sqlite3"
    existed = db_file.exists()
    for leftover in data_dir.glob("opsrecon.sqlite3*"):
        leftover.unlink()
    echo(f"{'reset' if existed else 'created'} demo database {db_file}")
    app = AppContext(Settings(database_url=f"sqlite:///{db_file}"))
    try:
        migrate.upgrade(app.engine)
        envs: dict[str, tuple[int, int]] = {}
        with app.sessions.begin() as session:
            for ws_slug, environments in TENANTS.items():
                ws = get_or_create_workspace(session, ws_slug)
                for env_slug, readiness in environments:
                    env = get_or_create_environment(session, ws, env_slug, readiness=readiness)
                    envs[env.partition_key] = (ws.id, env.id)
        echo(f"seeded {len(TENANTS)} workspaces, {len(envs)} managed environments")

        rows: list[DemoRow] = []

        def start(op: OperationType, key: str, types: list[str]) -> int:
            ws_id, env_id = envs[key]
            inputs = RunInputs(policy_types=types)
            return app.runs.start(
                op, workspace_id=ws_id, environment_id=env_id, inputs=inputs
            ).run.id

        # 1. A job that finishes normally reports its own outcome.
        ok = start(OperationType.INVENTORY_SYNC, "acme.contoso", ["deviceConfigurations"])
        app.runs.mark_running(ok, None)
        app.runs.complete(ok, _decision(RunOutcome.SUCCEEDED, "demo_job_reported", Actor.JOB))
        rows.append(DemoRow(ok, "inventory.sync", "acme.contoso", "succeeded", "", ""))

        # 2. A second trigger of the same operation returns the active run instead of a new one.
        first = start(OperationType.BASELINE_CAPTURE, "globex.contoso", [])
        dup = start(OperationType.BASELINE_CAPTURE, "globex.contoso", [])
        echo(f"duplicate trigger of run {first} returned run {dup} (deduped: {first == dup})")
        app.runs.complete(first, _decision(RunOutcome.BLOCKED, "demo_precondition", Actor.JOB))
        rows.append(DemoRow(first, "baseline.capture", "globex.contoso", "blocked", "", ""))

        # 3. The reconciler finalizes first; the job's late report cannot overwrite it.
        late = start(OperationType.POLICY_SYNC, "acme.fabrikam", ["x"])
        app.runs.reconcile(late, _decision(RunOutcome.FAILED, "demo_stale", Actor.RECONCILER))
        again = app.runs.reconcile(
            late, _decision(RunOutcome.FAILED, "demo_stale", Actor.RECONCILER)
        )
        lost = app.runs.complete(late, _decision(RunOutcome.SUCCEEDED, "demo_late", Actor.JOB))
        echo(f"repeat reconcile of run {late}: {again.status}; late job report: {lost.status}")
        rows.append(DemoRow(late, "policy.sync", "acme.fabrikam", "failed", "", ""))

        final = []
        for row in rows:
            run = app.runs.get(row.run_id)
            final.append(
                DemoRow(
                    row.run_id,
                    row.op_type,
                    row.environment,
                    row.expected,
                    run.outcome or "-",
                    run.reason_code or "-",
                )
            )
        return final
    finally:
        app.dispose()
