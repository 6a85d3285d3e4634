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
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import Proof
from opsrecon_dagster.artifacts.families import Family
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.db.models import ACTIVE_RUN, ManagedEnvironment, OperationRun
from opsrecon_dagster.db.run_record import RunRecord, RunRow
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.context import Decision, Evidence, RunContext
from opsrecon_dagster.operations.lifecycle import (
    OperationRunService,
    TransitionStatus,
    next_attempts,
)
from opsrecon_dagster.operations.queries import partition_keys, superseded_runs
from opsrecon_dagster.operations.staleness import (
    DagsterRunInfo,
    Liveness,
    StalenessRule,
    liveness,
)
from opsrecon_dagster.reconciliation import stored
from opsrecon_dagster.reconciliation.dagster_view import DagsterView
from opsrecon_dagster.reconciliation.registry import (
    GENERIC_ADAPTER,
    AdapterRegistry,
    ProofAdapter,
)
from opsrecon_dagster.reconciliation.stored import Unreadable

logger = logging.getLogger(__name__)

_EMPTY = RunContext()

DAGSTER_TERMINAL_REASONS = {
    "SUCCESS": "dagster_success_without_proof",
    "FAILURE": "dagster_run_failed_without_proof",
    "CANCELED": "dagster_run_canceled_without_proof",
}


# Margin for clocks of different machines when comparing Dagster event times with rows.
CLOCK_SKEW = timedelta(minutes=5)

