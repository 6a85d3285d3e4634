"""The decision outbox: every decision's Dagster events (the reconciler's and the jobs'),
claimed and delivered once.

A decision and its outbox entry commit in one transaction, the job's own decisions as well as
the reconciler's. Whoever reports the events to Dagster (the reconciliation sensor through
the daemon, a run-end sensor, the CLI, a job's worker for its own entry) claims the due
entries, writes their events, and only then acknowledges them, which deletes them. A claim
is a lease: two deliverers never hold the same entry, and a deliverer that dies leaves its
entries to be claimed again once the lease ends. A repeated delivery is marked as such, so
the writer checks what Dagster already has before writing (exactly once in Dagster).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from opsrecon_dagster.db import bulk
from opsrecon_dagster.db.models import DecisionOutbox
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations.context import (
    MAX_COUNT_KEYS,
    Count,
    DagsterRunId,
    SnakeCase,
)

logger = logging.getLogger(__name__)

# Entries reported per call: bounded, so one tick's events stay a bounded amount of work.
EMIT_LIMIT = 500


class DecisionEvent(BaseModel):
    """What Dagster is told about one decision (ids, codes and counts only)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=140)

    operation_run_id: int
    asset_key: SnakeCase | None = None
    job: SnakeCase | None = None  # the Dagster job of the run's family
    partition_key: Annotated[str, Field(max_length=140)] | None = None
    dagster_run_id: DagsterRunId | None = None
    outcome: RunOutcome
    reason_code: SnakeCase
    adapter: SnakeCase
    decided_by: Actor
    decided_at: datetime
    # The run's artifacts exist but no materialization names the run (its worker died
    # between committing them and reporting): the reporter materializes the partition.
    materialize: bool = False
    # A newer run of the same type exists in the partition: this decision must not cover it
    # (no check evaluation or materialization on the partition, no stand-in Dagster run).
    superseded: bool = False
    # A run that never had a Dagster run and is shown failed or blocked: the Dagster run that
    # stands in for it (one per job, outcome and reason of a batch; see ``stand_in_ids``).
    stand_in_run_id: DagsterRunId | None = None
    counts: Annotated[dict[SnakeCase, Count], Field(max_length=MAX_COUNT_KEYS)] = Field(
        default_factory=dict
    )


@dataclass(frozen=True)
class Pending:
    """An outbox entry to report: its id (to acknowledge), its event, and whether an earlier
    delivery already held it (then it may be partly written: the deliverer checks first)."""

    id: int
    event: DecisionEvent
    repeated: bool = False


# How long a claim holds its entries: far beyond one chunk's writes (about a second for
# 1,000 decisions) and a sensor evaluation (60 s), so a live deliverer never loses its
# entries to another; the entries of a deliverer that died are due again after it.
LEASE = timedelta(minutes=2)
# Parked: entries this version cannot read are never claimed again (kept for an operator).
UNREADABLE = "unreadable"
_PARKED_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)


# Namespace of stand-in run ids (uuid5: the same batch's group always names the same run).
NEVER_LAUNCHED = uuid.UUID("6f1d8f7e-3c1a-4f55-9d62-0b9a7f1c2e41")
_SHOWN_FAILED = (RunOutcome.FAILED, RunOutcome.BLOCKED)


def needs_stand_in(event: DecisionEvent) -> bool:
    """A decision shown failed on its partition although no Dagster run ever ran for it:
    Dagster shows a partition failed only through a failed run that planned it."""
    return (
        event.dagster_run_id is None
        and not event.superseded
        and event.outcome in _SHOWN_FAILED
        and event.job is not None
        and event.partition_key is not None
    )


