"""Reconciliation: finalize stale or orphaned runs from proof, in their own scope
(docs/decisions.md).

One code path serves the sensor, the run-status sensors and ``opsrecon reconcile``:
select a bounded batch of open runs by index (skip-locked on PostgreSQL), ask Dagster
whether their runs are alive, read their proof, decide, and write through the lifecycle
service. Every candidate is read and decided on its own: a row that cannot be read is
finalized ``failed`` with its own reason and never stops the rest of the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, defer, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from opsrecon_dagster.artifacts.common import Proof
from opsrecon_dagster.artifacts.families import Family
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.db.models import ACTIVE_RUN, OperationRun
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.context import Decision, Evidence, RunContext
from opsrecon_dagster.operations.lifecycle import OperationRunService, TransitionStatus
from opsrecon_dagster.operations.queries import partition_keys, superseded_runs
from opsrecon_dagster.operations.staleness import (
    DagsterRunInfo,
    Liveness,
    StalenessRule,
    liveness,
)
from opsrecon_dagster.reconciliation.dagster_view import DagsterView
from opsrecon_dagster.reconciliation.registry import (
    GENERIC_ADAPTER,
    AdapterRegistry,
    ProofAdapter,
)

logger = logging.getLogger(__name__)

DAGSTER_TERMINAL_REASONS = {
    "SUCCESS": "dagster_success_without_proof",
    "FAILURE": "dagster_run_failed_without_proof",
    "CANCELED": "dagster_run_canceled_without_proof",
}


# Margin for clocks of different machines when comparing Dagster event times with rows.
CLOCK_SKEW = timedelta(minutes=5)

NO_PROOF_REASONS = {
    Liveness.QUEUE_WAIT_EXCEEDED: "dagster_queue_wait_exceeded",
    Liveness.NEVER_STARTED: "queued_never_started",
    Liveness.STALE: "stale_without_proof",
}


@dataclass(frozen=True)
class RunFacts:
    """What is known about a run besides its artifacts."""

    liveness: Liveness
    dagster: DagsterRunInfo | None = None
    # The outcome each Dagster materialization naming this run reports.
    materialized: tuple[str, ...] = ()
    stale: bool = False  # by the database rule alone (no Dagster knowledge)
    superseded: bool = False  # a newer run of the same type exists in the same environment

    @property
    def dagster_status(self) -> str | None:
        return self.dagster.status if self.dagster else None

    @property
    def materializations(self) -> int:
        return len(self.materialized)


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
    """The decision table shared by every adapter (docs/decisions.md).

    - alive, or waiting in Dagster's run queue: no decision yet;
    - proof decides when it exists (never success without it), unless a materialization
      names the run with another outcome: then it fails closed;
    - a materialization that names the run without proof behind it fails closed;
    - otherwise the Dagster run's end, a queue wait past its limit, a launch that never
      started, or staleness says ``failed``.
    """
    adapter = family.adapter if family else GENERIC_ADAPTER
    if not facts.liveness.decidable:
        waiting = facts.liveness is Liveness.WAITING
        return Verdict(None, "run_waiting_in_queue" if waiting else "run_alive", adapter)
    if family is None:
        # No proof adapter: only staleness decides (a Dagster run's end proves nothing).
        if facts.liveness is Liveness.ENDED and not facts.stale:
            return Verdict(None, "run_alive", adapter)
        return Verdict(RunOutcome.FAILED, "unsupported_type_stale", adapter)
    assert proof is not None
    if proof.outcome is not None:
        if any(reported != proof.outcome.value for reported in facts.materialized):
            return Verdict(
                RunOutcome.FAILED, "materialization_disagrees_with_proof", adapter, proof.evidence
            )
        return Verdict(proof.outcome, proof.reason_code, adapter, proof.evidence)
    if facts.materialized:
        return Verdict(RunOutcome.FAILED, "materialization_without_proof", adapter, proof.evidence)
    if facts.liveness is Liveness.ENDED:
        reason = DAGSTER_TERMINAL_REASONS[facts.dagster_status or "FAILURE"]
    else:
        reason = NO_PROOF_REASONS[facts.liveness]
    return Verdict(RunOutcome.FAILED, reason, adapter, proof.evidence)


@dataclass(frozen=True)
class _Batch:
    """What one batch of candidates is decided from (``Reconciler._gather``)."""

    contexts: dict[int, RunContext]
    unreadable: set[int]  # rows whose stored context cannot be read (poison rows)
    partitions: dict[int, str]  # environment id -> partition key
    dagster: dict[int, DagsterRunInfo]  # operation run id -> its Dagster run
    facts: dict[int, RunFacts]
    view: ProofView


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
        self._rule = StalenessRule(runs.catalog)

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
        with self._sessions() as session, session.begin():
            candidates, texts = self._candidates(
                session, now, limit, op_type, workspace_id, run_ids
            )
            batch = self._gather(session, candidates, texts, now)
            verdicts = {
                run.id: self._with_evidence(
                    run,
                    batch.facts[run.id],
                    self._verdict(batch.view, run, batch.facts[run.id], run.id in batch.unreadable),
                )
                for run in candidates
            }
            written = (
                {}
                if dry_run
                else self._write(
                    session,
                    candidates,
                    batch.contexts,
                    batch.facts,
                    verdicts,
                    batch.partitions,
                    # "As of" (the clock) only decides liveness: a decision is stamped
                    # with the time it is really written, so nothing stored is later than
                    # the wall clock and "latest" means latest everywhere.
                    datetime.now(UTC),
                )
            )
            results = [
                ReconcileResult(
                    run.id,
                    run.type,
                    self._family_key(run),
                    batch.partitions.get(run.managed_environment_id or -1),
                    verdicts[run.id],
                    written.get(run.id),
                )
                for run in candidates
            ]
            if not dry_run:
                self._observe(session, candidates, batch, verdicts, now)
        return results

    def _gather(
        self,
        session: Session,
        candidates: list[OperationRun],
        texts: Mapping[int, str | None],
        now: datetime,
    ) -> _Batch:
        """Everything a batch is decided from: stored contexts (``texts``: as read with the
        candidates), partitions, what Dagster knows (runs and materializations),
        supersession, and the batched proof view."""
        contexts = self._load_contexts(candidates, texts)
        unreadable = {r.id for r in candidates} - contexts.keys()
        partitions = partition_keys(session, candidates)
        dagster = self._dagster_runs(candidates, partitions)
        readable = [r for r in candidates if r.id not in unreadable]
        materialized = self._materializations(readable, partitions)
        superseded = superseded_runs(session, candidates)
        facts = {
            r.id: self._facts(
                r, dagster.get(r.id), now, materialized.get(r.id, ()), r.id in superseded
            )
            for r in candidates
        }
        view = ProofView.load(session, readable)  # a fixed number of queries per batch
        return _Batch(contexts, unreadable, partitions, dagster, facts, view)

    def _observe(
        self,
        session: Session,
        candidates: list[OperationRun],
        batch: _Batch,
        verdicts: Mapping[int, Verdict],
        now: datetime,
    ) -> None:
        """Record Dagster runs found for rows without a link, and when each undecided row
        is to be looked at again (out of the backlog's front until it could be decided)."""
        self._runs.observe_dagster_in(
            session,
            links={
                r.id: info.run_id
                for r in candidates
                if r.dagster_run_id is None and (info := batch.dagster.get(r.id)) is not None
            },
            revisit={
                r.id: self._rule.next_look(r, batch.facts[r.id].dagster, now)
                for r in candidates
                if verdicts[r.id].outcome is None
            },
        )

    # ------------------------------------------------------------------ selection
    def _candidates(
        self,
        session: Session,
        now: datetime,
        limit: int,
        op_type: str | None,
        workspace_id: int | None,
        run_ids: Sequence[int] | None,
    ) -> tuple[list[OperationRun], dict[int, str | None]]:
        """The batch's rows (locked), and each one's stored context as text."""
        stmt = (
            # The context is read as text beside the row, not by the driver, so a malformed
            # one cannot break the batch (``_load_contexts`` parses it defensively).
            select(OperationRun, cast(OperationRun.context, Text))
            # Literal, as in the open-rows index's own predicate (bound parameters would keep
            # SQLite from using that partial index).
            .where(ACTIVE_RUN)
            .options(defer(OperationRun.context))
        )
        if run_ids is not None:
            stmt = stmt.where(OperationRun.id.in_(list(run_ids)))
        else:
            # Due by the stored stale time (the one staleness rule): exactly the batch, read
            # in order from the partial index, whatever the backlog and the history.
            stmt = stmt.where(self._rule.sql(now))
        if op_type:
            stmt = stmt.where(OperationRun.type == op_type)
        if workspace_id is not None:
            stmt = stmt.where(OperationRun.workspace_id == workspace_id)
        stmt = stmt.order_by(OperationRun.stale_at, OperationRun.id).limit(limit)
        # Two reconcilers never take the same rows (PostgreSQL; SQLite has one writer).
        stmt = stmt.with_for_update(skip_locked=True)
        rows = session.execute(stmt).all()
        return [run for run, _ in rows], {run.id: text for run, text in rows}

    @staticmethod
    def _load_contexts(
        runs: Sequence[OperationRun], texts: Mapping[int, str | None]
    ) -> dict[int, RunContext]:
        """Parse every candidate's context text defensively (bounded size and depth first);
        returns the parsed ones (a missing id: not a context the product wrote)."""
        parsed: dict[int, RunContext] = {}
        for run in runs:
            found = RunContext.parse_stored_text(texts.get(run.id))
            if found is not None:
                parsed[run.id] = found[0]
            # Mirror the context as parsed (the JSON that validated as ``found[0]``; when
            # unreadable, an empty one) on the loaded row, so the proof view and the
            # lifecycle service read it without touching the driver.
            set_committed_value(run, "context", found[1] if found is not None else {})
        return parsed

    def _facts(
        self,
        run: OperationRun,
        dagster: DagsterRunInfo | None,
        now: datetime,
        materialized: tuple[str, ...],
        superseded: bool,
    ) -> RunFacts:
        return RunFacts(
            liveness=liveness(self._rule, run, dagster, now),
            dagster=dagster,
            materialized=materialized,
            stale=self._rule.is_stale(run.type, run.status, run.last_progress_at, now),
            superseded=superseded,
        )

    def _dagster_runs(
        self, runs: Sequence[OperationRun], partitions: Mapping[int, str]
    ) -> dict[int, DagsterRunInfo]:
        """The Dagster run of each candidate: the linked one, else the newest tagged one
        that is the row's own job on the row's own partition (a run tagged onto another job
        or partition was refused by its worker and says nothing about this row)."""
        linked = self._dagster.runs([r.dagster_run_id for r in runs if r.dagster_run_id])
        tagged = self._dagster.runs_tagged([r.id for r in runs if r.dagster_run_id is None])
        found: dict[int, DagsterRunInfo] = {}
        for run in runs:
            if run.dagster_run_id:
                info = linked.get(run.dagster_run_id)
            else:
                adapter = self._registry.resolve(run.type)
                job = adapter.family.job if isinstance(adapter, ProofAdapter) else None
                partition = partitions.get(run.managed_environment_id or -1)
                own = [
                    i
                    for i in tagged.get(run.id, [])
                    if i.job_name == job and i.partition_key == partition
                ]
                info = own[-1] if own else None
            if info is not None:
                found[run.id] = info
        return found

    def _materializations(
        self, runs: Sequence[OperationRun], partitions: dict[int, str]
    ) -> dict[int, tuple[str, ...]]:
        found: dict[int, tuple[str, ...]] = {}
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
            since = min(r.created_at for r in mine) - CLOCK_SKEW
            reported = self._dagster.materializations(asset_key, keys, [r.id for r in mine], since)
            found.update({run_id: tuple(outcomes) for run_id, outcomes in reported.items()})
        return found

    def _family_key(self, run: OperationRun) -> str | None:
        family = self._family(run)
        return family.asset_key if family is not None else None

    # ------------------------------------------------------------------ one run
    def _verdict(
        self, view: ProofView, run: OperationRun, facts: RunFacts, unreadable: bool
    ) -> Verdict:
        """Decide one run in isolation: a row that cannot be read gets its own reason."""
        adapter = self._registry.resolve(run.type)
        family = adapter.family if isinstance(adapter, ProofAdapter) else None
        if family is None:
            return decide(None, None, run, facts)
        if unreadable:
            return self._broken(facts, family, "run_context_invalid")
        try:
            scope = view.scope(run)
        except ValidationError:
            return self._broken(facts, family, "run_context_invalid")
        except ValueError:
            return self._broken(facts, family, "run_scope_invalid")
        try:
            return decide(family, family.proof(view, run, scope), run, facts)
        except Exception as exc:  # one unreadable row must not stop the batch
            logger.warning("operation run %s: proof not readable (%s)", run.id, type(exc).__name__)
            return self._broken(facts, family, "run_unreadable")

    @staticmethod
    def _broken(facts: RunFacts, family: Family, reason: str) -> Verdict:
        if not facts.liveness.decidable:
            return Verdict(None, "run_alive", family.adapter)
        return Verdict(RunOutcome.FAILED, reason, family.adapter)

    def _with_evidence(self, run: OperationRun, facts: RunFacts, verdict: Verdict) -> Verdict:
        """The verdict with the run's scope and Dagster facts added to its evidence."""
        dagster_run_id = facts.dagster.run_id if facts.dagster else run.dagster_run_id
        evidence = verdict.evidence.model_copy(
            update={
                "workspace_id": run.workspace_id,
                "managed_environment_id": run.managed_environment_id,
                "dagster_run_id": dagster_run_id,
                "dagster_run_status": facts.dagster_status,
                "materialization_count": facts.materializations,
            }
        )
        return Verdict(verdict.outcome, verdict.reason_code, verdict.adapter, evidence)

    def _write(
        self,
        session: Session,
        runs: Sequence[OperationRun],
        contexts: Mapping[int, RunContext],
        facts: Mapping[int, RunFacts],
        verdicts: Mapping[int, Verdict],
        partitions: Mapping[int, str],
        now: datetime,
    ) -> dict[int, TransitionStatus]:
        """Write every decision of the batch through the lifecycle service in one batch,
        with the decisions' outbox entries in the same transaction; ``now`` is the real
        time of writing (the decisions' stamp)."""
        decisions = {
            run_id: Decision(
                outcome=verdict.outcome,
                reason_code=verdict.reason_code,
                adapter=verdict.adapter,
                decided_by=Actor.RECONCILER,
                decided_at=now,
                evidence=verdict.evidence,
            )
            for run_id, verdict in verdicts.items()
            if verdict.outcome is not None
        }
        written = self._runs.reconcile_many_in(session, runs, decisions, contexts)
        # In the decision's transaction: the decisions and their Dagster events are
        # delivered together or not at all (at least once, see ``outbox``).
        outbox.enqueue_many(
            session,
            [
                _decision_event(
                    run,
                    self._family(run),
                    partitions.get(run.managed_environment_id or -1),
                    facts[run.id],
                    verdicts[run.id],
                    now,
                )
                for run in runs
                if run.id in written and written[run.id].status is TransitionStatus.APPLIED
            ],
        )
        return {run_id: result.status for run_id, result in written.items()}

    def _family(self, run: OperationRun) -> Family | None:
        adapter = self._registry.resolve(run.type)
        return adapter.family if isinstance(adapter, ProofAdapter) else None


def _decision_event(
    run: OperationRun,
    family: Family | None,
    partition: str | None,
    facts: RunFacts,
    verdict: Verdict,
    now: datetime,
) -> outbox.DecisionEvent:
    """What Dagster must be told about an applied decision."""
    assert verdict.outcome is not None
    proven = verdict.outcome in (RunOutcome.SUCCEEDED, RunOutcome.PARTIALLY_SUCCEEDED)
    return outbox.DecisionEvent(
        operation_run_id=run.id,
        asset_key=family.asset_key if family is not None else None,
        job=family.job if family is not None else None,
        partition_key=partition,
        dagster_run_id=verdict.evidence.dagster_run_id,
        outcome=verdict.outcome,
        reason_code=verdict.reason_code,
        adapter=verdict.adapter,
        decided_by=Actor.RECONCILER,
        decided_at=now,
        # Artifacts that no materialization reports yet: materialize the partition, unless
        # a newer run of the partition has already taken its place.
        materialize=family is not None
        and family.asset_key is not None
        and partition is not None
        and proven
        and facts.materializations == 0
        and not facts.superseded,
        superseded=facts.superseded,
        counts=verdict.evidence.counts,
    )
