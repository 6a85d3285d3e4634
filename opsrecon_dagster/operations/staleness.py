"""When an open run needs a decision: one staleness rule, and what Dagster adds to it.

``StalenessRule`` is the single definition of "stale by the database": a queued or running
row whose last progress is older than its type's threshold. It renders itself as a Python
predicate (per-run checks, the overview) and as a SQL predicate (candidate selection), from
the same thresholds, so the two can never disagree. Unknown types use the shortest
threshold in the catalog.

``liveness`` refines it with what Dagster knows about the linked run: a run waiting in
Dagster's queue is not stale until the type's queue-wait threshold; a started run follows
the heartbeat rule; an ended run is decided at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, false, or_

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.enums import RunStatus

# Dagster run statuses, by name (this module does not import Dagster).
WAITING_STATUSES = frozenset({"QUEUED", "NOT_STARTED", "STARTING"})
STARTED_STATUSES = frozenset({"STARTED", "CANCELING"})
ENDED_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


@dataclass(frozen=True)
class Thresholds:
    queued: timedelta
    running: timedelta
    queue_wait: timedelta

    def for_status(self, status: str) -> timedelta:
        return self.queued if status == RunStatus.QUEUED.value else self.running


class StalenessRule:
    """Stale by the database: no progress past the type's threshold for its status."""

    def __init__(self, catalog: OperationCatalog) -> None:
        entries = catalog.entries()
        self._by_type = {
            e.type.value: Thresholds(
                e.queued_stale_after, e.running_stale_after, e.queue_wait_after
            )
            for e in entries
        }
        shortest = min(min(e.queued_stale_after, e.running_stale_after) for e in entries)
        self._unknown = Thresholds(shortest, shortest, min(e.queue_wait_after for e in entries))

    def thresholds(self, op_type: str) -> Thresholds:
        """The thresholds of ``op_type``; unknown types get the shortest ones."""
        return self._by_type.get(op_type, self._unknown)

    def is_stale(
        self, op_type: str, status: str, last_progress_at: datetime, now: datetime
    ) -> bool:
        """True when an open row has made no progress past its threshold."""
        if status not in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
            return False
        return now - last_progress_at > self.thresholds(op_type).for_status(status)

    def sql(self, now: datetime) -> ColumnElement[bool]:
        """The same rule as a SQL predicate over ``operation_runs`` (index-friendly ranges)."""
        clauses: list[ColumnElement[bool]] = []
        for op_type, t in self._by_type.items():
            for status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
                clauses.append(
                    and_(
                        OperationRun.type == op_type,
                        OperationRun.status == status,
                        OperationRun.last_progress_at < now - t.for_status(status),
                    )
                )
        clauses.append(
            and_(
                OperationRun.type.not_in(list(self._by_type)),
                OperationRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                OperationRun.last_progress_at < now - self._unknown.queued,
            )
        )
        return or_(false(), *clauses)


@dataclass(frozen=True)
class DagsterRunInfo:
    """What the Dagster instance says about one run (plain values, no Dagster types)."""

    run_id: str
    status: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    job_name: str | None = None
    partition_key: str | None = None


class Liveness(StrEnum):
    """Whether an open run may be decided now, and if so why."""

    ALIVE = "alive"  # progressing (heartbeat or Dagster start within the threshold)
    WAITING = "waiting"  # in Dagster's run queue, within the queue-wait threshold
    QUEUE_WAIT_EXCEEDED = "queue_wait_exceeded"  # waited in Dagster's queue too long
    ENDED = "ended"  # the Dagster run ended: decide from proof at once
    NEVER_STARTED = "never_started"  # queued row, no Dagster run exists, stale
    STALE = "stale"  # no progress past the threshold

    @property
    def decidable(self) -> bool:
        return self not in (Liveness.ALIVE, Liveness.WAITING)


def liveness(
    rule: StalenessRule,
    run: OperationRun,
    dagster: DagsterRunInfo | None,
    now: datetime,
) -> Liveness:
    """Combine the database rule with the linked Dagster run's state (SPEC §5)."""
    thresholds = rule.thresholds(run.type)
    if dagster is not None and dagster.status in ENDED_STATUSES:
        return Liveness.ENDED
    # Waiting only while the row is queued: once a worker marked it running, it has started,
    # whatever Dagster's record says, and the heartbeat rule applies.
    if (
        dagster is not None
        and dagster.status in WAITING_STATUSES
        and run.status == RunStatus.QUEUED.value
    ):
        since = dagster.created_at or run.created_at
        waited = now - since > thresholds.queue_wait
        return Liveness.QUEUE_WAIT_EXCEEDED if waited else Liveness.WAITING
    progress = run.last_progress_at
    if dagster is not None and dagster.status in STARTED_STATUSES:
        # A worker that has started but not yet marked the row running is progress too.
        if dagster.started_at is not None and dagster.started_at > progress:
            progress = dagster.started_at
        limit = thresholds.running
    else:
        limit = thresholds.for_status(run.status)
    if now - progress <= limit:
        return Liveness.ALIVE
    if run.status == RunStatus.QUEUED.value and dagster is None:
        # No Dagster run ever existed for it (none linked, or the linked one is unknown to
        # the instance: the submission died before creating it).
        return Liveness.NEVER_STARTED
    return Liveness.STALE
