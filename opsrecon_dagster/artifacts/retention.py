"""Backup retention: after a successful backup, the schedule's sets beyond its
``retention_count`` are pruned by an operation run of their own (``backup.retention.prune``).

The newest ``retention_count`` sets are kept, and so is the newest complete set wherever it
stands (a run of failed backups never leaves the environment without one). A pruned set's
items are deleted; the set row stays, stamped with when and by which run, which is what the
proof rule reads. Only sets whose own backup run is final are pruned (an open run's set may
still be the proof its decision needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts import backup
from opsrecon_dagster.artifacts.common import Heartbeat, Proof, RunScope
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.db.models import BackupItem, BackupSet, OperationRun
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import BackupSetStatus, RunOutcome, RunStatus
from opsrecon_dagster.operations.context import Evidence, Progress
from opsrecon_dagster.providers.base import TenantProvider

KIND = "backup_retention"


@dataclass(frozen=True)
class RetentionPlan:
    """The schedule's sets as they stood before the run, and which of them are protected."""

    before: list[BackupSet]  # not pruned, or pruned by this run
    protected: set[int]  # the newest ``retention_count`` and the newest complete set
    excess: list[BackupSet]  # the others, existing when the run was created


def retention_plan(
    sets: Sequence[BackupSet], retention_count: int, run: RunRecord
) -> RetentionPlan:
    """Which of the schedule's sets the run keeps and which it may prune (oldest last)."""
    before = sorted(
        (s for s in sets if s.pruned_at is None or s.pruned_by_operation_run_id == run.id),
        key=lambda s: (s.created_at, s.id),
        reverse=True,
    )
    protected = {s.id for s in before[: max(retention_count, 0)]}
    complete = [s for s in before if s.status == BackupSetStatus.COMPLETE.value]
    if complete:
        protected.add(complete[0].id)
    excess = [s for s in before if s.id not in protected and s.created_at <= run.created_at]
    return RetentionPlan(before, protected, excess)


def precondition_blocker(view: ProofView, scope: RunScope) -> str | None:
    """Retention needs the backup's own preconditions: a schedule that is enabled."""
    return backup.precondition_blocker(view, scope)


def prune_backup_sets(
    sessions: sessionmaker[Session],
    scope: RunScope,
    _provider: TenantProvider,  # pruning never calls the provider
    heartbeat: Heartbeat,
) -> None:
    """Prune the sets beyond retention in one transaction: stamp the sets, delete their items."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        view, run, _scope = ProofView.for_run(session, scope.run_id)
        schedule = view.schedule(scope)
        if schedule is None:
            return
        plan = retention_plan(
            view.retention_sets(scope, schedule.id), schedule.retention_count, run
        )
        candidates = [s.id for s in plan.excess if s.pruned_at is None]
        final = (
            set(
                session.scalars(
                    select(BackupSet.id)
                    .join(OperationRun, OperationRun.id == BackupSet.operation_run_id)
                    .where(
                        BackupSet.id.in_(candidates),
                        OperationRun.status == RunStatus.COMPLETED.value,
                    )
                )
            )
            if candidates
            else set()
        )
        doomed = [i for i in candidates if i in final]
        if doomed:
            session.execute(delete(BackupItem).where(BackupItem.backup_set_id.in_(doomed)))
            session.execute(
                update(BackupSet)
                .where(BackupSet.id.in_(doomed), BackupSet.pruned_at.is_(None))
                .values(pruned_at=now, pruned_by_operation_run_id=run.id)
            )
    heartbeat(Progress(phase="pruned", counts={"sets_pruned": len(doomed)}))


def retention_proof(view: ProofView, run: RunRecord, scope: RunScope) -> Proof:
    """Decide from the schedule's sets as this run left them (same workspace, environment,
    schedule): succeeded when no set beyond retention is left and no protected set was
    pruned by this run; no proof while sets beyond retention remain."""
    schedule = view.schedule(scope)
    if schedule is None:
        return Proof(
            RunOutcome.BLOCKED, "backup_schedule_missing", scope.base_evidence(artifact_kind=KIND)
        )
    if run.status == RunStatus.QUEUED.value:  # never claimed by a worker: it did nothing
        return Proof(None, "retention_not_started", scope.base_evidence(artifact_kind=KIND))
    plan = retention_plan(view.retention_sets(scope, schedule.id), schedule.retention_count, run)
    mine = [s for s in plan.before if s.pruned_by_operation_run_id == run.id]
    left = [s for s in plan.excess if s.pruned_at is None]
    counts = {
        "retention_count": schedule.retention_count,
        "sets_kept": len(plan.before) - len(mine),
        "sets_pruned": len(mine),
        "sets_beyond_retention_left": len(left),
        "items_released": sum(s.item_count for s in mine),
    }
    ids, total = Evidence.capped_ids([s.id for s in mine])
    evidence = scope.base_evidence(
        artifact_kind=KIND, artifact_ids=ids, considered_total=total, counts=counts
    )
    if any(s.id in plan.protected for s in mine):
        return Proof(RunOutcome.FAILED, "retention_pruned_protected_set", evidence, counts)
    if left:
        return Proof(None, "retention_not_enforced", evidence, counts)
    return Proof(RunOutcome.SUCCEEDED, "retention_enforced", evidence, counts)
