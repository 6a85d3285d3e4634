"""The operations overview: the attention list per environment, the last 24 h by type, the
latest decisions (in the configured language)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster_tests.conftest import Scope, decide, make_scope

DAGSTER_RUN = "0f3c2b1a-aaaa-bbbb-cccc-00000000000a"


def _start(app: AppContext, scope: Scope, op: OperationType, n: int) -> int:
    return app.runs.start(
        op,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(scheduled_for=datetime(2026, 1, 1, n, tzinfo=UTC)),
    ).run.id


def _complete(app: AppContext, run_id: int, outcome: RunOutcome, reason: str) -> None:
    app.runs.mark_running(run_id, DAGSTER_RUN if outcome is RunOutcome.FAILED else None)
    decide(app, run_id, outcome, reason)


def seed_overview_world(app: AppContext, scope: Scope) -> dict[str, int]:
    other = make_scope(app, "globex", "umbrella")
    ids = {
        "partial": _start(app, scope, OperationType.INVENTORY_SYNC, 1),
        "blocked": _start(app, scope, OperationType.INVENTORY_SYNC, 2),
        "failed": _start(app, other, OperationType.INVENTORY_SYNC, 3),
        "old_failure": _start(app, other, OperationType.INVENTORY_SYNC, 4),
        "open": _start(app, scope, OperationType.INVENTORY_SYNC, 5),
        "open_unknown": _start(app, other, OperationType.RESTORE_EXECUTE, 6),
    }
    _complete(app, ids["partial"], RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage")
    _complete(app, ids["blocked"], RunOutcome.BLOCKED, "inventory_access_missing")
    _complete(app, ids["old_failure"], RunOutcome.FAILED, "stale_without_proof")
    with app.engine.begin() as conn:  # decided two days ago: outside the 24 h window
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id == ids["old_failure"])
            .values(completed_at=datetime.now(UTC) - timedelta(days=2))
        )
    _complete(app, ids["failed"], RunOutcome.FAILED, "stale_without_proof")
    return ids


def test_attention_list_and_the_last_day(app: AppContext, scope: Scope) -> None:
    ids = seed_overview_world(app, scope)
    with app.sessions() as s:
        now = build_overview(s, datetime.now(UTC))
        later = build_overview(s, datetime.now(UTC) + timedelta(hours=2))
    assert (now.open, now.stale, now.decided_24h) == (2, 0, 3)
    assert later.stale == 2
    attention = {(r["workspace"], r["environment"]): r for r in later.attention.to_dict("records")}
    assert attention[("acme", "acme.contoso")] == {
        "workspace": "acme",
        "environment": "acme.contoso",
        "open": 1,
        "stale": 1,
        "blocked_24h": 1,
        "failed_24h": 0,
    }
    assert attention[("globex", "globex.umbrella")]["failed_24h"] == 1  # not the old one
    assert attention[("globex", "globex.umbrella")]["stale"] == 1  # the unknown type too
    assert now.by_type.loc["inventory.sync", "failed"] == 1
    assert now.by_type.loc["inventory.sync", "partially_succeeded"] == 1
    assert now.by_type.loc["restore.execute", "open"] == 1
    recent = now.recent.to_dict("records")
    assert recent[0]["run"] == ids["failed"]  # newest first
    assert recent[0]["dagster_run"] == DAGSTER_RUN[:8]
    assert now.latest_problem_dagster_run == DAGSTER_RUN
    partial = next(r for r in recent if r["run"] == ids["partial"])
    assert partial["outcome"] == "Partially succeeded"
    assert partial["reason_code"] == "inventory_partial_coverage"
    assert partial["environment"] == "acme.contoso"
    with app.sessions() as s:
        german = build_overview(s, datetime.now(UTC), language="de")
    partial_de = next(r for r in german.recent.to_dict("records") if r["run"] == ids["partial"])
    assert partial_de["outcome"] == "Teilweise erfolgreich"


def test_attention_list_names_the_newest_problem_per_environment_and_type(
    app: AppContext, scope: Scope
) -> None:
    """Failed first, then blocked, stuck, partially succeeded; a newer success of the same
    environment and type clears an older problem."""
    ids = seed_overview_world(app, scope)
    with app.sessions() as s:
        later = build_overview(s, datetime.now(UTC) + timedelta(hours=2))
    items = [
        (i.environment, i.type, i.outcome, i.reason_code, i.operation_run_id)
        for i in later.needs_attention
    ]
    assert items == [
        ("globex.umbrella", "inventory.sync", "failed", "stale_without_proof", ids["failed"]),
        ("acme.contoso", "inventory.sync", "blocked", "inventory_access_missing", ids["blocked"]),
        ("acme.contoso", "inventory.sync", "stuck", None, ids["open"]),
        ("globex.umbrella", "restore.execute", "stuck", None, ids["open_unknown"]),
    ]
    # A newer run's success of globex.umbrella's inventory clears its failure from the list,
    # also when the older run is decided after it (as the reconciler decides a stale run).
    other = make_scope(app, "globex", "umbrella")
    fixed = _start(app, other, OperationType.INVENTORY_SYNC, 7)
    _complete(app, fixed, RunOutcome.SUCCEEDED, "inventory_all_types_covered")
    with app.engine.begin() as conn:
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id == ids["failed"])
            .values(completed_at=datetime.now(UTC) + timedelta(minutes=5))
        )
    with app.sessions() as s:
        after = build_overview(s, datetime.now(UTC) + timedelta(hours=2))
    assert ("globex.umbrella", "inventory.sync") not in {
        (i.environment, i.type) for i in after.needs_attention if i.outcome != "stuck"
    }


def test_a_partial_result_needs_attention_too(app: AppContext, scope: Scope) -> None:
    run_id = _start(app, scope, OperationType.BACKUP_SCHEDULE_EXECUTE, 1)
    _complete(app, run_id, RunOutcome.PARTIALLY_SUCCEEDED, "backup_some_items_failed")
    with app.sessions() as s:
        [item] = build_overview(s, datetime.now(UTC)).needs_attention
    assert (item.environment, item.outcome, item.operation_run_id) == (
        "acme.contoso",
        "partially_succeeded",
        run_id,
    )
