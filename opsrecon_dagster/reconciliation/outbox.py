"""The decision outbox: every reconciler decision's Dagster events, delivered at least once.

A decision and its outbox entry commit in one transaction. Whoever reports the events to
Dagster (the reconciliation sensor through the daemon, a run-end sensor, the CLI) reads the
pending entries, writes their events, and only then acknowledges them, which deletes them.
A crash anywhere in between leaves the entries pending, so they are reported again: a
repeat is harmless, since every event names its operation run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Text, cast, delete, func, select
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
    counts: Annotated[dict[SnakeCase, Count], Field(max_length=MAX_COUNT_KEYS)] = Field(
        default_factory=dict
    )


@dataclass(frozen=True)
class Pending:
    """An outbox entry to report: its id (to acknowledge) and its event."""

    id: int
    event: DecisionEvent


def enqueue_many(session: Session, events: Sequence[DecisionEvent]) -> None:
    """Add decisions' events inside the caller's (the decisions') transaction, in one
    statement."""
    if not events:
        return
    bulk.insert_rows(
        session,
        DecisionOutbox,
        [
            {
                "operation_run_id": e.operation_run_id,
                "event": e.model_dump(mode="json"),
                "created_at": e.decided_at,
            }
            for e in events
        ],
    )


def pending(
    session: Session,
    *,
    limit: int = EMIT_LIMIT,
    run_ids: Sequence[int] | None = None,
    in_flight: Collection[int] = (),
) -> list[Pending]:
    """Undelivered entries, oldest first (only those of ``run_ids`` when given), except
    those ``in_flight`` (being delivered by the caller right now).

    An entry that does not parse was not written by this version of the product: it is
    logged by id and skipped, never reported half-read.
    """
    # As text, parsed and validated in one step by pydantic (no driver-side JSON decoding).
    stmt = (
        select(DecisionOutbox.id, cast(DecisionOutbox.event, Text))
        .order_by(DecisionOutbox.id)
        .limit(limit)
    )
    if run_ids is not None:
        stmt = stmt.where(DecisionOutbox.operation_run_id.in_(list(run_ids)))
    if in_flight:
        stmt = stmt.where(DecisionOutbox.id.not_in(list(in_flight)))
    found: list[Pending] = []
    for entry_id, text in session.execute(stmt):
        try:
            found.append(Pending(entry_id, DecisionEvent.model_validate_json(text or "")))
        except ValidationError:
            logger.warning("decision outbox entry %s is not readable; skipped", entry_id)
    return found


def acknowledge(session: Session, ids: Sequence[int]) -> int:
    """Delete entries whose events are known to be written; returns how many went.

    Acknowledgement names entries by id, never by range: an entry committed late with a
    lower id than one already reported must not be swept away unreported.
    """
    if not ids:
        return 0
    result = session.execute(delete(DecisionOutbox).where(DecisionOutbox.id.in_(list(ids))))
    return int(getattr(result, "rowcount", 0) or 0)


def count(session: Session) -> int:
    """Entries still waiting for delivery (for the overview and tests)."""
    return int(session.scalar(select(func.count()).select_from(DecisionOutbox)) or 0)
