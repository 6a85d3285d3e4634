"""When an open run needs a decision: one staleness rule, and what Dagster adds to it.

``StalenessRule`` is the single definition of "stale by the database": a queued or running
row whose last progress is older than its type's threshold. The lifecycle service stores
when that happens (``operation_runs.stale_at``, written with every progress and cleared on
completion), so candidate selection is one ordered range over a partial index: its cost
follows the batch, not the backlog or the history. The Python form (per-run checks) and the
stored time come from the same thresholds. Unknown types use the shortest threshold in the
catalog.

``liveness`` refines it with what Dagster knows about the linked run: a run waiting in
Dagster's queue is not stale until the type's queue-wait threshold, except one launched
(``STARTING``) that never started within Dagster's start timeout; a started run follows
the heartbeat rule; an ended run is decided at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import RunStatus
from opsrecon_dagster.operations.catalog import OperationCatalog

# Dagster run statuses, by name (this module does not import Dagster).
WAITING_STATUSES = frozenset({"QUEUED", "NOT_STARTED", "STARTING"})
STARTED_STATUSES = frozenset({"STARTED", "CANCELING"})
ENDED_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
OPEN = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
# A row found alive is not looked at again sooner than this (no hot loop on a boundary).
MIN_LOOK_DELAY = timedelta(seconds=1)
# Dagster's own default for ``run_monitoring.start_timeout_seconds`` (dagster.yaml).
DEFAULT_START_TIMEOUT = timedelta(seconds=180)


@dataclass(frozen=True)
class Thresholds:
    queued: timedelta
    running: timedelta
    queue_wait: timedelta

    def for_status(self, status: str) -> timedelta:
        return self.queued if status == RunStatus.QUEUED.value else self.running


class StalenessRule:
    """Stale by the database: no progress past the type's threshold for its status.

    ``start_timeout``: how long a launched Dagster run may stay ``STARTING`` (Dagster's run
    monitoring setting; None: no limit but the queue wait)."""

    def __init__(
        self, catalog: OperationCatalog, start_timeout: timedelta | None = DEFAULT_START_TIMEOUT
    ) -> None:
        self.start_timeout = start_timeout
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

    def due_at(self, op_type: str, status: str, last_progress_at: datetime) -> datetime | None:
        """When an open row with this progress becomes stale (None: the row is not open)."""
        if status not in OPEN:
            return None
        return last_progress_at + self.thresholds(op_type).for_status(status)

    def is_stale(
        self, op_type: str, status: str, last_progress_at: datetime, now: datetime
    ) -> bool:
        """True when an open row has made no progress past its threshold."""
        due = self.due_at(op_type, status, last_progress_at)
        return due is not None and now > due

    @staticmethod
    def sql(now: datetime) -> ColumnElement[bool]:
        """The rule as a SQL predicate over the stored due time (a range on its index)."""
        return OperationRun.stale_at < now

    @staticmethod
    def stored_stale(stale_at: datetime | None, now: datetime) -> bool:
        """The rule over the stored due time, as the selection reads it."""
        return stale_at is not None and now > stale_at

    @property
    def digest(self) -> str:
        """Identifies these thresholds: stored due times were computed with them or not."""
        parts = sorted(
            (name, t.queued, t.running, t.queue_wait) for name, t in self._by_type.items()
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def next_look(self, run: RunRecord, dagster: DagsterRunInfo | None, now: datetime) -> datetime:
        """When to look again at an open row that is not decidable now (alive or waiting):
        the moment it would become decidable if nothing changes, so it leaves the front of
        the backlog instead of taking a batch slot on every tick."""
        waiting = _waiting_since(run, dagster)
        if waiting is not None:
            thresholds = self.thresholds(run.type)
            at = min(waiting + thresholds.queue_wait, now + thresholds.queued)
            starting = _starting_since(run, dagster)
            if starting is not None and self.start_timeout is not None:
                at = min(at, starting + self.start_timeout)
        else:
            progress, limit = _progress_and_limit(self, run, dagster)
            at = progress + limit
        return max(at, now + MIN_LOOK_DELAY)


@dataclass(frozen=True)
class DagsterRunInfo:
    """What the Dagster instance says about one run (plain values, no Dagster types)."""

    run_id: str
    status: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    job_name: str | None = None
    partition_key: str | None = None
    # When Dagster last changed the run's record: for a STARTING run, its launch or later.
    updated_at: datetime | None = None


class Liveness(StrEnum):
    """Whether an open run may be decided now, and if so why."""

    ALIVE = "alive"  # progressing (heartbeat or Dagster start within the threshold)
    WAITING = "waiting"  # in Dagster's run queue, within the queue-wait threshold
    QUEUE_WAIT_EXCEEDED = "queue_wait_exceeded"  # waited in Dagster's queue too long
    START_TIMED_OUT = "start_timed_out"  # launched, not started within the start timeout
    ENDED = "ended"  # the Dagster run ended: decide from proof at once
    NEVER_STARTED = "never_started"  # queued row, no Dagster run exists, stale
    STALE = "stale"  # no progress past the threshold

    @property
    def decidable(self) -> bool:
        return self not in (Liveness.ALIVE, Liveness.WAITING)


def _waiting_since(run: RunRecord, dagster: DagsterRunInfo | None) -> datetime | None:
    """When the row's Dagster run entered the run queue, if it is waiting there. Waiting only
    while the row is queued: once a worker marked it running, it has started, whatever
    Dagster's record says, and the heartbeat rule applies."""
    if (
        dagster is not None
        and dagster.status in WAITING_STATUSES
        and run.status == RunStatus.QUEUED.value
    ):
        return dagster.created_at or run.created_at
    return None


