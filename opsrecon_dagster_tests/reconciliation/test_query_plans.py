"""Every statement of a reconciliation batch is an index lookup, whatever the history.

The history tables are filled with enough rows that a planner without a usable index scans
them (tens of thousands of runs, thousands of artifacts), statistics are refreshed, a real
batch is decided while its statements are recorded, and each recorded statement is
explained: PostgreSQL's plan has no sequential scan over a history table, and SQLite's plan
searches every history table through an index. The candidate query reads its batch in
order from the due-time index, without sorting.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine

from opsrecon_dagster.db.models import (
    AuditLog,
    BackupItem,
    BackupSet,
    BaselineGap,
    BaselineProfile,
    BaselineSnapshot,
    BaselineSnapshotItem,
    EnvironmentReview,
    InventoryCoverage,
    InventoryItem,
    OperationRun,
)
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster_tests.conftest import ALL_TYPES, Scope
from opsrecon_dagster_tests.reconciliation.conftest import World

HISTORY_RUNS = 30_000
ARTIFACTS = 6_000  # per artifact table
ENVIRONMENTS = 12
BACKLOG = 5_000  # open rows, for the candidate query's plan
HISTORY_TABLES = {
    "operation_runs",
    "audit_log",
    "inventory_items",
    "inventory_coverage",
    "baseline_snapshots",
    "baseline_snapshot_items",
    "baseline_gaps",
    "backup_sets",
    "backup_items",
    "environment_reviews",
}
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def _insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    with engine.begin() as conn:
        conn.execute(insert(model), rows)
        first = conn.execute(text(f"SELECT max(id) FROM {model.__tablename__}")).scalar_one()
    return list(range(first - len(rows) + 1, first + 1))


def _seed_history(world: World, scopes: list[Scope]) -> None:
    """Finished runs and the artifacts they left, in bulk (not through the product: only
    their volume matters here)."""
    engine = world.app.engine
    types = [t.value for t in OperationType]

    def scope_of(i: int) -> Scope:
        return scopes[i % len(scopes)]

    run_ids = _insert(
        engine,
        OperationRun,
        [
            {
                "workspace_id": scope_of(i).workspace_id,
                "managed_environment_id": scope_of(i).environment_id,
                "type": types[i % len(types)],
                "status": "completed",
                "outcome": "succeeded",
                "reason_code": "history",
                "input_hash": f"h{i:063d}",
                "identity_key": f"k{i:063d}",
                "context": {},
                "created_at": LONG_AGO + timedelta(minutes=i),
                "last_progress_at": LONG_AGO + timedelta(minutes=i),
                "completed_at": LONG_AGO + timedelta(minutes=i + 1),
            }
            for i in range(HISTORY_RUNS)
        ],
    )
    in_scope = [
        (run_ids[i], scope_of(i).workspace_id, scope_of(i).environment_id) for i in range(ARTIFACTS)
    ]

    def per_run(**values: object) -> list[dict[str, Any]]:
        """One row per finished run, in that run's scope."""
        return [
            {"operation_run_id": r, "workspace_id": ws, "managed_environment_id": env, **values}
            for r, ws, env in in_scope
        ]

    _insert(
        engine,
        AuditLog,
        per_run(action="run.completed", actor="job", from_status="running", to_status="completed"),
    )
    _insert(engine, InventoryCoverage, per_run(policy_type=ALL_TYPES[0], status="succeeded"))
    items = _insert(
        engine,
        InventoryItem,
        [
            {
                "workspace_id": ws,
                "managed_environment_id": env,
                "policy_type": ALL_TYPES[1],
                "external_id": f"old-{run_id}",
                "display_name": "old",
                "content_hash": "0" * 64,
                "last_seen_operation_run_id": run_id,
            }
            for run_id, ws, env in in_scope
        ],
    )
    profiles = {
        s.environment_id: pid
        for s, pid in zip(
            scopes,
            _insert(
                engine,
                BaselineProfile,
                [
                    {
                        "workspace_id": s.workspace_id,
                        "managed_environment_id": s.environment_id,
                        "name": "old",
                        "active": False,
                    }
                    for s in scopes
                ],
            ),
            strict=True,
        )
    }
    snapshots = _insert(
        engine,
        BaselineSnapshot,
        [
            {
                "baseline_profile_id": profiles[env],
                "workspace_id": ws,
                "managed_environment_id": env,
                "operation_run_id": run_id,
                "status": "complete",
            }
            for run_id, ws, env in in_scope
        ],
    )
    _insert(
        engine,
        BaselineSnapshotItem,
        [
            {
                "baseline_snapshot_id": snap,
                "subject_key": "old",
                "inventory_item_id": item,
                "content_hash": "0" * 64,
            }
            for snap, item in zip(snapshots, items, strict=True)
        ],
    )
    _insert(
        engine,
        BaselineGap,
        [
            {"baseline_snapshot_id": snap, "subject_key": "old", "kind": "missing"}
            for snap in snapshots
        ],
    )
    schedule = world.schedule(scopes[0])
    sets = _insert(engine, BackupSet, per_run(backup_schedule_id=schedule, status="complete"))
    _insert(
        engine,
        BackupItem,
        [
            {"backup_set_id": s, "policy_type": ALL_TYPES[0], "external_id": "x", "status": "ok"}
            for s in sets
        ],
    )
    _insert(
        engine,
        EnvironmentReview,
        [
            {
                "workspace_id": ws,
                "managed_environment_id": env,
                "fingerprint": f"{run_id:064d}",
                "status": "published",
                "operation_run_id": run_id,
            }
            for run_id, ws, env in in_scope
        ],
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _backlog(world: World, scope: Scope) -> None:
    """Open runs of every family, half of them with the proof their job step wrote."""
    world.profile(scope, [{"policy_type": ALL_TYPES[0]}])
    world.schedule(scope)
    world.inventory(scope)
    families = [
        (OperationType.INVENTORY_SYNC, "inventory_items"),
        (OperationType.BASELINE_CAPTURE, "baseline_snapshots"),
        (OperationType.BACKUP_SCHEDULE_EXECUTE, "backup_sets"),
        (OperationType.ENVIRONMENT_REVIEW_COMPOSE, "environment_reviews"),
        (OperationType.RESTORE_EXECUTE, None),
    ]
    for op, asset in families:
        for i in range(2):
            tick = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=i)
            run_id = world.start(op, scope, scheduled_for=tick)
            world.running(run_id)
            if asset and i == 0:
                world.work_then_die(asset, run_id)