def stand_in_ids(events: Sequence[DecisionEvent]) -> list[str | None]:
    """For each event, the stand-in Dagster run that must name it (None: it needs none or
    names one already): one run per job, outcome and reason of the batch (not one per
    decision: a Dagster run is a storage file on Dagster's SQLite default). The id is
    derived from the group, so a repeated delivery finds the same run."""
    keys = [
        (e.job or "", e.outcome.value, e.reason_code)
        if needs_stand_in(e) and e.stand_in_run_id is None
        else None
        for e in events
    ]
    groups: dict[tuple[str, str, str], int] = {}
    for key, e in zip(keys, events, strict=True):
        if key is not None:
            groups[key] = min(groups.get(key, e.operation_run_id), e.operation_run_id)
    ids = {
        key: str(uuid.uuid5(NEVER_LAUNCHED, f"{key[0]}:{key[1]}:{key[2]}:{first}"))
        for key, first in groups.items()
    }
    return [ids[key] if key is not None else None for key in keys]


def with_stand_ins(events: Sequence[DecisionEvent]) -> list[DecisionEvent]:
    """The events, those that need a stand-in Dagster run naming it (``stand_in_ids``)."""
    return [
        e if run_id is None else e.model_copy(update={"stand_in_run_id": run_id})
        for e, run_id in zip(events, stand_in_ids(events), strict=True)
    ]


def enqueue_many(
    session: Session, events: Sequence[DecisionEvent], *, due_at: datetime | None = None
) -> None:
    """Add decisions' events inside the caller's (the decisions') transaction, in one
    statement, with their stand-in runs named (``with_stand_ins``). ``due_at``: when
    another process may deliver them (default: at once)."""
    if not events:
        return
    rows = []
    for e, stand_in in zip(events, stand_in_ids(events), strict=True):
        dumped = e.model_dump(mode="json")
        if stand_in is not None:  # a valid run id (a uuid): set on the dump, no model copy
            dumped["stand_in_run_id"] = stand_in
        rows.append(
            {
                "operation_run_id": e.operation_run_id,
                "event": dumped,
                "created_at": e.decided_at,
                "due_at": due_at or e.decided_at,
                "attempts": 0,
            }
        )
    bulk.insert_rows(session, DecisionOutbox, rows)


def enqueue_one(session: Session, event: DecisionEvent, *, due_at: datetime) -> int:
    """Add one decision's event inside the caller's transaction; returns the entry's id (a
    job acknowledges its own entry by id once its worker has reported the decision)."""
    [event] = with_stand_ins([event])
    entry = DecisionOutbox(
        operation_run_id=event.operation_run_id,
        event=event.model_dump(mode="json"),
        created_at=event.decided_at,
        due_at=due_at,
        attempts=0,
    )
    session.add(entry)
    session.flush()
    return entry.id


