"""The decision outbox read back: oldest first, and an entry this product did not write is
skipped by id, never reported half-read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import DecisionOutbox
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster_tests.conftest import make_scope


def _event(run_id: int) -> outbox.DecisionEvent:
    return outbox.DecisionEvent(
        operation_run_id=run_id,
        outcome=RunOutcome.FAILED,
        reason_code="stale_without_proof",
        adapter="inventory_sync",
        decided_by=Actor.RECONCILER,
        decided_at=datetime.now(UTC),
    )


def test_pending_reads_entries_oldest_first_and_skips_unreadable_ones(
    app: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    scopes = [make_scope(app, "acme", f"env-{i}") for i in range(3)]
    runs = [
        app.runs.start(
            OperationType.INVENTORY_SYNC,
            workspace_id=s.workspace_id,
            environment_id=s.environment_id,
            inputs=RunInputs(trigger="test"),
        ).run.id
        for s in scopes
    ]
    assert len(set(runs)) == 3
    with app.sessions.begin() as session:
        outbox.enqueue_many(session, [_event(runs[0])])
        # Written outside the product: an unknown field, then not an object at all.
        session.add(DecisionOutbox(operation_run_id=runs[1], event={"token": "s3cr3t"}))
        session.add(DecisionOutbox(operation_run_id=runs[1], event=["not", "an", "event"]))
        outbox.enqueue_many(session, [_event(runs[2])])
    caplog.set_level(logging.WARNING)
    with app.sessions() as session:
        found = outbox.pending(session)
        ids = [e.id for e in found]
        assert [e.event.operation_run_id for e in found] == [runs[0], runs[2]]
        assert ids == sorted(ids)
        assert outbox.count(session) == 4
        assert [e.event.operation_run_id for e in outbox.pending(session, run_ids=[runs[2]])] == [
            runs[2]
        ]
    skipped = [r.getMessage() for r in caplog.records if "not readable" in r.getMessage()]
    assert len(skipped) == 2  # the first read; the second reads only the other run's entry
    assert not any("s3cr3t" in m or "token" in m for m in skipped)


def test_an_acknowledged_entry_id_never_names_a_newer_entry(app: AppContext) -> None:
    """Deliveries in flight and acknowledgements name entries by id: a new entry must not
    get the id of one just deleted (SQLite reuses the highest rowid unless AUTOINCREMENT)."""
    scope = make_scope(app, "acme", "env-0")
    run_id = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(trigger="test"),
    ).run.id
    with app.sessions.begin() as session:
        outbox.enqueue_many(session, [_event(run_id), _event(run_id)])
    with app.sessions.begin() as session:
        first = [e.id for e in outbox.pending(session)]
        assert outbox.acknowledge(session, first) == 2
    with app.sessions.begin() as session:
        outbox.enqueue_many(session, [_event(run_id)])
    with app.sessions() as session:
        [again] = outbox.pending(session)
    assert again.id > max(first)