NO_PROOF_REASONS = {
    Liveness.QUEUE_WAIT_EXCEEDED: "dagster_queue_wait_exceeded",
    Liveness.START_TIMED_OUT: "dagster_run_start_timed_out",
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


# A claimed outcome that is no run outcome is recorded as this code, never as itself.
UNRECOGNIZED_CLAIM = "unrecognized"


def disagreeing_claim(proven: RunOutcome, claimed: Sequence[str]) -> str | None:
    """The outcome some materialization claims for the run against its proof (None: every
    claim agrees, or names no outcome); a claim that is no outcome is ``unrecognized``."""
    others = [c for c in claimed if c and c != proven.value]
    if not others:
        return None
    known = {o.value for o in RunOutcome}
    return next((c for c in others if c in known), UNRECOGNIZED_CLAIM)


def decide(family: Family | None, proof: Proof | None, run: RunRecord, facts: RunFacts) -> Verdict:
    """The decision table shared by every adapter (docs/decisions.md).

    - alive, or waiting in Dagster's run queue: no decision yet;
    - proof decides when it exists (never success without it); a materialization that
      names the run with another outcome is recorded as ``claimed_outcome``;
    - a materialization that names the run without proof behind it fails closed;
    - otherwise the Dagster run's end, a queue wait past its limit, a launch that never
      started (or stayed ``STARTING`` past Dagster's start timeout), or staleness says
      ``failed``.
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
        # Unambiguous proof decides; a materialization claiming otherwise is only recorded
        # (and alerted on): the claim is Dagster's word, the artifacts are the run's.
        claimed = disagreeing_claim(proof.outcome, facts.materialized)
        evidence = (
            proof.evidence
            if claimed is None
            else proof.evidence.model_copy(update={"claimed_outcome": claimed})
        )
        return Verdict(proof.outcome, proof.reason_code, adapter, evidence)
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
    fields: dict[int, list[Unreadable]]  # rows with stored fields that cannot be used
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
        acted_by: str | None = None,
    ) -> None:
        self._sessions = sessions
        # Who ran `opsrecon reconcile` (on each audit row it writes); None for the sensors.
        self._acted_by = acted_by
        self._runs = runs
        self._dagster = dagster
        self._clock = clock or (lambda: datetime.now(UTC))
        self._registry = AdapterRegistry(runs.catalog)
        self._rule = StalenessRule(runs.catalog, start_timeout=dagster.start_timeout())

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
            candidates, contexts, fields = self._candidates(
                session, now, limit, op_type, workspace_id, run_ids
            )
            batch = self._gather(session, candidates, contexts, fields, now)
            verdicts = {run.id: self._decide_one(batch, run) for run in candidates}
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
        candidates: list[RunRow],
        contexts: dict[int, RunContext],
        fields: Mapping[int, list[Unreadable]],
        now: datetime,
    ) -> _Batch:
        """Everything a batch is decided from: stored contexts (``contexts``: as parsed with
        the candidates), partitions, what Dagster knows (runs and materializations),
        supersession, and the batched proof view. Rows with unusable stored fields
        (``fields``) are decided from those alone: nothing else is looked up for them."""
        unreadable = {r.id for r in candidates} - contexts.keys()
        _audit_workspaces(session, candidates, fields)
        usable = [r for r in candidates if r.id not in fields]
        partitions = partition_keys(session, usable)
        dagster = self._dagster_runs(usable, partitions)
        readable = [r for r in usable if r.id not in unreadable]
        materialized = self._materializations(readable, partitions)
        superseded = superseded_runs(session, usable)
        facts = {
            r.id: self._facts(
                r, dagster.get(r.id), now, materialized.get(r.id, ()), r.id in superseded
            )
            if r.id not in fields
            # Its times or its Dagster link cannot be read: it is due as it stands.
            else RunFacts(liveness=Liveness.STALE, stale=True)
            for r in candidates
        }
        view = ProofView.load(session, readable)  # a fixed number of queries per batch
        return _Batch(contexts, unreadable, dict(fields), partitions, dagster, facts, view)

    def _observe(
        self,
        session: Session,
        candidates: list[RunRow],
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
    ) -> tuple[list[RunRow], dict[int, RunContext], dict[int, list[Unreadable]]]:
        """The batch's rows (locked), each one's stored context parsed (a missing id: not a
        context the product wrote), and the stored fields of each that cannot be used
        (``stored.read_fields``)."""
        dialect = session.get_bind().dialect.name
        base = (
            # Plain rows, not ORM ones (``db/run_record.py``). Besides the id and the status,
            # every column is read as stored (the context as text), so no value can break
            # the batch: ``RunContext.parse_stored_text`` and ``stored.read_fields`` check
            # them one by one.
            select(
                OperationRun.id,
                OperationRun.status,
                cast(OperationRun.context, Text),
                *stored.raw_columns(dialect),
            )
            # Literal, as in the open-rows index's own predicate (bound parameters would keep
            # SQLite from using that partial index).
            .where(ACTIVE_RUN)
        )
        if op_type:
            base = base.where(OperationRun.type == op_type)
        if workspace_id is not None:
            base = base.where(OperationRun.workspace_id == workspace_id)
        if run_ids is not None:
            stmts = [
                base.where(OperationRun.id.in_(list(run_ids))).order_by(
                    OperationRun.stale_at, OperationRun.id
                )
            ]
        else:
            stmts = [
                # Due by the stored stale time (the one staleness rule): exactly the batch,
                # read in order from the partial index, whatever the backlog and the history.
                base.where(self._rule.sql(now)).order_by(OperationRun.stale_at, OperationRun.id),
                # Rows whose due time is no time the product writes (missing, infinite,
                # unparseable text that sorts after every date) would never be due: read
                # them too, from the same index (empty ranges on a healthy database; no
                # ORDER BY, which could make the planner prefer the whole table's order).
                base.where(OperationRun.stale_at >= stored.LATEST),
                base.where(OperationRun.stale_at.is_(None)),
            ]
        rows: list[Any] = []
        for stmt in stmts:
            if len(rows) >= limit:
                break
            # Two reconcilers never take the same rows (PostgreSQL; SQLite has one writer).
            stmt = stmt.limit(limit - len(rows)).with_for_update(skip_locked=True)
            rows += session.execute(stmt).all()
        runs: list[RunRow] = []
        seen: set[int] = set()
        contexts: dict[int, RunContext] = {}
        problems: dict[int, list[Unreadable]] = {}
        for run_id, status, text, *raw in rows:
            if run_id in seen:
                continue
            seen.add(run_id)
            # Parsed defensively (bounded size and depth first).
            parsed = RunContext.parse_stored_text(text)
            if parsed is not None:
                contexts[run_id] = parsed[0]
            values, found = stored.read_fields(raw, dialect)
            if found:
                problems[run_id] = found
            # The context as parsed (the JSON that validated; when unreadable, an empty one).
            context = parsed[1] if parsed is not None else {}
            runs.append(RunRow(id=run_id, status=status, context=context, **values))
        return runs, contexts, problems

    def _facts(
        self,
        run: RunRecord,
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
        self, runs: Sequence[RunRow], partitions: Mapping[int, str]
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
        self, runs: Sequence[RunRow], partitions: dict[int, str]
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

    def _family_key(self, run: RunRecord) -> str | None:
        family = self._family(run)
        return family.asset_key if family is not None else None

    # ------------------------------------------------------------------ one run
    def _decide_one(self, batch: _Batch, run: RunRecord) -> Verdict:
        """One row's verdict with its evidence, in isolation: whatever goes wrong for this
        row finalizes it alone (``run_unreadable``, evidence without its values)."""
        facts = batch.facts[run.id]
        try:
            fields = batch.fields.get(run.id)
            if fields:
                return self._unusable_fields(run, fields)
            verdict = self._verdict(batch.view, run, facts, batch.contexts.get(run.id))
            return self._with_evidence(run, facts, verdict)
        except Exception as exc:  # one unreadable row must not stop the batch
            logger.warning("operation run %s: not decidable (%s)", run.id, type(exc).__name__)
            adapter = self._registry.resolve(run.type)
            name = adapter.family.adapter if isinstance(adapter, ProofAdapter) else GENERIC_ADAPTER
            if not facts.liveness.decidable:
                return Verdict(None, "run_alive", name)
            return Verdict(RunOutcome.FAILED, "run_unreadable", name, _scope_evidence(run))

    def _unusable_fields(self, run: RunRecord, fields: Sequence[Unreadable]) -> Verdict:
        """A row with stored fields the reconciler cannot use: ``run_field_invalid``, with
        each field's name, kind and length as evidence counts (never its value)."""
        adapter = self._registry.resolve(run.type)
        name = adapter.family.adapter if isinstance(adapter, ProofAdapter) else GENERIC_ADAPTER
        if run.workspace_id is None:
            # No workspace to audit it under (a foreign writer's row on SQLite without
            # foreign keys): left open, looked at again later, logged by id.
            logger.warning("operation run %s: no readable workspace; not finalized", run.id)
            return Verdict(None, "run_field_invalid", name)
        evidence = _scope_evidence(run).model_copy(update={"counts": stored.counts(fields)})
        return Verdict(RunOutcome.FAILED, "run_field_invalid", name, evidence)

    def _verdict(
        self, view: ProofView, run: RunRecord, facts: RunFacts, context: RunContext | None
    ) -> Verdict:
        """Decide one run in isolation: a row that cannot be read (``context`` None: its
        stored context is not one the product wrote) gets its own reason."""
        adapter = self._registry.resolve(run.type)
        family = adapter.family if isinstance(adapter, ProofAdapter) else None
        if family is None:
            return decide(None, None, run, facts)
        if context is None:
            return self._broken(facts, family, "run_context_invalid")
        try:
            scope = view.scope(run, context)
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

    def _with_evidence(self, run: RunRecord, facts: RunFacts, verdict: Verdict) -> Verdict:
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
        runs: Sequence[RunRow],
        contexts: Mapping[int, RunContext],
        facts: Mapping[int, RunFacts],
        verdicts: Mapping[int, Verdict],
        partitions: Mapping[int, str],
        now: datetime,
    ) -> dict[int, TransitionStatus]:
        """Write every decision of the batch through the lifecycle service in one batch,
        with the decisions' outbox entries in the same transaction; ``now`` is the real
        time of writing (the decisions' stamp)."""
        # Each row's decision and Dagster event are built (and validated) on their own,
        # before anything is written: a row whose values do not validate gets the bounded
        # ``run_unreadable`` decision instead, and never fails the batch's writes.
        decisions: dict[int, Decision] = {}
        events: dict[int, outbox.DecisionEvent] = {}
        for run in runs:
            verdict = verdicts[run.id]
            if verdict.outcome is None:
                continue
            partition = partitions.get(run.managed_environment_id or -1)
            # Recorded with its attempt number already (as ``reconcile_many_in`` records it).
            attempt = max(next_attempts(contexts.get(run.id) or _EMPTY, Actor.RECONCILER), 1)
            built = _built(run, self._family(run), partition, facts[run.id], verdict, now, attempt)
            if built is None:
                logger.warning("operation run %s: decision not valid; run_unreadable", run.id)
                fallback = Verdict(
                    RunOutcome.FAILED, "run_unreadable", verdict.adapter, _scope_evidence(run)
                )
                built = _built(run, None, None, RunFacts(Liveness.STALE), fallback, now, attempt)
            if built is None:  # not even ids validate: left open, logged by id
                logger.warning("operation run %s: no decision can be recorded", run.id)
                continue
            decisions[run.id], events[run.id] = built
        written = self._runs.reconcile_many_in(
            session, runs, decisions, contexts, acted_by=self._acted_by
        )
        # In the decision's transaction: the decisions and their Dagster events are
        # delivered together or not at all (at least once, see ``outbox``).
        outbox.enqueue_many(
            session,
            [events[run.id] for run in runs if written.get(run.id) is TransitionStatus.APPLIED],
        )
        return written

    def _family(self, run: RunRecord) -> Family | None:
        adapter = self._registry.resolve(run.type)
        return adapter.family if isinstance(adapter, ProofAdapter) else None


