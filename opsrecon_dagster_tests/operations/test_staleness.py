"""One staleness rule: the due time the lifecycle stores (candidate selection, the overview)
and the Python form (per-run checks) agree for every type and lifecycle, unknown types
included; Dagster's view of a run refines it (queued runs wait, started runs follow the
heartbeat, ended runs decide), and rows not decidable yet are looked at again only when they
could be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations.catalog import OperationCatalog, OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, RunInputs
from opsrecon_dagster.operations.staleness import (
    DagsterRunInfo,
    Liveness,
    StalenessRule,
    liveness,
)
from opsrecon_dagster_tests.conftest import make_scope

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
_unique = count()
_steps = st.sampled_from(["queued", "running", "heartbeat", "completed"])
_lifecycles = st.lists(st.tuples(st.sampled_from(list(OperationType)), _steps), max_size=8)
_offsets = st.lists(st.integers(-60, 3 * 3600), min_size=1, max_size=4)  # seconds from now


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=_lifecycles, offsets=_offsets)
def test_stored_due_times_are_the_rule(app: AppContext, rows, offsets) -> None:
    """Whatever lifecycle a row went through, its stored due time is the rule's, and the
    selection (SQL over the stored time) picks exactly the rows the rule calls stale."""
    scope = make_scope(app, "acme", "contoso")
    rule = StalenessRule(app.catalog)
    ids = []
    for op_type, step in rows:
        run = app.runs.start(
            op_type,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(scheduled_for=NOW + timedelta(minutes=next(_unique))),
        ).run
        if step != "queued":
            app.runs.mark_running(run.id, None)
        if step == "heartbeat":
            app.runs.heartbeat(run.id)
        if step == "completed":
            app.runs.complete(run.id, _failed())
        ids.append(run.id)
    with app.sessions() as s:
        loaded = s.scalars(select(OperationRun).where(OperationRun.id.in_(ids))).all()
        for r in loaded:
            assert r.stale_at == rule.due_at(r.type, r.status, r.last_progress_at)
        for offset in offsets:
            at = datetime.now(UTC) + timedelta(seconds=offset)
            by_sql = set(
                s.scalars(select(OperationRun.id).where(OperationRun.id.in_(ids), rule.sql(at)))
            )
            by_rule = {
                r.id for r in loaded if rule.is_stale(r.type, r.status, r.last_progress_at, at)
            }
            assert by_sql == by_rule


def test_restamp_makes_every_open_row_due_and_clears_final_ones(app: AppContext) -> None:
    """After a thresholds change, rows of any shape (unknown types too) are due at once and
    a final row never is."""
    scope = make_scope(app, "acme", "contoso")
    ids = {}
    for shape in ("queued", "running", "legacy.thing", "completed"):
        run = app.runs.start(
            OperationType.POLICY_SYNC,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(scheduled_for=NOW + timedelta(minutes=next(_unique))),
        ).run
        values = {
            "queued": {},
            "running": {"status": "running"},
            "legacy.thing": {"type": "legacy.thing"},
            "completed": {"status": "completed", "outcome": "failed"},  # due time left behind
        }[shape]
        if values:
            with app.engine.begin() as conn:
                conn.execute(update(OperationRun).where(OperationRun.id == run.id).values(**values))
        ids[shape] = run.id
    assert app.runs.restamp_open() == 3
    with app.sessions() as s:
        due = set(s.scalars(select(OperationRun.id).where(StalenessRule.sql(datetime.now(UTC)))))
        final = s.get_one(OperationRun, ids["completed"])
        assert final.stale_at is None
    assert due == {ids["queued"], ids["running"], ids["legacy.thing"]}


def _failed() -> Decision:
    return Decision(
        outcome=RunOutcome.FAILED,
        reason_code="job_finished_without_proof",
        adapter="generic",
        decided_by=Actor.JOB,
        decided_at=datetime.now(UTC),
        evidence=Evidence(),
    )


def test_unknown_types_use_the_shortest_threshold() -> None:
    catalog = OperationCatalog.with_overrides({})
    rule = StalenessRule(catalog)
    shortest = min(min(e.queued_stale_after, e.running_stale_after) for e in catalog.entries())
    for status in ("queued", "running"):
        assert not rule.is_stale("legacy.thing", status, NOW - shortest, NOW)
        assert rule.is_stale("legacy.thing", status, NOW - shortest - timedelta(seconds=1), NOW)
    assert not rule.is_stale("legacy.thing", "completed", NOW - timedelta(days=9), NOW)


def _row(status: str, age: timedelta, dagster_run_id: str | None = None) -> OperationRun:
    return OperationRun(
        id=1,
        type="inventory.sync",
        status=status,
        last_progress_at=NOW - age,
        created_at=NOW - age,
        dagster_run_id=dagster_run_id,
    )


def test_liveness_from_dagster_state() -> None:
    rule = StalenessRule(OperationCatalog())
    old = timedelta(hours=2)  # past every inventory threshold but the queue wait
    queued = DagsterRunInfo("r1", "QUEUED", created_at=NOW - old)
    started_now = DagsterRunInfo("r1", "STARTED", created_at=NOW - old, started_at=NOW)
    ended = DagsterRunInfo("r1", "FAILURE", created_at=NOW - old)
    assert liveness(rule, _row("queued", old, "r1"), queued, NOW) is Liveness.WAITING
    long_ago = DagsterRunInfo("r1", "QUEUED", created_at=NOW - timedelta(hours=7))
    assert liveness(rule, _row("queued", old, "r1"), long_ago, NOW) is (
        Liveness.QUEUE_WAIT_EXCEEDED
    )
    # A running row follows the heartbeat whatever Dagster's record says.
    assert liveness(rule, _row("running", old, "r1"), queued, NOW) is Liveness.STALE
    assert liveness(rule, _row("queued", old, "r1"), started_now, NOW) is Liveness.ALIVE
    assert liveness(rule, _row("running", timedelta(0), "r1"), ended, NOW) is Liveness.ENDED
    assert liveness(rule, _row("queued", old), None, NOW) is Liveness.NEVER_STARTED
    assert liveness(rule, _row("queued", timedelta(minutes=1)), None, NOW) is Liveness.ALIVE


def test_rows_not_decidable_are_looked_at_again_when_they_could_be() -> None:
    rule = StalenessRule(OperationCatalog())
    inventory = rule.thresholds("inventory.sync")
    old = timedelta(hours=2)
    queued = DagsterRunInfo("r1", "QUEUED", created_at=NOW - old)
    # Waiting in Dagster's queue: when the queue wait runs out, and at least every queued
    # threshold (the Dagster run may vanish meanwhile).
    waiting_at = rule.next_look(_row("queued", old, "r1"), queued, NOW)
    assert waiting_at == min(NOW - old + inventory.queue_wait, NOW + inventory.queued)
    # Started by Dagster 20 s ago, row not marked running yet: when the heartbeat rule
    # would call it stale.
    started = DagsterRunInfo("r1", "STARTED", started_at=NOW - timedelta(seconds=20))
    assert rule.next_look(_row("queued", old, "r1"), started, NOW) == (
        NOW - timedelta(seconds=20) + inventory.running
    )
    # Never sooner than a second from now, so a row on the boundary is not spun on.
    assert rule.next_look(_row("running", inventory.running, "r1"), None, NOW) == (
        NOW + timedelta(seconds=1)
    )
