"""Reconciliation: finalize stale or orphaned runs from proof, in their own scope (SPEC §6).

One code path serves the sensor, the run-status sensor and ``opsrecon reconcile``:
select a bounded batch of open runs by index (skip-locked on PostgreSQL), read their proof,
decide, and write through the lifecycle service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import Proof
from opsrecon_dagster.artifacts.families import Family
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog, UnknownOperationType
from opsrecon_dagster.operations.context import Decision, Evidence
from opsrecon_dagster.operations.enums import Actor, RunOutcome, RunStatus
from opsrecon_dagster.operations.lifecycle import OperationRunService, TransitionStatus
from opsrecon_dagster.operations.queries import partition_keys
from opsrecon_dagster.reconciliation.dagster_view import ALIVE_STATUSES, DagsterView
from opsrecon_dagster.reconciliation.registry import (
    GENERIC_ADAPTER,
    AdapterRegistry,
    ProofAdapter,
)

ACTIVE = tuple(s.value for s in RunStatus.active())
DAGSTER_TERMINAL_REASONS = {
    "SUCCESS": "dagster_success_without_proof",
    "FAILURE": "dagster_run_failed_without_proof",
    "CANCELED": "dagster_run_canceled_without_proof",
}


@dataclass(frozen=True)
class RunFacts:
    """What is known about a run besides its artifacts."""

    stale: bool
    dagster_status: str | None
    materializations: int


@dataclass(frozen=True)
class Verdict:
    """An adapter's answer: an outcome with reason and evidence, or no decision yet."""

    outcome: RunOutcome | None
    reason_code: str
    adapter: str
    evidence: Evidence = field(default_factory=Evidence)


@dataclass(frozen=True)
class ReconcileResult:
    """One run's reconciliation, for the sensor (observations), the CLI and tests."""

    run_id: int
    op_type: str
    asset_key: str | None
    partition_key: str | None
    verdict: Verdict
    status: TransitionStatus | None  # None: dry run or no decision


def decide(
    family: Family | None, proof: Proof | None, run: OperationRun, facts: RunFacts
) -> Verdict:
    """The decision table shared by every adapter (SPEC §6).

    - alive and not stale: no decision yet;
    - proof decides when it exists (never success without it);
    - otherwise the Dagster run's end, a launch that never started, or staleness says failed.
    """
    adapter = family.adapter if family else GENERIC_ADAPTER
    dagster_ended = facts.dagster_status in DAGSTER_TERMINAL_REASONS
    if not facts.stale and not dagster_ended:
        return Verdict(None, "run_alive", adapter)
    if family is None:
        if not facts.stale:
            return Verdict(None, "run_alive", adapter)
        return Verdict(RunOutcome.FAILED, "unsupported_type_stale", adapter)
    assert proof is not None
    if proof.outcome is not None:
        return Verdict(proof.outcome, proof.reason_code, adapter, proof.evidence)
    if dagster_ended:
        reason = DAGSTER_TERMINAL_REASONS[facts.dagster_status or ""]
    elif run.status == RunStatus.QUEUED.value and run.dagster_run_id is None:
        reason = "queued_never_started"
    else:
        reason = "stale_without_proof"
    return Verdict(RunOutcome.FAILED, reason, adapter, proof.evidence)


