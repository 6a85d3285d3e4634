"""Batch statements whose text does not depend on the batch (``db/bulk.py``), on both
databases: the rows they stand for, and one statement text whatever the batch size."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, event, select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import bulk
from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun
from opsrecon_dagster_tests.conftest import Scope, make_scope


def _statements(app: AppContext, run: Any) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(app.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(app.engine, "before_cursor_execute", record)
    return seen


def test_one_of_selects_the_listed_values_in_one_statement_text(
    app: AppContext, scope: Scope
) -> None:
    envs = [scope, *(make_scope(app, "acme", f"one-of-{i}") for i in range(4))]
    ids = [s.environment_id for s in envs]
    keys = [s.partition_key for s in envs]
    found: list[set[Any]] = []

    def query(column: Any, values: list[Any]) -> None:
        with app.sessions() as session:
            found.append(
                set(
                    session.scalars(
                        select(ManagedEnvironment.id).where(bulk.one_of(session, column, values))
                    )
                )
            )

    def queries() -> None:
        query(ManagedEnvironment.id, ids[:1])
        query(ManagedEnvironment.id, [*ids[1:], 10**9])
        query(ManagedEnvironment.partition_key, keys[2:])

    texts = _statements(app, queries)
    assert found == [set(ids[:1]), set(ids[1:]), set(ids[2:])]
    assert texts[0] == texts[1]  # the same text for one value and for five


def test_rows_of_joins_typed_values_as_a_bound_parameter_would_store_them(
    app: AppContext, scope: Scope
) -> None:
    """The per-row values of a batch UPDATE (``rows_of``) arrive as stored by binding:
    JSON as the column's own encoding, timestamps as timestamps."""
    run_ids = [
        app.runs.start(
            "inventory.sync", workspace_id=scope.workspace_id, environment_id=scope.environment_id
        ).run.id,
        app.runs.start(
            "baseline.capture", workspace_id=scope.workspace_id, environment_id=scope.environment_id
        ).run.id,
    ]
    at = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    contexts = [{"a": [1, "x"], "b": {"c": None}}, {}]
    column = OperationRun.__table__.c
    with app.sessions.begin() as session:
        rows = bulk.rows_of(
            session,
            {
                "id": (run_ids, column.id.type),
                "context": (contexts, column.context.type),
                "completed_at": ([at, at], column.completed_at.type),
            },
        )
        session.execute(
            update(OperationRun)
            .where(OperationRun.id == rows.c.id)
            .values(context=rows.c.context, completed_at=rows.c.completed_at)
            .execution_options(synchronize_session=False)
        )
    # The same values bound as parameters, for comparison, on a third row.
    twin = app.runs.start(
        "backup.schedule.execute",
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run.id
    with app.sessions.begin() as session:
        session.execute(
            update(OperationRun)
            .where(OperationRun.id == twin)
            .values(context=contexts[0], completed_at=at)
            .execution_options(synchronize_session=False)
        )
    with app.sessions() as session:
        stored = dict(
            session.execute(
                select(OperationRun.id, cast(OperationRun.context, Text)).where(
                    OperationRun.id.in_([*run_ids, twin])
                )
            ).all()
        )
        times = set(
            session.scalars(
                select(OperationRun.completed_at).where(OperationRun.id.in_([*run_ids, twin]))
            )
        )
    assert stored[run_ids[0]] == stored[twin]
    assert times == {at}
