"""Two reconciler processes over one backlog on PostgreSQL: every run finalized exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import AuditLog
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.operations.staleness import DagsterRunInfo
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.conftest import truncate_all
from opsrecon_dagster_tests.doubles import NoDagster
from opsrecon_dagster_tests.reconciliation.conftest import World


class _HoldFirstBatch(NoDagster):
    """Knows no Dagster runs; on its first call (inside the batch transaction, after the
    candidates are locked) it waits until the other worker holds its first batch too. So the
    two batches provably overlap in time, whatever the machine's load."""

    def __init__(self, barrier: Any) -> None:
        self._barrier = barrier
        self._held = False

    def runs_tagged(
        self, operation_run_ids: Sequence[int]
    ) -> Mapping[int, Sequence[DagsterRunInfo]]:
        if not self._held:
            self._held = True
            self._barrier.wait(timeout=60)
        return {}


def _drain(url: str, barrier: Any, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from opsrecon_dagster.reconciliation.reconciler import Reconciler

    app = AppContext(Settings(database_url=url))
    later = datetime.now(UTC) + timedelta(hours=3)
    reconciler = Reconciler(app.sessions, app.runs, _HoldFirstBatch(barrier), clock=lambda: later)
    considered: list[int] = []
    written: list[int] = []
    while True:
        batch = reconciler.reconcile(limit=7)
        if not batch:
            break
        considered += [r.run_id for r in batch]
        written += [r.run_id for r in batch if r.status is TransitionStatus.APPLIED]
    app.dispose()
    out.put((considered, written))


@pytest.fixture
def pg_world(postgres_test_url: str, instance, provider) -> Iterator[World]:
    """Skip-locked row locking is a PostgreSQL property: this test runs there only."""
    app = AppContext(Settings(database_url=postgres_test_url))
    truncate_all(app)
    yield World(app, instance, provider)
    app.dispose()


@pytest.mark.postgres
def test_two_reconcilers_never_double_finalize(pg_world: World) -> None:
    world = pg_world
    scope = world.scope("full")
    run_ids = [
        world.start(
            OperationType.POLICY_SYNC,
            scope,
            scheduled_for=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
        )
        for i in range(60)
    ]
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    url = world.app.url.render_as_string(hide_password=False)
    procs = [ctx.Process(target=_drain, args=(url, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (seen_a, wrote_a), (seen_b, wrote_b) = results
    # Skip-locked selection: the workers shared the backlog and never took the same row.
    assert wrote_a
    assert wrote_b
    assert not set(seen_a) & set(seen_b)
    written = Counter([*wrote_a, *wrote_b])
    assert sorted(written) == sorted(run_ids)
    assert set(written.values()) == {1}
    with world.app.sessions() as s:
        audit = Counter(
            s.scalars(select(AuditLog.operation_run_id).where(AuditLog.action == "run.reconciled"))
        )
    assert audit == Counter(dict.fromkeys(run_ids, 1))