def acknowledge_unclaimed(session: Session, entry_id: int) -> bool:
    """Delete an entry no deliverer has claimed (a job whose worker reported its own
    decision); an entry a deliverer holds is left to it. True when it went."""
    result = session.execute(
        delete(DecisionOutbox)
        .where(DecisionOutbox.id == entry_id, DecisionOutbox.claim.is_(None))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _parse(rows: Iterable[tuple[int, str | None, int]]) -> tuple[list[Pending], list[int]]:
    """Parsed entries, and the ids of those that do not parse (logged by id only)."""
    found: list[Pending] = []
    unreadable: list[int] = []
    for entry_id, text, attempts in rows:
        try:
            event = DecisionEvent.model_validate_json(text or "")
        except ValidationError:
            logger.warning("decision outbox entry %s is not readable; parked", entry_id)
            unreadable.append(entry_id)
            continue
        found.append(Pending(entry_id, event, repeated=attempts > 1))
    return found, unreadable


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int = EMIT_LIMIT,
    run_ids: Sequence[int] | None = None,
    token: str | None = None,
) -> tuple[str, list[Pending]]:
    """Claim up to ``limit`` due entries, oldest first (only those of ``run_ids`` when
    given), for one delivery; returns its claim token and the entries.

    Claimed entries are due again only after ``LEASE``: no other deliverer takes them
    meanwhile (``SKIP LOCKED`` on PostgreSQL; SQLite has one writer at a time). Commit the
    claim before writing to Dagster, and ``acknowledge`` with the same token after.
    An entry that does not parse was not written by this version of the product: it is
    logged by id and parked, never reported half-read.
    """
    token = token or uuid.uuid4().hex
    due = (
        select(DecisionOutbox.id)
        .where(DecisionOutbox.due_at <= now)
        .order_by(DecisionOutbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if run_ids is not None:
        due = due.where(DecisionOutbox.operation_run_id.in_(list(run_ids)))
    stmt = (
        update(DecisionOutbox)
        .where(DecisionOutbox.id.in_(due.scalar_subquery()))
        .values(claim=token, due_at=now + LEASE, attempts=DecisionOutbox.attempts + 1)
        # As text, parsed and validated in one step by pydantic (no driver-side decoding).
        .returning(DecisionOutbox.id, cast(DecisionOutbox.event, Text), DecisionOutbox.attempts)
        .execution_options(synchronize_session=False)
    )
    rows = [(i, t, a) for i, t, a in session.execute(stmt)]
    found, unreadable = _parse(sorted(rows))
    if unreadable:
        session.execute(
            update(DecisionOutbox)
            .where(DecisionOutbox.id.in_(unreadable))
            .values(claim=UNREADABLE, due_at=_PARKED_UNTIL)
            .execution_options(synchronize_session=False)
        )
    return token, found


def pending(
    session: Session, *, limit: int = EMIT_LIMIT, run_ids: Sequence[int] | None = None
) -> list[Pending]:
    """Undelivered entries, oldest first (only those of ``run_ids`` when given), whether
    claimed or not; a read for tests and operators, which claims nothing."""
    stmt = (
        select(DecisionOutbox.id, cast(DecisionOutbox.event, Text), DecisionOutbox.attempts)
        .where(or_(DecisionOutbox.claim.is_(None), DecisionOutbox.claim != UNREADABLE))
        .order_by(DecisionOutbox.id)
        .limit(limit)
    )
    if run_ids is not None:
        stmt = stmt.where(DecisionOutbox.operation_run_id.in_(list(run_ids)))
    return _parse((i, t, a) for i, t, a in session.execute(stmt))[0]


def acknowledge(session: Session, ids: Sequence[int], token: str | None = None) -> int:
    """Delete entries whose events are known to be written; returns how many went.

    Acknowledgement names entries by id, never by range: an entry committed late with a
    lower id than one already reported must not be swept away unreported. With ``token``,
    only entries this delivery still holds (a claim that expired and was taken over is the
    new holder's to acknowledge).
    """
    if not ids:
        return 0
    stmt = delete(DecisionOutbox).where(DecisionOutbox.id.in_(list(ids)))
    if token is not None:
        stmt = stmt.where(DecisionOutbox.claim == token)
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def release(session: Session, ids: Sequence[int], token: str, now: datetime) -> None:
    """Make a failed delivery's entries due again at once (they stay marked as attempted)."""
    if ids:
        session.execute(
            update(DecisionOutbox)
            .where(DecisionOutbox.id.in_(list(ids)), DecisionOutbox.claim == token)
            .values(due_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class Backlog:
    """Entries not yet delivered: how many, how many of them are due now, and how many are
    parked as unreadable."""

    pending: int
    due: int
    unreadable: int


def backlog(session: Session, now: datetime) -> Backlog:
    """The outbox's undelivered entries, in one query (for the CLI, the overview, tests)."""
    parked = DecisionOutbox.claim == UNREADABLE
    total, due, unreadable = session.execute(
        select(
            func.count(),
            func.count().filter(DecisionOutbox.due_at <= now),
            func.count().filter(parked),
        ).select_from(DecisionOutbox)
    ).one()
    return Backlog(int(total) - int(unreadable or 0), int(due or 0), int(unreadable or 0))


def count(session: Session) -> int:
    """Entries still waiting for delivery, unreadable ones included (for tests)."""
    return int(session.scalar(select(func.count()).select_from(DecisionOutbox)) or 0)
