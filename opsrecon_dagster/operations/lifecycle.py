"""The lifecycle service: the only code that writes ``operation_runs`` (docs/architecture.md).

Every terminal write is a compare-and-set from a non-terminal status, happens once, and
writes exactly one audit row in the same transaction. Reading code may query the table
freely; writing code goes through ``OperationRunService``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, cast, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, sessionmaker

from opsrecon_dagster.db import bulk
from opsrecon_dagster.db.loaded import set_loaded
from opsrecon_dagster.db.models import AuditLog, ManagedEnvironment, OperationRun
from opsrecon_dagster.db.run_record import RunRow
from opsrecon_dagster.enums import Actor, RunOutcome, RunStatus
from opsrecon_dagster.operations.catalog import OperationCatalog, OperationType
from opsrecon_dagster.operations.context import (
    MAX_HISTORY,
    AuditDetails,
    Decision,
    LateCompletion,
    PreconditionCheck,
    Progress,
    RunContext,
    RunInputs,
)
from opsrecon_dagster.operations.reasons import CORRECTABLE_REASONS, NO_PROOF_REASONS
from opsrecon_dagster.operations.staleness import StalenessRule

ACTIVE = tuple(s.value for s in RunStatus.active())


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunNotFoundError(LookupError):
    """No operation run with that id."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"operation run {run_id} not found")
        self.run_id = run_id


class ScopeError(ValueError):
    """The environment does not belong to the workspace (or does not exist)."""


class TransitionStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # the same decision was already recorded: nothing written
    ALREADY_FINAL = "already_final"  # another writer finalized first; this one lost
    NOT_ACTIVE = "not_active"  # e.g. heartbeat or mark_running on a completed run
    CORRECTED = "corrected"  # a no-proof reconciler decision replaced once by late proof


@dataclass(frozen=True)
class StartResult:
    run: OperationRun
    created: bool


@dataclass(frozen=True)
class TransitionResult:
    status: TransitionStatus
    run: OperationRun

    @property
    def applied(self) -> bool:
        return self.status in (TransitionStatus.APPLIED, TransitionStatus.CORRECTED)


def input_hash(inputs: RunInputs) -> str:
    """Hash of what the run is asked to do; the trigger (manual, schedule) is not part of it."""
    payload = inputs.model_dump(mode="json", exclude={"trigger"}, exclude_none=True)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def identity_key(
    op_type: OperationType, workspace_id: int, environment_id: int | None, inputs_digest: str
) -> str:
    raw = f"{op_type.value}|{workspace_id}|{environment_id or '-'}|{inputs_digest}"
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class _StartRequest:
    """What ``start`` finds or creates: the run's type, scope and inputs, and its identity."""

    op_type: OperationType
    workspace_id: int
    environment_id: int | None
    inputs: RunInputs
    digest: str  # ``input_hash`` of the inputs
    key: str  # ``identity_key``
    once: bool

    @classmethod
    def of(
        cls,
        op_type: OperationType,
        workspace_id: int,
        environment_id: int | None,
        inputs: RunInputs,
        once: bool,
    ) -> _StartRequest:
        digest = input_hash(inputs)
        key = identity_key(op_type, workspace_id, environment_id, digest)
        return cls(op_type, workspace_id, environment_id, inputs, digest, key, once)


# The per-row columns a batch of final decisions writes, from (decision, stored context).
_FINAL_VALUES: dict[str, Callable[[Decision, dict[str, Any]], object]] = {
    "outcome": lambda d, _c: d.outcome.value,
    "reason_code": lambda d, _c: d.reason_code,
    "context": lambda _d, c: c,
    "completed_at": lambda d, _c: d.decided_at,
}


def next_attempts(ctx: RunContext, decided_by: Actor) -> int:
    """The run's reconciliation attempts once this decision is recorded (the reconciler's
    decisions count attempts); the decision's ``attempt`` is this, at least 1."""
    return ctx.reconciliation_attempts + (decided_by is Actor.RECONCILER)


