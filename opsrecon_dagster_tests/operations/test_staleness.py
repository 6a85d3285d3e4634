"""One staleness rule: its SQL (candidate selection) and its Python form (per-run checks, the
overview) agree for every type, status and age, unknown types included; Dagster's view of a
run refines it (queued runs wait, started runs follow the heartbeat, ended runs decide)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog, OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.staleness import (
    DagsterRunInfo,
    Liveness,
    StalenessRule,
    liveness,
)
from opsrecon_dagster.settings import AppContext
from opsrecon_dagster_tests.conftest import make_scope

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
_unique = count()
_types = st.sampled_from([t.value for t in OperationType] + ["legacy.thing", "other.unknown"])
_statuses = st.sampled_from(["queued", "running", "completed"])
_ages = st.integers(0, 3 * 3600)  # seconds since last progress


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(st.tuples(_types, _statuses, _ages), min_size=1, max_size=8))
def test_sql_and_python_forms_of_the_rule_agree(app: AppContext, rows) -> None:
    scope = make_scope(app, "acme", "contoso")
    rule = StalenessRule(app.catalog)
    ids = []
    for op_type, status, age in rows:
        run = app.runs.start(
            OperationType.POLICY_SYNC,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(scheduled_for=NOW + timedelta(minutes=next(_unique))),
        ).run
        with app.engine.begin() as conn:  # any row shape, as the table may hold it
            conn.execute(
                update(OperationRun)
                .where(OperationRun.id == run.id)
                .values(type=op_type, status=status, last_progress_at=NOW - timedelta(seconds=age))
            )
        ids.append(run.id)
    with app.sessions() as s:
        by_sql = set(
            s.scalars(select(OperationRun.id).where(OperationRun.id.in_(ids), rule.sql(NOW)))
        )
        loaded = s.scalars(select(OperationRun).where(OperationRun.id.in_(ids))).all()
        by_python = {
            r.id for r in loaded if rule.is_stale(r.type, r.status, r.last_progress_at, NOW)
        }
    assert by_sql == by_python


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
