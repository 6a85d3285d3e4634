"""The reconciliation service: decide a batch of stale runs and deliver the decisions. The
one code path of the reconciliation sensors, ``opsrecon reconcile`` and the demo.

Plain Python. Dagster is behind one interface, ``DagsterPort``: what reconciliation reads
(``DagsterView``) and where a decision is shown (``DecisionRecorder``). The Dagster layer
implements it over a real instance (``instance/decisions.py``).

``reconcile_batch`` decides (the ``Reconciler``) and records the pending outbox entries on
their runs; ``deliver`` writes their asset events and acknowledges them; ``drain`` repeats
both until the backlog is empty or a time budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.reconciliation import outbox
from opsrecon_dagster.reconciliation.dagster_view import DagsterView
from opsrecon_dagster.reconciliation.gc_pacing import paced_collection
from opsrecon_dagster.reconciliation.outbox import DecisionEvent
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult

# Decisions per batch (one transaction each).
# Per-batch costs (Dagster reads, the candidate query, a commit) are spread over more runs
# at 1,000 than at 500 (sensor path about 8% faster, benchmarks/reconcile_backlog.py);
# a batch's locks are held for about half a second.
BATCH_SIZE = 1000

EventWriter = Callable[[], None]


class DecisionRecorder(Protocol):
    def record(self, decisions: Sequence[DecisionEvent], language: Language) -> EventWriter:
        """Show each decision on its run now (idempotently: a repeated decision changes
        nothing) and return what writes the decisions' asset events. ``deliver`` calls it
        before acknowledging the entries, possibly on another thread."""
        ...


class DagsterPort(DagsterView, DecisionRecorder, Protocol):
    """Everything reconciliation needs from Dagster: reads, and showing decisions."""


def _nothing_to_write() -> None:
    return None


@dataclass(frozen=True)
class Delivery:
    """The asset events still to be written for pending outbox entries, and those entries."""

    write_events: EventWriter = _nothing_to_write
    entry_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Batch:
    """One reconciliation batch: its results, and the delivery its caller must complete."""

    results: list[ReconcileResult]
    delivery: Delivery


def reconcile_batch(
    app: AppContext,
    dagster: DagsterPort,
    *,
    now: datetime | None = None,
    run_ids: Sequence[int] | None = None,
    limit: int = BATCH_SIZE,
    op_type: str | None = None,
    workspace_id: int | None = None,
    dry_run: bool = False,
    in_flight: Collection[int] = (),
) -> Batch:
    """Run one reconciliation batch and prepare the delivery of pending decisions.

    The batch's decisions enter the outbox with the decisions. Then pending entries, oldest
    first and at least a batch of them (those of ``run_ids`` only, when given; none of
    ``in_flight``, still being delivered), are recorded on their Dagster runs; the caller
    completes the returned delivery with ``deliver``.
    """
    at = now
    reconciler = Reconciler(
        app.sessions, app.runs, dagster, clock=(lambda: at) if at is not None else None
    )
    results = reconciler.reconcile(
        limit=limit, run_ids=run_ids, op_type=op_type, workspace_id=workspace_id, dry_run=dry_run
    )
    if dry_run:
        return Batch(results, Delivery())
    with app.sessions() as session:
        # At least a whole batch, so a batch's own entries fit behind older ones.
        entries = outbox.pending(
            session, run_ids=run_ids, limit=max(limit, outbox.EMIT_LIMIT), in_flight=in_flight
        )
    if not entries:
        return Batch(results, Delivery())
    write_events = dagster.record([e.event for e in entries], app.language)
    return Batch(results, Delivery(write_events, tuple(e.id for e in entries)))


def deliver(app: AppContext, delivery: Delivery) -> None:
    """Write a delivery's events, then acknowledge its entries. A crash in between leaves
    the entries pending, so the next delivery repeats them (at least once)."""
    delivery.write_events()
    if delivery.entry_ids:
        with app.sessions.begin() as session:
            outbox.acknowledge(session, list(delivery.entry_ids))


def drain(
    app: AppContext,
    dagster: DagsterPort,
    *,
    now: datetime,
    budget_seconds: float,
    limit: int = BATCH_SIZE,
) -> list[ReconcileResult]:
    """Reconcile and deliver batch after batch until the backlog is empty or the time budget
    is spent. Rows found alive or waiting are due again only later, so each batch reads
    rows the drain has not seen.

    A batch's events are written while the next batch is decided (one writer thread, one
    delivery at a time, in order): each side waits on its own database much of the time.
    The next batch leaves the entries in flight out of its delivery; a failed delivery
    leaves its entries pending and fails the drain once the batch in hand is committed.
    """
    deadline = time.monotonic() + budget_seconds
    results: list[ReconcileResult] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliver") as writer:
        delivering: Future[None] | None = None
        in_flight: tuple[int, ...] = ()
        while True:
            with paced_collection():
                batch = reconcile_batch(app, dagster, now=now, limit=limit, in_flight=in_flight)
            if delivering is not None:
                delivering.result()
            delivering = writer.submit(_paced_deliver, app, batch.delivery)
            in_flight = batch.delivery.entry_ids
            results += batch.results
            if len(batch.results) < limit or time.monotonic() >= deadline:
                delivering.result()
                return results


def _paced_deliver(app: AppContext, delivery: Delivery) -> None:
    with paced_collection():
        deliver(app, delivery)