class OperationRunService:
    """Owns every write to ``operation_runs`` and the audit rows that go with them."""

    def __init__(self, sessions: sessionmaker[Session], catalog: OperationCatalog | None = None):
        self._sessions = sessions
        self.catalog = catalog or OperationCatalog()
        self.rule = StalenessRule(self.catalog)

    # ----------------------------------------------------------------- start / dedupe
    def start(
        self,
        op_type: OperationType | str,
        *,
        workspace_id: int,
        environment_id: int | None,
        inputs: RunInputs | None = None,
        actor: Actor = Actor.OPERATOR,
        once: bool = False,
        acted_by: str | None = None,
    ) -> StartResult:
        """Create a queued run, or return the active run with the same identity.

        Identity is type + scope + input hash; the partial unique index on active identities
        settles races: the loser of a concurrent insert reads and returns the winner's row.
        ``once``: the identity may have one run ever (a schedule's window), so a completed
        run with it is returned too, and nothing new is created (unique ``once_key``).
        ``acted_by``: who ran the operator's command (recorded on the audit row).
        """
        request = _StartRequest.of(
            self.catalog.get(op_type).type,
            workspace_id,
            environment_id,
            inputs or RunInputs(),
            once,
        )
        # A lost insert race is retried: normally the winner is found at once; if the winner
        # already finished in between, the next attempt creates a fresh run legitimately.
        for _attempt in range(3):
            with self._sessions() as session:
                try:
                    return self._find_or_create(session, request, actor, acted_by)
                except IntegrityError:
                    pass
                with session.begin():
                    winner = self._existing(session, request.key, request.once)
                if winner is not None:
                    return StartResult(winner, created=False)
        raise RuntimeError("could not start or find the active run for this identity")

    def _find_or_create(
        self, session: Session, request: _StartRequest, actor: Actor, acted_by: str | None
    ) -> StartResult:
        """One attempt of ``start``, in its own transaction: the existing run for the
        identity, or a new queued one with its audit row (an ``IntegrityError`` when a
        concurrent start inserted the same identity first)."""
        with session.begin():
            if request.environment_id is not None:
                self._check_scope(session, request.workspace_id, request.environment_id)
            existing = self._existing(session, request.key, request.once)
            if existing is not None:
                return StartResult(existing, created=False)
            run = self._queued_run(request, utcnow())
            session.add(run)
            session.flush()
            self._audit(session, run, "run.queued", actor, from_status=None, acted_by=acted_by)
        return StartResult(run, created=True)

    def _queued_run(self, request: _StartRequest, now: datetime) -> OperationRun:
        """The new row: queued, due for a look when the type's queued threshold passes."""
        return OperationRun(
            workspace_id=request.workspace_id,
            managed_environment_id=request.environment_id,
            type=request.op_type.value,
            status=RunStatus.QUEUED.value,
            input_hash=request.digest,
            identity_key=request.key,
            once_key=request.key if request.once else None,
            context=RunContext(inputs=request.inputs).dump(),
            created_at=now,
            last_progress_at=now,
            stale_at=self.rule.due_at(request.op_type.value, RunStatus.QUEUED.value, now),
        )

    # ----------------------------------------------------------------- running / heartbeat
    def mark_running(
        self,
        run_id: int,
        dagster_run_id: str | None,
        actor: Actor = Actor.JOB,
        precondition: PreconditionCheck | None = None,
    ) -> TransitionResult:
        """queued → running, storing the Dagster run id (and the job's precondition check).

        Repeating it from the same Dagster run is a no-op. Anything else is ``NOT_ACTIVE`` and
        the caller must not work on the row: it is final, already running elsewhere, or
        linked to another Dagster run.
        """
        with self._sessions.begin() as session:
            run = self._locked(session, run_id)
            if run.status == RunStatus.RUNNING.value and run.dagster_run_id == dagster_run_id:
                return TransitionResult(TransitionStatus.UNCHANGED, run)
            if run.status != RunStatus.QUEUED.value or (
                run.dagster_run_id is not None and run.dagster_run_id != dagster_run_id
            ):
                return TransitionResult(TransitionStatus.NOT_ACTIVE, run)
            now = utcnow()
            values: dict[str, object] = {
                "status": RunStatus.RUNNING.value,
                "dagster_run_id": dagster_run_id,
                "started_at": now,
                "last_progress_at": now,
                "stale_at": self.rule.due_at(run.type, RunStatus.RUNNING.value, now),
            }
            if precondition is not None:
                ctx = self._context(session, run) or RunContext()
                values["context"] = ctx.model_copy(update={"precondition": precondition}).dump()
            changed = self._cas(session, run, from_statuses=(RunStatus.QUEUED.value,), **values)
            if not changed:
                return TransitionResult(TransitionStatus.NOT_ACTIVE, self._reload(session, run))
            self._audit(
                session,
                run,
                "run.running",
                actor,
                from_status=RunStatus.QUEUED.value,
                details=AuditDetails(dagster_run_id=dagster_run_id),
            )
        return TransitionResult(TransitionStatus.APPLIED, run)

    def link_dagster_run(
        self, run_id: int, dagster_run_id: str, acted_by: str | None = None
    ) -> OperationRun:
        """Record the Dagster run submitted for a still-queued run (no status change).

        A queued row may be relinked (an earlier submission that never started); a running
        or final row keeps the Dagster run it has. ``acted_by``: the operator whose command
        launches it, recorded as a ``run.launch_requested`` audit row (launches by the
        sensors and the demo record none, as before).
        """
        with self._sessions.begin() as session:
            run = self._locked(session, run_id)
            if run.status == RunStatus.QUEUED.value:
                linked = self._cas(
                    session,
                    run,
                    from_statuses=(RunStatus.QUEUED.value,),
                    dagster_run_id=dagster_run_id,
                )
                if linked and acted_by is not None:
                    self._audit(
                        session,
                        run,
                        "run.launch_requested",
                        Actor.OPERATOR,
                        from_status=run.status,
                        details=AuditDetails(dagster_run_id=dagster_run_id),
                        acted_by=acted_by,
                    )
            return run

    def observe_dagster_in(
        self,
        session: Session,
        *,
        links: Mapping[int, str],
        revisit: Mapping[int, datetime],
    ) -> None:
        """What the reconciler learned from Dagster, inside its transaction.

        ``links``: Dagster runs found by their tag for open rows that had none linked (a
        schedule or sensor submission). ``revisit``: open rows found not yet decidable
        (alive, or waiting in Dagster's run queue), with when to look at them again; that
        takes them off the front of the backlog without claiming progress they did not
        make.
        """
        for run_id, dagster_run_id in links.items():
            session.execute(
                update(OperationRun)
                .where(
                    OperationRun.id == run_id,
                    OperationRun.status.in_(ACTIVE),
                    OperationRun.dagster_run_id.is_(None),
                )
                .values(dagster_run_id=dagster_run_id)
                .execution_options(synchronize_session=False)
            )
        if revisit:
            column = OperationRun.__table__.c
            rows = bulk.rows_of(
                session,
                {
                    "id": (list(revisit), column.id.type),
                    "stale_at": (list(revisit.values()), column.stale_at.type),
                },
            )
            session.execute(
                update(OperationRun)
                .where(OperationRun.id == rows.c.id, OperationRun.status.in_(ACTIVE))
                .values(stale_at=rows.c.stale_at)
                .execution_options(synchronize_session=False)
            )

    def restamp_open(self) -> int:
        """Make every open row due now (and clear any due time left on a final row).

        For when the thresholds changed: stored due times were computed with the old ones.
        The reconciler then looks at each open row once and stores, with the new thresholds,
        when to look again; returns the number of open rows.
        """
        with self._sessions.begin() as session:
            session.execute(
                update(OperationRun)
                .where(OperationRun.stale_at.is_not(None), OperationRun.status.not_in(ACTIVE))
                .values(stale_at=None)
                .execution_options(synchronize_session=False)
            )
            result = session.execute(
                update(OperationRun)
                .where(OperationRun.status.in_(ACTIVE))
                .values(stale_at=OperationRun.last_progress_at)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def heartbeat(self, run_id: int, progress: Progress | None = None) -> bool:
        """Record progress of a running job; returns False once the run is no longer running."""
        now = utcnow()
        with self._sessions.begin() as session:
            run = self._locked(session, run_id)
            if run.status != RunStatus.RUNNING.value:
                return False
            values: dict[str, object] = {
                "last_heartbeat_at": now,
                "last_progress_at": now,
                "stale_at": self.rule.due_at(run.type, RunStatus.RUNNING.value, now),
            }
            if progress is not None:
                ctx = self._context(session, run) or RunContext()
                values["context"] = ctx.model_copy(update={"progress": progress}).dump()
            return self._cas(session, run, from_statuses=(RunStatus.RUNNING.value,), **values)

    # ----------------------------------------------------------------- terminal writes
    def complete(
        self,
        run_id: int,
        decision: Decision,
        then: Callable[[Session, OperationRun], None] | None = None,
    ) -> TransitionResult:
        """The job's own terminal write: compare-and-set from queued/running, one audit row.

        If the run was already finalized (the reconciler was faster, or a second completer
        raced), nothing is overwritten: the report is kept as a late completion and the
        caller is told it lost. ``then`` runs in the same transaction when the decision was
        recorded (applied, or correcting a no-proof decision), with the row as it stands:
        the job's outbox entry commits with its decision.
        """
        with self._sessions.begin() as session:
            result = self._finalize_in(session, run_id, decision, action="run.completed")
            if then is not None and result.status in (
                TransitionStatus.APPLIED,
                TransitionStatus.CORRECTED,
            ):
                then(session, result.run)
            return result

    def reconcile(self, run_id: int, decision: Decision) -> TransitionResult:
        """The reconciler's terminal write. Idempotent: the same decision twice writes nothing."""
        return self._finalize(run_id, decision, action="run.reconciled")

    def reconcile_in(self, session: Session, run_id: int, decision: Decision) -> TransitionResult:
        """``reconcile`` inside the caller's transaction (which already holds the row lock)."""
        return self._finalize_in(session, run_id, decision, action="run.reconciled")

    def reconcile_many_in(
        self,
        session: Session,
        runs: Sequence[OperationRun | RunRow],
        decisions: Mapping[int, Decision],
        contexts: Mapping[int, RunContext] | None = None,
        acted_by: str | None = None,
    ) -> dict[int, TransitionStatus]:
        """The reconciler's terminal writes for a whole batch, inside the caller's
        transaction (whose candidate query already holds the rows' locks).

        The same compare-and-set and one-audit-row rules as ``reconcile``, in a fixed number
        of statements: one guarded ``UPDATE`` for every decided row that is still open
        (``RETURNING`` says which ones it changed) and one multi-row audit ``INSERT``. A row
        the guard did not change (finalized by someone else meanwhile) takes the single-row
        path, which records nothing over a decision that is already there. ``contexts``: the
        rows' contexts as the caller already parsed them, so they are not parsed twice.
        ``acted_by``: the operator whose ``opsrecon reconcile`` writes the batch (None for
        the sensors), recorded on each audit row. Returns each decided run's transition; the
        rows given are updated to what was written.
        """
        by_id = {r.id: r for r in runs}
        planned = self._plan_many(session, by_id, decisions, contexts or {})
        changed = self._finalize_many(session, planned)
        results: dict[int, TransitionStatus] = {}
        audits = []
        now = utcnow()
        for run_id in changed:
            run, (decision, context) = by_id[run_id], planned[run_id]
            audits.append(self._mirror_reconciled(run, decision, context, now, acted_by))
            results[run_id] = TransitionStatus.APPLIED
        bulk.insert_rows(session, AuditLog, audits)
        for run_id, decision in decisions.items():
            if run_id not in results:
                results[run_id] = self._finalize_in(
                    session, run_id, decision, action="run.reconciled", acted_by=acted_by
                ).status
        return results

    def _plan_many(
        self,
        session: Session,
        by_id: Mapping[int, OperationRun | RunRow],
        decisions: Mapping[int, Decision],
        parsed: Mapping[int, RunContext],
    ) -> dict[int, tuple[Decision, dict[str, Any]]]:
        """Per still-open row, the decision as it will be recorded and the context that
        records it (a row already final is left to the single-row path)."""
        planned: dict[int, tuple[Decision, dict[str, Any]]] = {}
        for run_id, decision in decisions.items():
            run = by_id[run_id]
            ctx = parsed.get(run_id) or self._context(session, run) or RunContext()
            if run.status not in ACTIVE:
                continue
            recorded, new_ctx = self._recorded_decision(ctx, decision)
            planned[run_id] = (recorded, new_ctx.dump())
        return planned

    @staticmethod
    def _mirror_reconciled(
        run: OperationRun | RunRow,
        decision: Decision,
        context: dict[str, Any],
        now: datetime,
        acted_by: str | None,
    ) -> dict[str, Any]:
        """Mirror a row the batch UPDATE completed on its object (an ORM row's loaded state,
        without marking it dirty; a ``RunRow``'s fields) and return its audit row
        (``_audit_row``'s, built from what was just dumped).

        The details are ``AuditDetails(adapter=..., evidence=...)`` as ``_audit_row`` dumps
        them; the evidence is taken from the stored context's decision, dumped once for both
        (the same ``mode="json", exclude_none=True`` dump of the same evidence)."""
        from_status = run.status
        if isinstance(run, RunRow):
            run.status = RunStatus.COMPLETED.value
            run.outcome = decision.outcome.value
            run.reason_code = decision.reason_code
            run.context = context
            run.completed_at = decision.decided_at
            run.stale_at = None
        else:
            set_loaded(
                run,
                {
                    "status": RunStatus.COMPLETED.value,
                    "outcome": decision.outcome.value,
                    "reason_code": decision.reason_code,
                    "context": context,
                    "completed_at": decision.decided_at,
                },
            )
        return {
            "operation_run_id": run.id,
            "workspace_id": run.workspace_id,
            "managed_environment_id": run.managed_environment_id,
            "action": "run.reconciled",
            "actor": decision.decided_by.value,
            "acted_by": acted_by,
            "from_status": from_status,
            "to_status": RunStatus.COMPLETED.value,
            "outcome": decision.outcome.value,
            "reason_code": decision.reason_code,
            "details": {"adapter": decision.adapter, "evidence": context["decision"]["evidence"]},
            "created_at": now,
        }

    @staticmethod
    def _recorded_decision(ctx: RunContext, decision: Decision) -> tuple[Decision, RunContext]:
        """The decision with its attempt number (reconciler decisions count attempts), and
        the run's context recording it."""
        attempts = next_attempts(ctx, decision.decided_by)
        if decision.attempt != max(attempts, 1):
            decision = decision.model_copy(update={"attempt": max(attempts, 1)})
        new_ctx = ctx.model_copy(update={"decision": decision, "reconciliation_attempts": attempts})
        return decision, new_ctx

    @staticmethod
    def _finalize_many(
        session: Session, planned: Mapping[int, tuple[Decision, dict[str, Any]]]
    ) -> set[int]:
        """One guarded UPDATE completing every planned row that is still open; returns the
        ids it changed.

        The per-row values arrive as rows joined to the table by id (``bulk.rows_of``: one
        array per column through ``unnest`` on PostgreSQL, one JSON text through
        ``json_each`` on SQLite): the statement text is the same for every batch, compiled
        once and cached.
        """
        if not planned:
            return set()
        plans = list(planned.items())
        column = OperationRun.__table__.c
        rows = bulk.rows_of(
            session,
            {
                "id": ([run_id for run_id, _ in plans], column.id.type),
                **{
                    name: ([value_of(*plan) for _, plan in plans], column[name].type)
                    for name, value_of in _FINAL_VALUES.items()
                },
            },
        )
        stmt = (
            update(OperationRun)
            .where(OperationRun.id == rows.c.id, OperationRun.status.in_(ACTIVE))
            .values(
                status=RunStatus.COMPLETED.value,
                stale_at=None,
                **{name: rows.c[name] for name in _FINAL_VALUES},
            )
            .returning(OperationRun.id)
            .execution_options(synchronize_session=False)
        )
        return set(session.scalars(stmt))

    def _finalize(self, run_id: int, decision: Decision, *, action: str) -> TransitionResult:
        with self._sessions.begin() as session:
            return self._finalize_in(session, run_id, decision, action=action)

    def _finalize_in(
        self,
        session: Session,
        run_id: int,
        decision: Decision,
        *,
        action: str,
        acted_by: str | None = None,
    ) -> TransitionResult:
        run = self._locked(session, run_id)
        ctx = self._context(session, run) or RunContext()
        if run.status not in ACTIVE:
            return self._already_final(session, run, ctx, decision)
        decision, new_ctx = self._recorded_decision(ctx, decision)
        from_status = run.status
        changed = self._cas(
            session,
            run,
            from_statuses=ACTIVE,
            status=RunStatus.COMPLETED.value,
            outcome=decision.outcome.value,
            reason_code=decision.reason_code,
            context=new_ctx.dump(),
            completed_at=decision.decided_at,
            stale_at=None,
        )
        if not changed:
            run = self._reload(session, run)
            return self._already_final(
                session, run, self._context(session, run) or RunContext(), decision
            )
        self._audit(
            session,
            run,
            action,
            decision.decided_by,
            from_status=from_status,
            details=AuditDetails(adapter=decision.adapter, evidence=decision.evidence),
            acted_by=acted_by,
        )
        return TransitionResult(TransitionStatus.APPLIED, run)

    def _already_final(
        self, session: Session, run: OperationRun, ctx: RunContext, decision: Decision
    ) -> TransitionResult:
        """A decision for a run that is already final: the same one again is unchanged; a
        reconciler's is refused; a job's late report is kept, and corrects once if allowed."""
        if ctx.decision is not None and ctx.decision.same_decision(decision):
            return TransitionResult(TransitionStatus.UNCHANGED, run)
        if decision.decided_by is not Actor.JOB:
            return TransitionResult(TransitionStatus.ALREADY_FINAL, run)
        # A job reporting after finalization: corrects a no-proof reconciler decision once
        # when it brings proof; otherwise the report is only kept (a proven outcome stands).
        correct = self._correctable(ctx) and decision.reason_code not in NO_PROOF_REASONS
        late = LateCompletion(
            reported_outcome=decision.outcome,
            reason_code=decision.reason_code,
            reported_at=decision.decided_at,
            applied=correct,
        )
        history = [*ctx.late_completions, late][-MAX_HISTORY:]
        if not correct:
            run.context = ctx.model_copy(update={"late_completions": history}).dump()
            session.flush()
            self._audit_ignored_report(session, run, decision)
            return TransitionResult(TransitionStatus.ALREADY_FINAL, run)
        return self._correct(session, run, ctx, decision, history)

    def _correct(
        self,
        session: Session,
        run: OperationRun,
        ctx: RunContext,
        decision: Decision,
        history: list[LateCompletion],
    ) -> TransitionResult:
        """Apply a late job report with proof over a no-proof decision, once: compare-and-set
        on the decision being corrected, so of two late reports only one corrects."""
        previous = ctx.decision
        assert previous is not None
        corrected = decision.model_copy(
            update={"decided_by": Actor.LATE_CORRECTION, "attempt": previous.attempt + 1}
        )
        new_ctx = ctx.model_copy(
            update={
                "decision": corrected,
                "previous_decisions": [*ctx.previous_decisions, previous][-MAX_HISTORY:],
                "late_completions": history,
            }
        )
        if not self._cas_decision(session, run, previous, corrected, new_ctx):
            # Another late report corrected the decision first: this one is not applied.
            run = self._reload(session, run)
            self._audit_ignored_report(session, run, decision)
            return TransitionResult(TransitionStatus.ALREADY_FINAL, run)
        self._audit(
            session,
            run,
            "run.corrected",
            Actor.LATE_CORRECTION,
            from_status=RunStatus.COMPLETED.value,
            details=AuditDetails(
                adapter=corrected.adapter,
                previous_outcome=previous.outcome,
                previous_reason_code=previous.reason_code,
                evidence=corrected.evidence,
            ),
        )
        return TransitionResult(TransitionStatus.CORRECTED, run)

    @staticmethod
    def _cas_decision(
        session: Session,
        run: OperationRun,
        previous: Decision,
        corrected: Decision,
        new_ctx: RunContext,
    ) -> bool:
        """Compare-and-set of a completed row's decision: replaced only while the row still
        holds ``previous`` (mirrored on the loaded object when it was)."""
        stmt = (
            update(OperationRun)
            .where(
                OperationRun.id == run.id,
                OperationRun.status == RunStatus.COMPLETED.value,
                OperationRun.outcome == previous.outcome.value,
                OperationRun.reason_code == previous.reason_code,
            )
            .values(
                outcome=corrected.outcome.value,
                reason_code=corrected.reason_code,
                context=new_ctx.dump(),
            )
            .execution_options(synchronize_session=False)
        )
        if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
            return False
        set_loaded(
            run,
            {
                "outcome": corrected.outcome.value,
                "reason_code": corrected.reason_code,
                "context": new_ctx.dump(),
            },
        )
        return True

    @classmethod
    def _audit_ignored_report(cls, session: Session, run: OperationRun, report: Decision) -> None:
        """Audit a job's late report that was not applied: what it reported (outcome and
        reason code only), beside the decision that stands."""
        cls._audit(
            session,
            run,
            "run.late_report_ignored",
            report.decided_by,
            from_status=run.status,
            details=AuditDetails(
                adapter=report.adapter,
                reported_outcome=report.outcome,
                reported_reason_code=report.reason_code,
            ),
        )

    @staticmethod
    def _correctable(ctx: RunContext) -> bool:
        """Only a reconciler's no-proof ``failed`` can be corrected, and only once."""
        d = ctx.decision
        return (
            d is not None
            and d.decided_by is Actor.RECONCILER
            and d.outcome is RunOutcome.FAILED
            and d.reason_code in CORRECTABLE_REASONS
            and not ctx.previous_decisions
        )

    # ----------------------------------------------------------------- reads
    def get(self, run_id: int) -> OperationRun:
        """Load one run; raises ``RunNotFoundError``."""
        with self._sessions() as session:
            run = session.get(OperationRun, run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return run

    def audit_trail(self, run_id: int) -> Sequence[AuditLog]:
        """The run's audit rows, oldest first."""
        with self._sessions() as session:
            stmt = select(AuditLog).where(AuditLog.operation_run_id == run_id).order_by(AuditLog.id)
            return session.scalars(stmt).all()

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _check_scope(session: Session, workspace_id: int, environment_id: int) -> None:
        env = session.get(ManagedEnvironment, environment_id)
        if env is None or env.workspace_id != workspace_id:
            raise ScopeError(
                f"managed environment {environment_id} does not belong to workspace {workspace_id}"
            )

    @classmethod
    def _existing(cls, session: Session, key: str, once: bool) -> OperationRun | None:
        """The run ``start`` returns instead of creating one: with ``once``, the identity's
        run in any status, else only an active one."""
        if once:
            run = session.scalars(select(OperationRun).where(OperationRun.once_key == key)).first()
            if run is not None:
                return run
        return cls._active_by_identity(session, key)

    @staticmethod
    def _active_by_identity(session: Session, key: str) -> OperationRun | None:
        stmt = select(OperationRun).where(
            OperationRun.identity_key == key, OperationRun.status.in_(ACTIVE)
        )
        return session.scalars(stmt).first()

    @staticmethod
    def _locked(session: Session, run_id: int) -> OperationRun:
        # FOR UPDATE on PostgreSQL serializes read-modify-write; SQLite ignores it and relies
        # on its single writer plus the compare-and-set below. The context is not loaded
        # here: a malformed one must not be parsed by the driver (see ``_context``).
        stmt = (
            select(OperationRun)
            .where(OperationRun.id == run_id)
            .options(defer(OperationRun.context))
            .with_for_update()
        )
        run = session.scalars(stmt).first()
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    @staticmethod
    def _context(session: Session, run: OperationRun | RunRow) -> RunContext | None:
        """The run's context, or None when the stored one is malformed (any shape, size or
        depth): read as text and checked before parsing."""
        if isinstance(run, RunRow):  # read as checked text already (``stored.py``)
            return RunContext.load_or_none(run.context)
        if "context" in run.__dict__:
            return RunContext.load_or_none(run.__dict__["context"])
        raw = session.scalar(
            select(cast(OperationRun.context, Text)).where(OperationRun.id == run.id)
        )
        return RunContext.from_stored_text(raw)

    @staticmethod
    def _reload(session: Session, run: OperationRun) -> OperationRun:
        session.refresh(run, attribute_names=["status", "outcome", "reason_code", "dagster_run_id"])
        return run

    @staticmethod
    def _cas(
        session: Session, run: OperationRun, *, from_statuses: tuple[str, ...], **values: object
    ) -> bool:
        stmt = (
            update(OperationRun)
            .where(OperationRun.id == run.id, OperationRun.status.in_(from_statuses))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        result = session.execute(stmt)
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        # Mirror the row on the loaded object without marking it dirty (no second UPDATE).
        set_loaded(run, values)
        return True

    @classmethod
    def _audit(
        cls,
        session: Session,
        run: OperationRun,
        action: str,
        actor: Actor,
        *,
        from_status: str | None,
        details: AuditDetails | None = None,
        acted_by: str | None = None,
    ) -> None:
        session.add(
            AuditLog(
                **cls._audit_row(
                    run, action, actor, from_status=from_status, details=details, acted_by=acted_by
                )
            )
        )

    @staticmethod
    def _audit_row(
        run: OperationRun,
        action: str,
        actor: Actor,
        *,
        from_status: str | None,
        details: AuditDetails | None = None,
        acted_by: str | None = None,
    ) -> dict[str, Any]:
        """The audit row of a transition the run (as mirrored) has just made; ``acted_by``:
        who ran the operator's command that made it (None for jobs and sensors)."""
        return {
            "operation_run_id": run.id,
            "workspace_id": run.workspace_id,
            "managed_environment_id": run.managed_environment_id,
            "action": action,
            "actor": actor.value,
            "acted_by": acted_by,
            "from_status": from_status,
            "to_status": run.status,
            "outcome": run.outcome,
            "reason_code": run.reason_code,
            "details": (details or AuditDetails()).model_dump(mode="json", exclude_none=True),
            "created_at": utcnow(),
        }
