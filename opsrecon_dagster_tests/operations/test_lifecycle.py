"""The lifecycle service: dedupe on start, compare-and-set terminal writes, idempotent reconcile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import AuditLog, OperationRun
from opsrecon_dagster.enums import Actor, RunOutcome, RunStatus
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, Progress, RunContext, RunInputs
from opsrecon_dagster.operations.lifecycle import (
    RunNotFoundError,
    ScopeError,
    TransitionStatus,
)
from opsrecon_dagster.operations.reasons import CORRECTABLE_REASONS
from opsrecon_dagster_tests.conftest import Scope, make_scope

INV = OperationType.INVENTORY_SYNC


def decision(
    outcome: RunOutcome,
    reason: str,
    actor: Actor = Actor.JOB,
    adapter: str = "inventory_sync",
    **evidence: Any,
) -> Decision:
    return Decision(
        outcome=outcome,
        reason_code=reason,
        adapter=adapter,
        decided_by=actor,
        decided_at=datetime.now(UTC),
        evidence=Evidence(**evidence),
    )


def audit_rows(app: AppContext, run_id: int) -> list[AuditLog]:
    return list(app.runs.audit_trail(run_id))


def count_runs(app: AppContext) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(OperationRun)) or 0)


def run_concurrently(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Start ``n`` calls as close together as a barrier allows."""
    barrier = threading.Barrier(n)

    def call(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


def test_start_creates_queued_run_with_one_audit_row(app: AppContext, scope: Scope) -> None:
    result = app.runs.start(
        INV,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(policy_types=["deviceConfigurations"]),
    )
    assert result.created
    run = app.runs.get(result.run.id)
    assert (run.status, run.outcome, run.type) == ("queued", None, "inventory.sync")
    assert RunContext.load(run.context).inputs.policy_types == ["deviceConfigurations"]
    [row] = audit_rows(app, run.id)
    assert (row.action, row.from_status, row.to_status) == ("run.queued", None, "queued")


def test_start_dedupes_active_identity_but_not_other_inputs(app: AppContext, scope: Scope) -> None:
    kwargs: dict[str, Any] = {
        "workspace_id": scope.workspace_id,
        "environment_id": scope.environment_id,
    }
    first = app.runs.start(INV, **kwargs, inputs=RunInputs(policy_types=["a"]))
    again = app.runs.start(INV, **kwargs, inputs=RunInputs(policy_types=["a"], trigger="schedule"))
    other = app.runs.start(INV, **kwargs, inputs=RunInputs(policy_types=["b"]))
    assert (again.created, again.run.id) == (False, first.run.id)
    assert other.created and other.run.id != first.run.id
    # Once the first run is finished, the same identity starts a new run.
    app.runs.complete(first.run.id, decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered"))
    fresh = app.runs.start(INV, **kwargs, inputs=RunInputs(policy_types=["a"]))
    assert fresh.created and fresh.run.id not in (first.run.id, other.run.id)


def test_start_rejects_environment_of_another_workspace(app: AppContext, scope: Scope) -> None:
    other = make_scope(app, "globex", "contoso")
    with pytest.raises(ScopeError):
        app.runs.start(INV, workspace_id=other.workspace_id, environment_id=scope.environment_id)


def test_concurrent_starts_of_one_identity_yield_one_row(app: AppContext, scope: Scope) -> None:
    inputs = RunInputs(policy_types=["deviceConfigurations", "compliancePolicies"])
    results = run_concurrently(
        8,
        lambda _i: app.runs.start(
            INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id, inputs=inputs
        ),
    )
    assert len({r.run.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert count_runs(app) == 1
    assert len(audit_rows(app, results[0].run.id)) == 1


def test_mark_running_and_heartbeat(app: AppContext, scope: Scope) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    dagster_id = "0f3c2b1a-aaaa-bbbb-cccc-000000000001"
    assert app.runs.mark_running(run.id, dagster_id).status is TransitionStatus.APPLIED
    assert app.runs.mark_running(run.id, dagster_id).status is TransitionStatus.UNCHANGED
    before = app.runs.get(run.id)
    assert before.status == "running" and before.dagster_run_id == dagster_id
    assert before.started_at is not None and before.started_at.tzinfo is not None
    assert app.runs.heartbeat(run.id, Progress(phase="listing", counts={"items": 12}))
    after = app.runs.get(run.id)
    assert after.last_heartbeat_at is not None and after.last_progress_at >= before.last_progress_at
    assert RunContext.load(after.context).progress == Progress(
        phase="listing", counts={"items": 12}
    )
    assert [a.action for a in audit_rows(app, run.id)] == ["run.queued", "run.running"]


def test_complete_is_compare_and_set(app: AppContext, scope: Scope) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    first = app.runs.complete(run.id, decision(RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial"))
    second = app.runs.complete(run.id, decision(RunOutcome.FAILED, "job_failed"))
    assert first.applied and second.status is TransitionStatus.ALREADY_FINAL
    stored = app.runs.get(run.id)
    assert (stored.status, stored.outcome, stored.reason_code) == (
        "completed",
        "partially_succeeded",
        "inventory_partial",
    )
    assert stored.completed_at is not None
    # The late report is kept and audited as not applied; the decision is not overwritten.
    ctx = RunContext.load(stored.context)
    assert [lc.reported_outcome for lc in ctx.late_completions] == [RunOutcome.FAILED]
    trail = audit_rows(app, run.id)
    assert [a.action for a in trail] == ["run.queued", "run.completed", "run.late_report_ignored"]
    ignored = trail[-1]
    assert (ignored.from_status, ignored.to_status, ignored.actor) == (
        "completed",
        "completed",
        "job",
    )
    assert (ignored.outcome, ignored.reason_code) == ("partially_succeeded", "inventory_partial")
    assert ignored.details == {
        "adapter": "inventory_sync",
        "reported_outcome": "failed",
        "reported_reason_code": "job_failed",
    }
    assert not app.runs.heartbeat(run.id)
    assert app.runs.mark_running(run.id, None).status is TransitionStatus.NOT_ACTIVE


def test_concurrent_completes_have_exactly_one_winner(app: AppContext, scope: Scope) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    app.runs.mark_running(run.id, "0f3c2b1a-aaaa-bbbb-cccc-000000000002")
    outcomes = [
        RunOutcome.SUCCEEDED,
        RunOutcome.FAILED,
        RunOutcome.BLOCKED,
        RunOutcome.PARTIALLY_SUCCEEDED,
    ]
    results = run_concurrently(
        len(outcomes),
        lambda i: app.runs.complete(run.id, decision(outcomes[i], f"reason_{i}")),
    )
    winners = [i for i, r in enumerate(results) if r.applied]
    assert len(winners) == 1
    assert all(
        r.status is TransitionStatus.ALREADY_FINAL for i, r in enumerate(results) if i != winners[0]
    )
    stored = app.runs.get(run.id)
    assert stored.outcome == outcomes[winners[0]].value
    trail = audit_rows(app, run.id)
    completed = [a for a in trail if a.to_status == "completed" and a.from_status != "completed"]
    assert len(completed) == 1 and completed[0].outcome == stored.outcome
    # Each loser's report is audited as not applied.
    assert [a.action for a in trail].count("run.late_report_ignored") == len(outcomes) - 1


def test_repeated_reconciliation_changes_nothing(app: AppContext, scope: Scope) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    d = decision(
        RunOutcome.FAILED,
        "stale_without_proof",
        Actor.RECONCILER,
        adapter="inventory_sync",
        workspace_id=scope.workspace_id,
        considered_ids=[3, 1, 2],
    )
    assert app.runs.reconcile(run.id, d).applied
    row_before = app.runs.get(run.id)
    audit_before = [(a.id, a.action) for a in audit_rows(app, run.id)]
    again = app.runs.reconcile(run.id, d.model_copy(update={"decided_at": datetime.now(UTC)}))
    assert again.status is TransitionStatus.UNCHANGED
    row_after = app.runs.get(run.id)
    assert row_after.context == row_before.context
    assert (row_after.status, row_after.outcome, row_after.completed_at) == (
        row_before.status,
        row_before.outcome,
        row_before.completed_at,
    )
    assert [(a.id, a.action) for a in audit_rows(app, run.id)] == audit_before
    stored = RunContext.load(row_after.context)
    assert stored.reconciliation_attempts == 1 and stored.decision is not None
    assert stored.decision.decided_by is Actor.RECONCILER


def test_unknown_run_id(app: AppContext) -> None:
    with pytest.raises(RunNotFoundError, match="operation run 999 not found"):
        app.runs.get(999)
    with pytest.raises(RunNotFoundError):
        app.runs.complete(999, decision(RunOutcome.SUCCEEDED, "x"))


def test_status_values_are_the_documented_ones() -> None:
    assert [s.value for s in RunStatus] == ["queued", "running", "completed"]
    assert [o.value for o in RunOutcome] == [
        "succeeded",
        "partially_succeeded",
        "blocked",
        "failed",
    ]


def _stale_failed(app: AppContext, scope: Scope) -> int:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    app.runs.mark_running(run.id, "0f3c2b1a-aaaa-bbbb-cccc-000000000003")
    stale = decision(RunOutcome.FAILED, "stale_without_proof", Actor.RECONCILER)
    assert app.runs.reconcile(run.id, stale).applied
    return run.id


def test_late_completion_with_proof_corrects_once(app: AppContext, scope: Scope) -> None:
    run_id = _stale_failed(app, scope)
    late = decision(
        RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage", considered_total=2
    )
    result = app.runs.complete(run_id, late)
    assert result.status is TransitionStatus.CORRECTED
    stored = app.runs.get(run_id)
    assert (stored.outcome, stored.reason_code) == (
        "partially_succeeded",
        "inventory_partial_coverage",
    )
    ctx = RunContext.load(stored.context)
    assert ctx.decision is not None
    assert ctx.decision.decided_by is Actor.LATE_CORRECTION
    assert [d.reason_code for d in ctx.previous_decisions] == ["stale_without_proof"]
    assert [lc.applied for lc in ctx.late_completions] == [True]
    trail = audit_rows(app, run_id)
    assert [a.action for a in trail] == [
        "run.queued",
        "run.running",
        "run.reconciled",
        "run.corrected",
    ]
    assert trail[-1].details["previous_reason_code"] == "stale_without_proof"
    # Once only: a second late report (even with proof) is recorded, not applied.
    again = app.runs.complete(run_id, decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered"))
    assert again.status is TransitionStatus.ALREADY_FINAL
    assert app.runs.get(run_id).outcome == "partially_succeeded"
    assert [a.action for a in audit_rows(app, run_id)][4:] == ["run.late_report_ignored"]


def test_late_completion_without_proof_stays_failed(app: AppContext, scope: Scope) -> None:
    run_id = _stale_failed(app, scope)
    result = app.runs.complete(run_id, decision(RunOutcome.FAILED, "job_finished_without_proof"))
    assert result.status is TransitionStatus.ALREADY_FINAL
    stored = app.runs.get(run_id)
    assert (stored.outcome, stored.reason_code) == ("failed", "stale_without_proof")
    ctx = RunContext.load(stored.context)
    assert [(lc.reason_code, lc.applied) for lc in ctx.late_completions] == [
        ("job_finished_without_proof", False)
    ]
    assert [a.action for a in audit_rows(app, run_id)][-2:] == [
        "run.reconciled",
        "run.late_report_ignored",
    ]


def test_proven_outcome_is_never_downgraded(app: AppContext, scope: Scope) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    proven = decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered", Actor.RECONCILER)
    app.runs.reconcile(run.id, proven)
    late = app.runs.complete(run.id, decision(RunOutcome.FAILED, "inventory_no_type_covered"))
    assert late.status is TransitionStatus.ALREADY_FINAL
    assert app.runs.get(run.id).outcome == "succeeded"


def test_concurrent_late_reports_correct_exactly_once(app: AppContext, scope: Scope) -> None:
    run_id = _stale_failed(app, scope)
    outcomes = [RunOutcome.SUCCEEDED, RunOutcome.PARTIALLY_SUCCEEDED, RunOutcome.BLOCKED]
    reasons = [
        "inventory_all_types_covered",
        "inventory_partial_coverage",
        "inventory_access_missing",
    ]
    results = run_concurrently(
        3, lambda i: app.runs.complete(run_id, decision(outcomes[i], reasons[i]))
    )
    assert sum(r.status is TransitionStatus.CORRECTED for r in results) == 1
    assert [a.action for a in audit_rows(app, run_id)].count("run.corrected") == 1


# The spec's list of reconciler "failed without proof" decisions, written out here so that a
# reason dropped from the product's set fails this test.
NO_PROOF_DECISIONS = [
    "stale_without_proof",
    "queued_never_started",
    "dagster_queue_wait_exceeded",
    "dagster_run_start_timed_out",
    "dagster_run_failed_without_proof",
    "dagster_run_canceled_without_proof",
    "dagster_success_without_proof",
    "materialization_without_proof",
]


def test_the_correctable_set_is_the_no_proof_decisions() -> None:
    assert set(NO_PROOF_DECISIONS) == CORRECTABLE_REASONS


@pytest.mark.parametrize("reason", NO_PROOF_DECISIONS)
def test_every_no_proof_decision_is_corrected_once_by_late_proof(
    app: AppContext, scope: Scope, reason: str
) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    assert app.runs.reconcile(run.id, decision(RunOutcome.FAILED, reason, Actor.RECONCILER)).applied
    late = app.runs.complete(run.id, decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered"))
    assert late.status is TransitionStatus.CORRECTED
    second = app.runs.complete(
        run.id, decision(RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage")
    )
    assert second.status is TransitionStatus.ALREADY_FINAL
    stored = app.runs.get(run.id)
    assert (stored.outcome, stored.reason_code) == ("succeeded", "inventory_all_types_covered")
    ctx = RunContext.load(stored.context)
    assert [d.reason_code for d in ctx.previous_decisions] == [reason]
    assert [a.action for a in audit_rows(app, run.id)].count("run.corrected") == 1


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (RunOutcome.BLOCKED, "environment_consent_missing"),
        (RunOutcome.FAILED, "proof_ambiguous"),
        (RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage"),
    ],
)
def test_proven_and_blocked_decisions_are_never_corrected(
    app: AppContext, scope: Scope, outcome: RunOutcome, reason: str
) -> None:
    run = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run
    app.runs.reconcile(run.id, decision(outcome, reason, Actor.RECONCILER))
    late = app.runs.complete(run.id, decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered"))
    assert late.status is TransitionStatus.ALREADY_FINAL
    assert (app.runs.get(run.id).outcome, app.runs.get(run.id).reason_code) == (
        outcome.value,
        reason,
    )


def test_a_batch_stores_exactly_what_the_single_row_path_stores(
    app: AppContext, scope: Scope
) -> None:
    """``reconcile_many_in`` (rows joined from one parameter, audit details reusing the
    context's dump) stores byte for byte what ``reconcile`` stores: context text, columns
    and audit row."""
    from sqlalchemy import Text, cast

    other = make_scope(app, "acme", "batch-twin")
    inputs = RunInputs(policy_types=["deviceConfigurations"], trigger="schedule")
    single, batched = (
        app.runs.start(
            INV, workspace_id=s.workspace_id, environment_id=s.environment_id, inputs=inputs
        ).run.id
        for s in (scope, other)
    )
    d = decision(
        RunOutcome.PARTIALLY_SUCCEEDED,
        "inventory_partial_coverage",
        Actor.RECONCILER,
        artifact_kind="inventory_coverage",
        artifact_ids=[3, 1, 2],
        artifact_statuses=["succeeded", "throttled"],
        counts={"covered_types": 2, "missing_types": 1},
        dagster_run_id="0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
        artifact_created_at=datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC),
    )
    assert app.runs.reconcile(single, d).status is TransitionStatus.APPLIED
    with app.sessions() as session, session.begin():
        runs = list(session.scalars(select(OperationRun).where(OperationRun.id == batched)))
        [status] = app.runs.reconcile_many_in(session, runs, {batched: d}).values()
    assert status is TransitionStatus.APPLIED

    def stored(run_id: int) -> tuple[Any, ...]:
        with app.sessions() as session:
            row = session.execute(
                select(
                    OperationRun.status,
                    OperationRun.outcome,
                    OperationRun.reason_code,
                    OperationRun.completed_at,
                    OperationRun.stale_at,
                    cast(OperationRun.context, Text),
                ).where(OperationRun.id == run_id)
            ).one()
            audit = session.execute(
                select(
                    AuditLog.action,
                    AuditLog.actor,
                    AuditLog.from_status,
                    AuditLog.to_status,
                    AuditLog.outcome,
                    AuditLog.reason_code,
                    cast(AuditLog.details, Text),
                ).where(AuditLog.operation_run_id == run_id, AuditLog.action == "run.reconciled")
            ).one()
        return (*row, *audit)

    assert stored(batched) == stored(single)
    assert stored(batched)[3] == d.decided_at


def test_a_batch_of_decisions_is_written_in_two_statements(app: AppContext, scope: Scope) -> None:
    """``reconcile_many_in``: one guarded UPDATE and one audit INSERT for the whole batch;
    a row finalized meanwhile is not overwritten and gets no second audit row."""
    from sqlalchemy import event

    ids = [
        app.runs.start(
            INV,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(policy_types=[f"t{i}"]),
        ).run.id
        for i in range(40)
    ]
    done_by_job = ids[7]
    app.runs.mark_running(done_by_job, None)
    app.runs.complete(done_by_job, decision(RunOutcome.SUCCEEDED, "inventory_all_types_covered"))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        statements.append(" ".join(sql.split()[:3]))

    with app.sessions() as session, session.begin():
        runs = list(session.scalars(select(OperationRun).where(OperationRun.id.in_(ids))))
        # The job's completion happened after this batch read its rows: they look open.
        for run in runs:
            if run.id == done_by_job:
                run.__dict__["status"] = RunStatus.RUNNING.value
        event.listen(app.engine, "before_cursor_execute", record)
        try:
            results = app.runs.reconcile_many_in(
                session,
                runs,
                {
                    i: decision(RunOutcome.FAILED, "stale_without_proof", Actor.RECONCILER)
                    for i in ids
                },
            )
        finally:
            event.remove(app.engine, "before_cursor_execute", record)
    applied = [i for i, status in results.items() if status is TransitionStatus.APPLIED]
    assert sorted(applied) == sorted(set(ids) - {done_by_job})
    assert results[done_by_job] is TransitionStatus.ALREADY_FINAL
    batch_writes = [s for s in statements if "UPDATE" in s or "INSERT" in s]
    # The batch's two writes; then the one row that lost takes the single-row path, whose
    # own guarded UPDATE changes nothing (and writes no audit row).
    assert batch_writes == [
        "UPDATE operation_runs SET",
        "INSERT INTO audit_log",
        "UPDATE operation_runs SET",
    ]
    for run_id in applied:
        stored = app.runs.get(run_id)
        assert (stored.status, stored.outcome) == ("completed", "failed")
        actions = [a.action for a in audit_rows(app, run_id)]
        assert actions.count("run.reconciled") == 1
    assert app.runs.get(done_by_job).outcome == "succeeded"
    assert [a.action for a in audit_rows(app, done_by_job)].count("run.reconciled") == 0
