"""The four artifact families and the job path every one of them follows.

A job marks its run running, does its work through the provider, then completes the run
with the outcome that its own proof (the rows it wrote, re-read in the run's scope)
supports. It never reports success from having merely finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts import backup, baseline, inventory, review
from opsrecon_dagster.artifacts.common import Heartbeat, Proof, RunScope, load_scope
from opsrecon_dagster.artifacts.proofview import ProofRule, ProofView
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, Progress
from opsrecon_dagster.operations.enums import Actor, RunOutcome
from opsrecon_dagster.operations.lifecycle import OperationRunService, TransitionStatus
from opsrecon_dagster.providers.base import TenantProvider

Execute = Callable[[sessionmaker[Session], RunScope, TenantProvider, Heartbeat], object]
ProofFn = ProofRule


@dataclass(frozen=True)
class Family:
    """One artifact family: its asset key, operation type, job step and proof rule."""

    asset_key: str
    op_type: OperationType
    adapter: str
    execute: Execute
    proof: ProofFn


def _compose(
    sessions: sessionmaker[Session], scope: RunScope, _p: TenantProvider, hb: Heartbeat
) -> object:
    return review.compose_review(sessions, scope, hb)  # composing never calls the provider


FAMILIES: dict[str, Family] = {
    f.asset_key: f
    for f in (
        Family(
            "inventory_items",
            OperationType.INVENTORY_SYNC,
            "inventory_sync",
            inventory.sync_inventory,
            inventory.inventory_proof,
        ),
        Family(
            "baseline_snapshots",
            OperationType.BASELINE_CAPTURE,
            "baseline_capture",
            baseline.capture_baseline,
            baseline.baseline_proof,
        ),
        Family(
            "backup_sets",
            OperationType.BACKUP_SCHEDULE_EXECUTE,
            "backup_schedule_execute",
            backup.execute_backup,
            backup.backup_proof,
        ),
        Family(
            "environment_reviews",
            OperationType.ENVIRONMENT_REVIEW_COMPOSE,
            "environment_review_compose",
            _compose,
            review.review_proof,
        ),
    )
}


@dataclass(frozen=True)
class JobReport:
    """What a job run did and decided, for Dagster metadata and logs (safe values only)."""

    operation_run_id: int
    outcome: RunOutcome
    reason_code: str
    counts: dict[str, int] = field(default_factory=dict)
    artifact_id: int | None = None
    recorded: TransitionStatus = TransitionStatus.APPLIED
    evidence: Evidence = field(default_factory=Evidence)


def read_proof(sessions: sessionmaker[Session], family: Family, run_id: int) -> Proof:
    """Re-read the run's proof in its own scope (the same rules the reconciler applies)."""
    with sessions() as session:
        view, run, scope = ProofView.for_run(session, run_id)
        return family.proof(view, run, scope)


def run_job(
    sessions: sessionmaker[Session],
    runs: OperationRunService,
    family: Family,
    run_id: int,
    provider_factory: Callable[[], TenantProvider],
    dagster_run_id: str | None,
) -> JobReport:
    """The job path: mark running, execute, decide from proof, complete (SPEC §5, §6).

    The provider is built inside the guarded section, so a provider that cannot even be
    configured still ends the run as ``failed`` rather than leaving it open.
    """
    runs.mark_running(run_id, dagster_run_id)
    with sessions() as session:
        run = session.get(OperationRun, run_id)
        if run is None:
            raise LookupError(f"operation run {run_id} not found")
        scope = load_scope(session, run)

    def heartbeat(progress: Progress) -> None:
        runs.heartbeat(run_id, progress)

    try:
        family.execute(sessions, scope, provider_factory(), heartbeat)
    except Exception:
        # An execution error is a truthful ``failed``; its text stays out of the row.
        _complete(runs, family, run_id, RunOutcome.FAILED, "job_execution_error", Evidence())
        raise
    proof = read_proof(sessions, family, run_id)
    outcome = proof.outcome or RunOutcome.FAILED
    reason = proof.reason_code if proof.outcome else "job_finished_without_proof"
    evidence = proof.evidence.model_copy(update={"dagster_run_id": dagster_run_id})
    status = _complete(runs, family, run_id, outcome, reason, evidence)
    return JobReport(run_id, outcome, reason, proof.counts, proof.artifact_id, status, evidence)


def _complete(
    runs: OperationRunService,
    family: Family,
    run_id: int,
    outcome: RunOutcome,
    reason: str,
    evidence: Evidence,
) -> TransitionStatus:
    decision = Decision(
        outcome=outcome,
        reason_code=reason,
        adapter=family.adapter,
        decided_by=Actor.JOB,
        decided_at=datetime.now(UTC),
        evidence=evidence,
    )
    return runs.complete(run_id, decision).status