class Reconciler:
    """Finds open runs that need a decision and finalizes them truthfully."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        runs: OperationRunService,
        dagster: DagsterView,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._sessions = sessions
        self._runs = runs
        self._dagster = dagster
        self._clock = clock or (lambda: datetime.now(UTC))
        self._registry = AdapterRegistry(runs.catalog)

    @property
    def catalog(self) -> OperationCatalog:
        return self._runs.catalog

    def reconcile(
        self,
        *,
        limit: int = 100,
        op_type: str | None = None,
        workspace_id: int | None = None,
        run_ids: Sequence[int] | None = None,
        dry_run: bool = False,
    ) -> list[ReconcileResult]:
        """Decide a bounded batch of open runs (stale ones, or exactly ``run_ids``)."""
        now = self._clock()
        results: list[ReconcileResult] = []
        with self._sessions() as session, session.begin():
            candidates = self._candidates(session, now, limit, op_type, workspace_id, run_ids)
            statuses = self._dagster.run_statuses(
                [r.dagster_run_id for r in candidates if r.dagster_run_id]
            )
            partitions = partition_keys(session, candidates)
            materialized = self._materializations(candidates, partitions)
            view = ProofView.load(session, candidates)  # a fixed number of queries per batch
            for run in candidates:
                result = self._one(
                    session, view, run, now, statuses, partitions, materialized, dry_run
                )
                results.append(result)
        return results

    # ------------------------------------------------------------------ selection
    def _candidates(
        self,
        session: Session,
        now: datetime,
        limit: int,
        op_type: str | None,
        workspace_id: int | None,
        run_ids: Sequence[int] | None,
    ) -> list[OperationRun]:
        stmt = select(OperationRun).where(OperationRun.status.in_(ACTIVE))
        if run_ids is not None:
            stmt = stmt.where(OperationRun.id.in_(list(run_ids)))
        else:
            # Stale by each type's own thresholds, so runs that are not yet stale never take
            # batch slots; the open-progress partial index serves the range conditions.
            entries = self.catalog.entries()
            stale = [
                and_(
                    OperationRun.type == e.type.value,
                    OperationRun.status == status,
                    OperationRun.last_progress_at < now - after,
                )
                for e in entries
                for status, after in (
                    (RunStatus.QUEUED.value, e.queued_stale_after),
                    (RunStatus.RUNNING.value, e.running_stale_after),
                )
            ]
            shortest = min(min(e.queued_stale_after, e.running_stale_after) for e in entries)
            unknown = and_(
                OperationRun.type.not_in([e.type.value for e in entries]),
                OperationRun.last_progress_at < now - shortest,
            )
            stmt = stmt.where(or_(*stale, unknown))
        if op_type:
            stmt = stmt.where(OperationRun.type == op_type)
        if workspace_id is not None:
            stmt = stmt.where(OperationRun.workspace_id == workspace_id)
        stmt = stmt.order_by(OperationRun.last_progress_at, OperationRun.id).limit(limit)
        # Two reconcilers never take the same rows (PostgreSQL; SQLite has one writer).
        stmt = stmt.with_for_update(skip_locked=True)
        return list(session.scalars(stmt).all())

    def _is_stale(self, run: OperationRun, now: datetime) -> bool:
        try:
            entry = self.catalog.get(run.type)
        except UnknownOperationType:
            return now - run.last_progress_at > min(
                e.running_stale_after for e in self.catalog.entries()
            )
        limit = (
            entry.queued_stale_after
            if run.status == RunStatus.QUEUED.value
            else entry.running_stale_after
        )
        return now - run.last_progress_at > limit

    def _materializations(
        self, runs: Sequence[OperationRun], partitions: dict[int, str]
    ) -> dict[int, int]:
        counts: dict[int, int] = {}
        for asset_key in {self._family_key(r) for r in runs} - {None}:
            assert asset_key is not None
            mine = [r for r in runs if self._family_key(r) == asset_key]
            keys = sorted(
                {
                    partitions[r.managed_environment_id]
                    for r in mine
                    if r.managed_environment_id in partitions
                }
            )
            counts.update(
                self._dagster.materialization_counts(asset_key, keys, [r.id for r in mine])
            )
        return counts

    def _family_key(self, run: OperationRun) -> str | None:
        adapter = self._registry.resolve(run.type)
        return adapter.family.asset_key if isinstance(adapter, ProofAdapter) else None

    # ------------------------------------------------------------------ one run
    def _one(
        self,
        session: Session,
        view: ProofView,
        run: OperationRun,
        now: datetime,
        statuses: Mapping[str, str],
        partitions: dict[int, str],
        materialized: dict[int, int],
        dry_run: bool,
    ) -> ReconcileResult:
        facts = RunFacts(
            stale=self._is_stale(run, now),
            dagster_status=statuses.get(run.dagster_run_id) if run.dagster_run_id else None,
            materializations=materialized.get(run.id, 0),
        )
        adapter = self._registry.resolve(run.type)
        family = adapter.family if isinstance(adapter, ProofAdapter) else None
        asset_key = family.asset_key if family else None
        partition = partitions.get(run.managed_environment_id or -1)
        verdict = self._verdict(view, run, family, facts)
        evidence = verdict.evidence.model_copy(
            update={
                "workspace_id": run.workspace_id,
                "managed_environment_id": run.managed_environment_id,
                "dagster_run_id": run.dagster_run_id,
                "dagster_run_status": facts.dagster_status,
                "materialization_count": facts.materializations,
            }
        )
        verdict = Verdict(verdict.outcome, verdict.reason_code, verdict.adapter, evidence)
        status: TransitionStatus | None = None
        if verdict.outcome is not None and not dry_run:
            decision = Decision(
                outcome=verdict.outcome,
                reason_code=verdict.reason_code,
                adapter=verdict.adapter,
                decided_by=Actor.RECONCILER,
                decided_at=now,
                evidence=evidence,
            )
            status = self._runs.reconcile_in(session, run.id, decision).status
        return ReconcileResult(run.id, run.type, asset_key, partition, verdict, status)

    def _verdict(
        self, view: ProofView, run: OperationRun, family: Family | None, facts: RunFacts
    ) -> Verdict:
        """Decide one run; a malformed row is finalized with a reason, never fails the batch."""
        if family is None:
            return decide(None, None, run, facts)
        try:
            scope = view.scope(run)
        except ValidationError:
            return self._broken(run, facts, family, "run_context_invalid")
        except ValueError:
            return self._broken(run, facts, family, "run_scope_invalid")
        return decide(family, family.proof(view, run, scope), run, facts)

    @staticmethod
    def _broken(run: OperationRun, facts: RunFacts, family: Family, reason: str) -> Verdict:
        if not facts.stale and facts.dagster_status in ALIVE_STATUSES:
            return Verdict(None, "run_alive", family.adapter)
        return Verdict(RunOutcome.FAILED, reason, family.adapter)
