"""The job path every artifact family follows (``run_job``).

A job marks its run running, does its work through the provider, then completes the run
with the outcome that its own proof (the rows it wrote, re-read in the run's scope)
supports. It never reports success from having merely finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import Proof, RunScope
from opsrecon_dagster.artifacts.families import RETENTION, Family
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.artifacts.readiness import ProviderWatch, record_provider_readiness
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.enums import Actor, RunOutcome, RunStatus
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import (
    Decision,
    Evidence,
    PreconditionCheck,
    Progress,
    RunContext,
    RunInputs,
)
from opsrecon_dagster.operations.keepalive import keep_alive
from opsrecon_dagster.operations.lifecycle import OperationRunService, TransitionStatus
from opsrecon_dagster.operations.outbox import DecisionEvent
from opsrecon_dagster.providers.base import TenantProvider

# How long a job's own decision is left to its worker to report before a deliverer shows it
# in Dagster: far longer than a step's report takes, and within the stale scan's reach of a
# dead worker (its heartbeat goes stale after the running threshold, 60 s by default).
JOB_REPORT_GRACE = timedelta(minutes=2)


class RunRefused(Exception):
    """The worker must not work on this operation run. The message names only ids, types,
    partitions and the row's decision, so it is safe for Dagster's log."""


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
    # The decision's outbox entry, for the worker to acknowledge once it has reported it.
    outbox_entry: int | None = None


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
    partition_key: str | None = None,
) -> JobReport:
    """The job path: guard, mark running, execute, decide from proof, complete (docs/decisions.md).

    Before any provider call the worker checks its row: a run of another type or another
    environment than this job and partition is refused, and so is a row that is already
    final or claimed by another Dagster run (``RunRefused``). The precondition check is
    recorded with the transition to running; a blocker completes the run ``blocked``
    without touching the provider. The provider is built inside the guarded section, so a
    provider that cannot even be configured still ends the run as ``failed``. What the
    provider answered sets the environment's readiness before the run completes
    (``artifacts/readiness.py``), so a 401/403 blocks the runs after it.
    """
    scope, blocker = claim_run(sessions, runs, family, run_id, dagster_run_id, partition_key)
    completion = _Completion(runs, family, run_id, scope.partition_key, dagster_run_id)
    if blocker is not None:
        evidence = scope.base_evidence(dagster_run_id=dagster_run_id)
        status = completion(RunOutcome.BLOCKED, blocker, evidence)
        return JobReport(
            run_id, RunOutcome.BLOCKED, blocker, {}, None, status, evidence, completion.entry
        )

    def heartbeat(progress: Progress) -> None:
        runs.heartbeat(run_id, progress)

    watch: ProviderWatch | None = None
    try:
        with keep_alive(lambda: runs.heartbeat(run_id)):
            watch = ProviderWatch(provider_factory())
            family.execute(sessions, scope, watch, heartbeat)
    except Exception:
        if watch is not None:
            record_provider_readiness(sessions, scope, watch.readiness())
        # An execution error is a truthful ``failed``; its text stays out of the row.
        completion(RunOutcome.FAILED, "job_execution_error", Evidence())
        raise
    record_provider_readiness(sessions, scope, watch.readiness())
    proof = read_proof(sessions, family, run_id)
    outcome = proof.outcome or RunOutcome.FAILED
    reason = proof.reason_code if proof.outcome else "job_finished_without_proof"
    evidence = proof.evidence.model_copy(update={"dagster_run_id": dagster_run_id})
    status = completion(outcome, reason, evidence)
    return JobReport(
        run_id,
        outcome,
        reason,
        proof.counts,
        proof.artifact_id,
        status,
        evidence,
        completion.entry,
    )


def enforce_retention(
    sessions: sessionmaker[Session],
    runs: OperationRunService,
    backup_run_id: int,
    provider_factory: Callable[[], TenantProvider],
) -> JobReport:
    """After a successful backup: prune the schedule's sets beyond retention as an operation
    run of its own (``backup.retention.prune``), decided from its proof like any job."""
    with sessions() as session:
        view, backup_run, scope = ProofView.for_run(session, backup_run_id)
        schedule = view.schedule(scope)
        inputs = RunInputs(
            trigger="backup", backup_schedule_id=schedule.id if schedule is not None else None
        )
        ws_id, env_id = backup_run.workspace_id, backup_run.managed_environment_id
    started = runs.start(
        OperationType.BACKUP_RETENTION_PRUNE,
        workspace_id=ws_id,
        environment_id=env_id,
        inputs=inputs,
        actor=Actor.JOB,
    )
    return run_job(sessions, runs, RETENTION, started.run.id, provider_factory, None)


def claim_run(
    sessions: sessionmaker[Session],
    runs: OperationRunService,
    family: Family,
    run_id: int,
    dagster_run_id: str | None,
    partition_key: str | None = None,
) -> tuple[RunScope, str | None]:
    """The worker guard and precondition check, before any provider call.

    Returns the run's scope and its blocker (None: go ahead); raises ``RunRefused`` when
    this worker must not touch the row.
    """
    with sessions() as session:
        view, run, scope = ProofView.for_run(session, run_id)
        _check_assignment(family, run, scope, partition_key)
        blocker = family.precondition(view, scope)
    check = PreconditionCheck(checked_at=datetime.now(UTC), blocker=blocker)
    marked = runs.mark_running(run_id, dagster_run_id, precondition=check)
    if marked.status not in (TransitionStatus.APPLIED, TransitionStatus.UNCHANGED):
        raise RunRefused(_refusal(marked.run))
    return scope, blocker


def _check_assignment(
    family: Family, run: OperationRun, scope: RunScope, partition_key: str | None
) -> None:
    if run.type != family.op_type.value:
        raise RunRefused(
            f"operation run {run.id} is a {run.type} run, not {family.op_type.value}: "
            "refused (launch it with its own job)"
        )
    if partition_key is not None and scope.partition_key != partition_key:
        raise RunRefused(
            f"operation run {run.id} belongs to partition {scope.partition_key}, not "
            f"{partition_key}: refused (launch it on its own partition)"
        )


def _refusal(run: OperationRun) -> str:
    if run.status == RunStatus.COMPLETED.value:
        return (
            f"operation run {run.id} is already final: {run.outcome} ({run.reason_code}); "
            "not worked on"
        )
    return (
        f"operation run {run.id} is {run.status} with Dagster run {run.dagster_run_id}; "
        "not worked on a second time"
    )


class _Completion:
    """The job's terminal write, with its decision's outbox entry in the same transaction:
    the worker reports the decision to Dagster itself and then acknowledges the entry; a
    worker that dies in between leaves the entry to the next delivery after a grace."""

    def __init__(
        self,
        runs: OperationRunService,
        family: Family,
        run_id: int,
        partition_key: str | None,
        dagster_run_id: str | None,
    ) -> None:
        self._runs, self._family, self._run_id = runs, family, run_id
        self._partition_key, self._dagster_run_id = partition_key, dagster_run_id
        self.entry: int | None = None

    def __call__(self, outcome: RunOutcome, reason: str, evidence: Evidence) -> TransitionStatus:
        decision = Decision(
            outcome=outcome,
            reason_code=reason,
            adapter=self._family.adapter,
            decided_by=Actor.JOB,
            decided_at=datetime.now(UTC),
            evidence=evidence,
        )
        return self._runs.complete(self._run_id, decision, then=self._enqueue).status

    def _enqueue(self, session: Session, run: OperationRun) -> None:
        """The row's standing decision (a correction's, when the report corrected one)."""
        standing = RunContext.load_or_empty(run.context).decision
        if standing is None:
            return
        if self._family.asset_key is None and self._dagster_run_id is None:
            return  # nothing in Dagster shows this run
        proven = standing.outcome in (RunOutcome.SUCCEEDED, RunOutcome.PARTIALLY_SUCCEEDED)
        event = DecisionEvent(
            operation_run_id=run.id,
            asset_key=self._family.asset_key,
            job=self._family.job,
            partition_key=self._partition_key,
            dagster_run_id=self._dagster_run_id,
            outcome=standing.outcome,
            reason_code=standing.reason_code,
            adapter=standing.adapter,
            decided_by=standing.decided_by,
            decided_at=standing.decided_at,
            materialize=proven and self._family.asset_key is not None,
            counts=standing.evidence.counts,
        )
        self.entry = outbox.enqueue_one(
            session, event, due_at=standing.decided_at + JOB_REPORT_GRACE
        )