def _scope_evidence(run: RunRecord) -> Evidence:
    """Evidence naming the row's scope only (when its ids are usable)."""
    try:
        return Evidence(
            workspace_id=run.workspace_id, managed_environment_id=run.managed_environment_id
        )
    except ValidationError:
        return Evidence()


def _audit_workspaces(
    session: Session, runs: Sequence[RunRow], fields: Mapping[int, list[Unreadable]]
) -> None:
    """A row whose workspace id cannot be used is audited under its environment's workspace
    (when that is readable): the audit row needs a real one."""
    env_ids = {
        r.managed_environment_id: r
        for r in runs
        if r.managed_environment_id is not None
        and any(f.field == "workspace_id" for f in fields.get(r.id, ()))
    }
    if not env_ids:
        return
    rows = session.execute(
        select(ManagedEnvironment.id, ManagedEnvironment.workspace_id).where(
            ManagedEnvironment.id.in_(list(env_ids))
        )
    )
    found = {env_id: workspace_id for env_id, workspace_id in rows}
    for run in runs:
        if run.id in fields and run.workspace_id is None and run.managed_environment_id in found:
            run.workspace_id = found[run.managed_environment_id]


def _built(
    run: RunRecord,
    family: Family | None,
    partition: str | None,
    facts: RunFacts,
    verdict: Verdict,
    now: datetime,
    attempt: int,
) -> tuple[Decision, outbox.DecisionEvent] | None:
    """The row's decision and its Dagster event, validated; None when they do not
    validate (nothing about the values is logged: they may be anything)."""
    try:
        decision = Decision(
            outcome=verdict.outcome,
            reason_code=verdict.reason_code,
            adapter=verdict.adapter,
            decided_by=Actor.RECONCILER,
            decided_at=now,
            attempt=attempt,
            # Validated again as it enters the decision (``Evidence``'s config): evidence
            # built by ``model_copy`` was not.
            evidence=verdict.evidence,
        )
        return decision, _decision_event(run, family, partition, facts, verdict, now)
    except ValidationError:
        return None


def _decision_event(
    run: RunRecord,
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
