"""Backup retention: after each successful backup, sets beyond the schedule's
``retention_count`` are pruned by a ``backup.retention.prune`` run of its own, decided from
its proof, audited, and never removing the newest complete set or an open run's set."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import RunScope
from opsrecon_dagster.artifacts.execution import run_job
from opsrecon_dagster.artifacts.families import RETENTION
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.artifacts.retention import retention_plan, retention_proof
from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.db.models import AuditLog, BackupItem, BackupSchedule, BackupSet, OperationRun
from opsrecon_dagster.enums import Actor
from opsrecon_dagster.instance.decisions import InstancePort
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.reconciliation.service import reconcile_batch
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster_tests.conftest import Scope, add_schedule

PRUNE = OperationType.BACKUP_RETENTION_PRUNE.value
BACKUP_ASSET = ARTIFACT_ASSETS[2]


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({}))
    return path


def _schedule(app: AppContext, scope: Scope, keep: int) -> int:
    schedule_id = add_schedule(app, scope)
    with app.sessions.begin() as s:
        s.execute(
            update(BackupSchedule)
            .where(BackupSchedule.id == schedule_id)
            .values(retention_count=keep)
        )
    return schedule_id


def _backup(
    app: AppContext, instance: dg.DagsterInstance, fixture_file: Path, scope: Scope
) -> dg.ExecuteInJobResult:
    if not instance.has_dynamic_partition(ENVIRONMENTS.name or "", scope.partition_key):
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    return dg.materialize(
        [BACKUP_ASSET],
        partition_key=scope.partition_key,
        instance=instance,
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "provider": ProviderResource(fixture_path=str(fixture_file)),
        },
    )


def _sets(app: AppContext) -> list[BackupSet]:
    with app.sessions() as s:
        return list(s.scalars(select(BackupSet).order_by(BackupSet.id)))


def _items(app: AppContext, set_id: int) -> int:
    with app.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(BackupItem)
                .where(BackupItem.backup_set_id == set_id)
            )
            or 0
        )


def _runs(app: AppContext, op_type: str) -> list[OperationRun]:
    with app.sessions() as s:
        return list(
            s.scalars(select(OperationRun).where(OperationRun.type == op_type).order_by("id"))
        )


def test_retention_prunes_beyond_the_count_as_its_own_audited_run(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, fixture_file: Path
) -> None:
    _schedule(app, scope, keep=2)
    results = [_backup(app, instance, fixture_file, scope) for _ in range(4)]
    sets = _sets(app)
    assert [s.status for s in sets] == ["complete"] * 4
    prunes = _runs(app, PRUNE)
    assert len(prunes) == 4  # one after each successful backup
    assert {(r.outcome, r.reason_code) for r in prunes} == {("succeeded", "retention_enforced")}
    # The two oldest sets were pruned, each by the retention run after the backup that
    # pushed it beyond the count; their items are gone, the set rows stay as the record.
    assert [s.pruned_by_operation_run_id for s in sets] == [prunes[2].id, prunes[3].id, None, None]
    assert [_items(app, s.id) for s in sets] == [0, 0, 13, 13]  # 6 + 4 + 3 objects
    evidence = RunContext.load_or_empty(prunes[3].context).decision
    assert evidence is not None
    assert evidence.evidence.counts["sets_pruned"] == 1
    assert evidence.evidence.counts["sets_kept"] == 2
    assert evidence.evidence.counts["items_released"] == 13
    assert evidence.evidence.artifact_ids == [sets[1].id]
    assert evidence.decided_by is Actor.JOB
    with app.sessions() as s:
        audited = s.scalars(
            select(AuditLog.operation_run_id).where(AuditLog.operation_run_id == prunes[3].id)
        ).all()
    assert audited  # its transitions are audited like any run's
    # The backup's materialization says what retention did.
    [event] = results[3].get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["retention_run_id"].value == prunes[3].id
    assert metadata["sets_pruned"].value == 1
    # The backups themselves are untouched by their retention runs.
    backups = _runs(app, OperationType.BACKUP_SCHEDULE_EXECUTE.value)
    assert {(r.outcome, r.reason_code) for r in backups} == {
        ("succeeded", "backup_all_items_captured")
    }


def _set(session_app: AppContext, scope: Scope, schedule_id: int, status: str, age: int) -> int:
    """A backup set of a completed backup run, ``age`` hours old."""
    run = session_app.runs.start(
        OperationType.BACKUP_SCHEDULE_EXECUTE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(backup_schedule_id=schedule_id, trigger=f"t{age}"),
    ).run
    with session_app.sessions.begin() as s:
        s.execute(update(OperationRun).where(OperationRun.id == run.id).values(status="completed"))
        row = BackupSet(
            backup_schedule_id=schedule_id,
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            operation_run_id=run.id,
            status=status,
            item_count=1,
            created_at=datetime.now(UTC) - timedelta(hours=age),
        )
        s.add(row)
        s.flush()
        s.add(BackupItem(backup_set_id=row.id, policy_type="t", external_id="x", status="captured"))
        return row.id


def _prune_run(app: AppContext, scope: Scope, schedule_id: int) -> int:
    return app.runs.start(
        OperationType.BACKUP_RETENTION_PRUNE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(backup_schedule_id=schedule_id, trigger="backup"),
        actor=Actor.JOB,
    ).run.id


def _run_retention(app: AppContext, run_id: int) -> None:
    run_job(app.sessions, app.runs, RETENTION, run_id, FixtureTenantProvider, None)


def test_the_newest_complete_set_is_kept_wherever_it_stands(app: AppContext, scope: Scope) -> None:
    schedule_id = _schedule(app, scope, keep=1)
    complete = _set(app, scope, schedule_id, "complete", age=5)
    older = _set(app, scope, schedule_id, "partial", age=6)
    partials = [_set(app, scope, schedule_id, "partial", age=a) for a in (3, 2, 1)]
    run_id = _prune_run(app, scope, schedule_id)
    _run_retention(app, run_id)
    pruned = {s.id for s in _sets(app) if s.pruned_at is not None}
    assert pruned == {older, partials[0], partials[1]}  # kept: the newest, the newest complete
    assert complete not in pruned and partials[2] not in pruned
    assert (app.runs.get(run_id).outcome, app.runs.get(run_id).reason_code) == (
        "succeeded",
        "retention_enforced",
    )


def test_a_set_of_an_open_run_is_not_pruned_and_the_run_says_so(
    app: AppContext, scope: Scope
) -> None:
    schedule_id = _schedule(app, scope, keep=1)
    old = _set(app, scope, schedule_id, "complete", age=3)
    _set(app, scope, schedule_id, "complete", age=1)
    with app.sessions.begin() as s:  # the old set's backup run is still open
        run_of_old = s.scalar(select(BackupSet.operation_run_id).where(BackupSet.id == old))
        s.execute(
            update(OperationRun).where(OperationRun.id == run_of_old).values(status="running")
        )
    run_id = _prune_run(app, scope, schedule_id)
    _run_retention(app, run_id)
    assert _items(app, old) == 1 and all(s.pruned_at is None for s in _sets(app))
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("failed", "job_finished_without_proof")


def test_the_proof_fails_a_run_that_pruned_a_protected_set(app: AppContext, scope: Scope) -> None:
    schedule_id = _schedule(app, scope, keep=1)
    _set(app, scope, schedule_id, "complete", age=2)
    newest = _set(app, scope, schedule_id, "complete", age=1)
    run_id = _prune_run(app, scope, schedule_id)
    app.runs.mark_running(run_id, None)
    with app.sessions.begin() as s:  # as a faulty prune would have done
        s.execute(
            update(BackupSet)
            .where(BackupSet.id == newest)
            .values(pruned_at=datetime.now(UTC), pruned_by_operation_run_id=run_id)
        )
    with app.sessions() as s:
        view, run, run_scope = ProofView.for_run(s, run_id)
        proof = retention_proof(view, run, run_scope)
    assert (proof.outcome, proof.reason_code) == ("failed", "retention_pruned_protected_set")


def test_a_worker_that_died_after_pruning_is_proven_by_the_reconciler(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance
) -> None:
    schedule_id = _schedule(app, scope, keep=1)
    old = _set(app, scope, schedule_id, "complete", age=2)
    _set(app, scope, schedule_id, "complete", age=1)
    run_id = _prune_run(app, scope, schedule_id)
    app.runs.mark_running(run_id, None)
    RETENTION.execute(app.sessions, _scope_of(app, run_id), FixtureTenantProvider(), _no_beat)
    # ... and the worker died before completing its row: the reconciler decides from proof.
    reconcile_batch(app, InstancePort(instance), now=datetime.now(UTC) + timedelta(hours=1))
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("succeeded", "retention_enforced")
    decision = RunContext.load_or_empty(run.context).decision
    assert decision is not None and decision.decided_by is Actor.RECONCILER
    assert decision.adapter == "backup_retention_prune"
    assert {s.id for s in _sets(app) if s.pruned_at is not None} == {old}


def test_retention_plan_orders_by_age_and_protects() -> None:
    now = datetime.now(UTC)
    run = OperationRun(id=99, created_at=now)
    sets = [
        BackupSet(id=i, status=status, created_at=now - timedelta(hours=age), pruned_at=None)
        for i, status, age in [(1, "complete", 4), (2, "failed", 3), (3, "failed", 2)]
    ]
    plan = retention_plan(sets, 1, run)
    assert plan.protected == {3, 1} and [s.id for s in plan.excess] == [2]
    assert retention_plan(sets, 0, run).protected == {1}  # 0 still keeps the newest complete


def _scope_of(app: AppContext, run_id: int) -> RunScope:
    with app.sessions() as s:
        return ProofView.for_run(s, run_id)[2]


def _no_beat(_progress: object) -> None:
    pass
