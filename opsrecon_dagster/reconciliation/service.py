"""The reconciliation service: decide a batch of stale runs, and deliver decisions to
Dagster. The one code path of the reconciliation sensors, ``opsrecon reconcile`` and the
demo.

Plain Python. Dagster is behind one interface, ``DagsterPort``: what reconciliation reads
(``DagsterView``) and where decisions are shown (``DecisionRecorder``). The Dagster layer
implements it over a real instance (``instance/decisions.py``).

``reconcile_batch`` decides (the ``Reconciler``): the decisions and their outbox entries
commit together, and nothing is written to Dagster yet. ``deliver`` claims due outbox
entries chunk by chunk (the reconciler's and the jobs' own), shows each chunk in Dagster in
grouped writes, and acknowledges it, until none is due or its deadline has passed: what is
left stays pending for the next delivery. ``drain`` alternates both within a time budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.enums import Actor
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.outbox import DecisionEvent
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.reconciliation.dagster_view import DagsterView
from opsrecon_dagster.reconciliation.gc_pacing import paced_collection
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult

# Decisions per batch (one transaction each).
# Per-batch costs (Dagster reads, the candidate query, a commit) are spread over more runs
# at 1,000 than at 500 (sensor path about 8% faster, benchmarks/reconcile_backlog.py);
# a batch's locks are held for about half a second.
BATCH_SIZE = 1000

# Outbox entries shown per chunk (one claim, one grouped write, one acknowledgement): a
# whole batch's decisions, so a batch's stand-in runs are created once.
DELIVERY_CHUNK = BATCH_SIZE


class DecisionRecorder(Protocol):
    def show(
        self,
        decisions: Sequence[DecisionEvent],
        language: Language,
        *,
        check_existing: Collection[int] = (),
    ) -> None:
        """Show decisions in Dagster, writes grouped per kind. Idempotent: what exists is
        not created or ended again; for the operation runs in ``check_existing`` (a
        repeated delivery, a job's own decision that its worker may have reported) what
        Dagster already has is read first and not written twice."""
        ...


class DagsterPort(DagsterView, DecisionRecorder, Protocol):
    """Everything reconciliation needs from Dagster: reads, and showing decisions."""


def reconcile_batch(
    app: AppContext,
    dagster: DagsterView,
    *,
    now: datetime | None = None,
    run_ids: Sequence[int] | None = None,
    limit: int = BATCH_SIZE,
    op_type: str | None = None,
    workspace_id: int | None = None,
    dry_run: bool = False,
    acted_by: str | None = None,
) -> list[ReconcileResult]:
    """Decide one batch of open runs (stale ones, or exactly ``run_ids``). The decisions
    enter the outbox with the decisions; ``deliver`` shows them in Dagster. ``acted_by``:
    the operator running ``opsrecon reconcile``, recorded on the audit rows it writes."""
    at = now
    reconciler = Reconciler(
        app.sessions,
        app.runs,
        dagster,
        clock=(lambda: at) if at is not None else None,
        acted_by=acted_by,
    )
    with paced_collection():
        return reconciler.reconcile(
            limit=limit,
            run_ids=run_ids,
            op_type=op_type,
            workspace_id=workspace_id,
            dry_run=dry_run,
        )


def operation_run_of(app: AppContext, dagster_run_id: str) -> int | None:
    """The operation run that records this Dagster run (one launched without the tag: its
    first step created the row and linked it), if any."""
    with app.sessions() as session:
        return session.scalar(
            select(OperationRun.id)
            .where(OperationRun.dagster_run_id == dagster_run_id)
            .order_by(OperationRun.id.desc())
            .limit(1)
        )


@dataclass(frozen=True)
class Delivered:
    """What a delivery did: entries shown and acknowledged, in how many chunks, and whether
    it stopped with entries still due (its deadline passed)."""

    entries: int = 0
    chunks: int = 0
    finished: bool = True
    operation_run_ids: tuple[int, ...] = ()


def deliver(
    app: AppContext,
    dagster: DecisionRecorder,
    *,
    now: datetime | None = None,
    run_ids: Sequence[int] | None = None,
    deadline: float | None = None,
    chunk: int = DELIVERY_CHUNK,
    monotonic: Callable[[], float] = time.monotonic,
) -> Delivered:
    """Show due outbox entries in Dagster, chunk by chunk, oldest first (those of
    ``run_ids`` only, when given), until none is due or ``deadline`` has passed (on the
    ``monotonic`` clock: ``time.monotonic`` unless a caller drives it).

    Each chunk is claimed (committed before any Dagster write, so no other deliverer takes
    it), shown, and then acknowledged. A crash in between leaves the chunk to be claimed
    again once its lease ends, as a repeated delivery; a failed write releases it at once
    and raises. ``now``: the caller's clock, the one its decisions were stamped with.
    """
    shown, chunks = 0, 0
    run_ids_shown: list[int] = []
    while deadline is None or monotonic() < deadline:
        # Decisions are stamped with the real time: an entry is due by the caller's
        # clock ("as of" a later instant: a worker's grace has passed) or the real one.
        at = max(now, datetime.now(UTC)) if now is not None else datetime.now(UTC)
        with app.sessions.begin() as session:
            token, entries = outbox.claim(session, now=at, limit=chunk, run_ids=run_ids)
        if not entries:
            return Delivered(shown, chunks, True, tuple(run_ids_shown))
        ids = [e.id for e in entries]
        try:
            with paced_collection():
                dagster.show(
                    [e.event for e in entries],
                    app.language,
                    check_existing={
                        e.event.operation_run_id
                        for e in entries
                        if e.repeated or e.event.decided_by is not Actor.RECONCILER
                    },
                )
        except BaseException:
            with app.sessions.begin() as session:
                outbox.release(session, ids, token, at)
            raise
        with app.sessions.begin() as session:
            outbox.acknowledge(session, ids, token)
        shown, chunks = shown + len(entries), chunks + 1
        run_ids_shown += [e.event.operation_run_id for e in entries]
    return Delivered(shown, chunks, False, tuple(run_ids_shown))


@dataclass(frozen=True)
class Drained:
    """A drain's decisions and its deliveries."""

    results: list[ReconcileResult] = field(default_factory=list)
    delivered: int = 0
    finished: bool = True  # False: the budget ran out with runs or entries left


def drain(
    app: AppContext,
    dagster: DagsterPort,
    *,
    now: datetime,
    budget_seconds: float,
    limit: int = BATCH_SIZE,
    monotonic: Callable[[], float] = time.monotonic,
) -> Drained:
    """Decide and deliver batch after batch until the backlog and the outbox are empty or
    the time budget is spent (checked between batches and between delivery chunks, so a
    drain ends within about one chunk's writes of its budget). Rows found alive or
    waiting are due again only later, so each batch reads rows the drain has not seen.

    Deliveries run in one writer thread while the next batch is decided: each side waits
    on its own database much of the time. The claims keep them apart (a delivery takes only
    committed, unclaimed entries), and one delivery runs at a time, in order.
    ``monotonic``: the clock the budget is measured on (a test passes its own).
    """
    deadline = monotonic() + budget_seconds
    results: list[ReconcileResult] = []
    delivered, finished = 0, True
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliver") as writer:
        delivering: Future[Delivered] | None = None
        while True:
            batch = reconcile_batch(app, dagster, now=now, limit=limit)
            results += batch
            if delivering is not None:
                sent = delivering.result()
                delivered += sent.entries
                finished = sent.finished
            delivering = writer.submit(
                deliver, app, dagster, now=now, deadline=deadline, monotonic=monotonic
            )
            more = len(batch) >= limit
            if not more or not finished or monotonic() >= deadline:
                sent = delivering.result()
                delivered += sent.entries
                return Drained(results, delivered, sent.finished and not more)