@pytest.fixture
def recorded(world: World) -> tuple[World, list[tuple[str, Any]]]:
    scopes = [world.scope(f"env-{i}") for i in range(ENVIRONMENTS)]
    _seed_history(world, scopes)
    _backlog(world, scopes[0])
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool):
        if not many:
            statements.append((statement, parameters))

    event.listen(world.app.engine, "before_cursor_execute", record)
    try:
        results = world.reconcile()
    finally:
        event.remove(world.app.engine, "before_cursor_execute", record)
    assert sum(r.verdict.outcome is not None for r in results) == 10  # a real batch
    return world, statements


def _explained(engine: Engine, statement: str, parameters: Any) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
        conn.rollback()
    return [str(row[-1]) for row in rows]


def _planned(engine: Engine, statements: list[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """The plan of every recorded read and update (inserts of new rows read nothing)."""
    return [
        (statement, _explained(engine, statement, parameters))
        for statement, parameters in statements
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH"))
    ]


def _scans(dialect: str, plan: list[str]) -> list[str]:
    """Plan lines that read a whole history table (or a whole index of one)."""
    if dialect == "sqlite":
        pattern = re.compile(r"^SCAN (\w+)")
    else:
        pattern = re.compile(r"Seq Scan on (\w+)")
    return [
        line
        for line in plan
        if (m := pattern.search(line.strip())) is not None and m.group(1) in HISTORY_TABLES
    ]


def test_every_statement_of_a_batch_is_an_index_lookup(
    recorded: tuple[World, list[tuple[str, Any]]],
) -> None:
    world, statements = recorded
    engine = world.app.engine
    planned = _planned(engine, statements)
    assert len(planned) >= 10  # selection, contexts, Dagster links, proof reads, writes
    scans = {
        statement: s for statement, plan in planned if (s := _scans(engine.dialect.name, plan))
    }
    assert scans == {}


def test_the_candidate_query_reads_its_batch_in_order_from_the_due_time_index(
    recorded: tuple[World, list[tuple[str, Any]]],
) -> None:
    world, statements = recorded
    engine = world.app.engine
    [(statement, parameters)] = [
        (s, p) for s, p in statements if "ORDER BY operation_runs.stale_at" in s
    ]
    # A backlog far larger than a batch (after an outage): sorting it would cost the most.
    scope = world.scope("env-0")
    _insert(
        engine,
        OperationRun,
        [
            {
                "workspace_id": scope.workspace_id,
                "managed_environment_id": scope.environment_id,
                "type": OperationType.INVENTORY_SYNC.value,
                "status": "running",
                "input_hash": f"b{i:063d}",
                "identity_key": f"b{i:063d}",
                "context": {},
                "created_at": LONG_AGO,
                "last_progress_at": LONG_AGO,
                "stale_at": LONG_AGO + timedelta(seconds=i),
            }
            for i in range(BACKLOG)
        ],
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    plan = _explained(engine, statement, parameters)
    assert any("ix_operation_runs_open_due" in line for line in plan), "\n".join(plan)
    # Read in index order: no sort step over the backlog.
    assert not any(("Sort" in line) or ("TEMP B-TREE" in line) for line in plan), plan