def _starting_since(run: RunRecord, dagster: DagsterRunInfo | None) -> datetime | None:
    """When the row's Dagster run was launched, if it is still ``STARTING`` and the row has
    not been marked running. The record's last update is used (never earlier than the
    launch), so a start timeout is never reached too soon."""
    if _waiting_since(run, dagster) is None or dagster is None or dagster.status != "STARTING":
        return None
    return dagster.updated_at or dagster.created_at or run.created_at


def _progress_and_limit(
    rule: StalenessRule, run: RunRecord, dagster: DagsterRunInfo | None
) -> tuple[datetime, timedelta]:
    """The row's last progress and the threshold it is measured against."""
    thresholds = rule.thresholds(run.type)
    progress = run.last_progress_at
    if dagster is not None and dagster.status in STARTED_STATUSES:
        # A worker that has started but not yet marked the row running is progress too.
        if dagster.started_at is not None and dagster.started_at > progress:
            progress = dagster.started_at
        return progress, thresholds.running
    return progress, thresholds.for_status(run.status)


def liveness(
    rule: StalenessRule,
    run: RunRecord,
    dagster: DagsterRunInfo | None,
    now: datetime,
) -> Liveness:
    """Combine the database rule with the linked Dagster run's state."""
    if dagster is not None and dagster.status in ENDED_STATUSES:
        return Liveness.ENDED
    # Launched but never started (a pod that never schedules): Dagster's start timeout, not
    # the queue wait, which is for runs the queue has not released yet.
    starting = _starting_since(run, dagster)
    timeout = rule.start_timeout
    if starting is not None and timeout is not None and now - starting > timeout:
        return Liveness.START_TIMED_OUT
    waiting = _waiting_since(run, dagster)
    if waiting is not None:
        exceeded = now - waiting > rule.thresholds(run.type).queue_wait
        return Liveness.QUEUE_WAIT_EXCEEDED if exceeded else Liveness.WAITING
    progress, limit = _progress_and_limit(rule, run, dagster)
    if now - progress <= limit:
        return Liveness.ALIVE
    if run.status == RunStatus.QUEUED.value and dagster is None:
        # No Dagster run ever existed for it (none linked, or the linked one is unknown to
        # the instance: the submission died before creating it).
        return Liveness.NEVER_STARTED
    return Liveness.STALE
