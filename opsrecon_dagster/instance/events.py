"""Dagster event-log writes in batches: one transaction per storage file for a delivery's
asset events, planned materializations and check evaluations.

Dagster's own ``store_event`` opens a new engine, a connection and two commits per event on
its SQLite default (each run's events in a file of their own, asset events mirrored in an
index file): about 100 events/s. ``store_event_batch`` is a loop over it there, and on
PostgreSQL batches only materializations or observations of one asset. Here every event of
a delivery goes in with one transaction per file: the run files' rows with one
multi-row ``INSERT`` each, then the index (its event rows, the asset index's tags and
latest-event columns, the check executions) in one transaction.

This reaches under Dagster's storage API (``SqlEventLogStorage``'s row layout and its index
helpers), as docs/decisions.md explains. ``opsrecon_dagster_tests/instance/test_events.py``
writes the same events through Dagster's own ``store_event`` and through ``store_events`` and
compares everything Dagster reads back, so an upgrade that changes the layout fails it.
Storages other than Dagster's SQL ones get Dagster's own per-event path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import dagster as dg
import sqlalchemy as sa
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

_INDEXED = ASSET_EVENTS | ASSET_CHECK_EVENTS


def store_events(instance: dg.DagsterInstance, entries: Sequence[EventLogEntry]) -> None:
    """Store event-log entries (asset events, planned materializations, check evaluations;
    no run-status events) as Dagster's ``store_event`` would, one transaction per file."""
    if not entries:
        return
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        for entry in entries:
            storage.store_event(entry)
        return
    for entry in entries:
        kind = entry.dagster_event_type
        if kind is None or kind not in _INDEXED:
            raise ValueError(f"not an asset or check event: {kind}")
    # Each event serialized once: its row serves the run's file, the index and its check.
    rows = [_row(storage, e) for e in entries]
    if isinstance(storage, SqliteEventLogStorage):
        # Each run's file first (what the run's page reads), then the index file.
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_run.setdefault(row["run_id"], []).append(row)
        for run_id, run_rows in by_run.items():
            with storage.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)
    # One database on PostgreSQL: the event rows are the index's own.
    with storage.index_transaction() as conn:
        ids = _insert_returning_ids(conn, rows)
        _index(conn, storage, entries, rows, ids)


def _row(storage: SqlEventLogStorage, entry: EventLogEntry) -> dict[str, Any]:
    return storage._event_to_row(entry)


def _insert_returning_ids(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert the rows in order and return their storage ids (one statement; SQLAlchemy
    keeps the returned ids in the rows' order)."""
    result = conn.execute(
        SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
        ),
        list(rows),
    )
    return [int(row[0]) for row in result]


def _index(
    conn: sa.Connection,
    storage: SqlEventLogStorage,
    entries: Sequence[EventLogEntry],
    rows: Sequence[dict[str, Any]],
    ids: Sequence[int],
) -> None:
    """What ``store_event`` indexes beside the row: asset events' tags and the asset's
    latest-event columns, and check evaluations' executions."""
    assets = [(e, i) for e, i in zip(entries, ids, strict=True) if _kind(e) in ASSET_EVENTS]
    if assets:
        # Dagster's batch form: the tags of every event, the asset's row from the last event
        # of each kind (each kind sets its own columns, so this is the state event by event).
        storage._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
        last: dict[tuple[str, DagsterEventType], tuple[EventLogEntry, int]] = {}
        for entry, event_id in assets:
            key = cast(dg.AssetKey, entry.get_dagster_event().asset_key).to_string()
            last.pop((key, _kind(entry)), None)  # keep the order of the last ones
            last[(key, _kind(entry))] = (entry, event_id)
        for entry, event_id in last.values():
            storage._store_asset_event(conn, entry, event_id)
    _store_check_evaluations(
        conn,
        [
            (entry, row["event"], event_id)
            for entry, row, event_id in zip(entries, rows, ids, strict=True)
            if _kind(entry) is DagsterEventType.ASSET_CHECK_EVALUATION
        ],
    )


def _kind(entry: EventLogEntry) -> DagsterEventType:
    return entry.get_dagster_event().event_type


# Check executions looked up per statement (well under SQLite's bound-parameter limit).
_LOOKUP_CHUNK = 500


def _store_check_evaluations(
    conn: sa.Connection, evaluations: Sequence[tuple[EventLogEntry, str, int]]
) -> None:
    """The check execution rows ``store_asset_check_event`` writes for evaluations in runs,
    for a whole delivery in three statements: each run's planned execution of the check on
    the partition is updated (one ``executemany``), the others are inserted (one multi-row
    ``INSERT``). Dagster's own path is an ``UPDATE`` and, when it changed nothing, an
    ``INSERT``, per evaluation; evaluated one by one, a later evaluation of the same check,
    run and partition updates the row the earlier one inserted, so the last one stands."""
    if not evaluations:
        return
    table = AssetCheckExecutionsTable
    latest: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
    for entry, serialized, event_id in evaluations:
        evaluation = cast(dg.AssetCheckEvaluation, entry.get_dagster_event().event_specific_data)
        if not entry.run_id:
            raise ValueError("check evaluations are written on a run")
        key = (
            evaluation.asset_key.to_string(),
            evaluation.check_name,
            entry.run_id,
            evaluation.partition,
        )
        latest.pop(key, None)  # keep the order of the last ones
        latest[key] = {
            "execution_status": (
                AssetCheckExecutionRecordStatus.SUCCEEDED.value
                if evaluation.passed
                else AssetCheckExecutionRecordStatus.FAILED.value
            ),
            "evaluation_event": serialized,
            "evaluation_event_timestamp": datetime.fromtimestamp(entry.timestamp, UTC).replace(
                tzinfo=None
            ),
            "evaluation_event_storage_id": event_id,
            "materialization_event_storage_id": (
                evaluation.target_materialization_data.storage_id
                if evaluation.target_materialization_data
                else None
            ),
            "partition": evaluation.partition,
        }
    existing: dict[tuple[str, str, str, str | None], list[int]] = {}
    run_ids = sorted({key[2] for key in latest})
    for start in range(0, len(run_ids), _LOOKUP_CHUNK):
        found = conn.execute(
            sa.select(
                table.c.id, table.c.asset_key, table.c.check_name, table.c.run_id, table.c.partition
            ).where(table.c.run_id.in_(run_ids[start : start + _LOOKUP_CHUNK]))
        )
        for row_id, asset_key, check_name, run_id, partition in found:
            existing.setdefault((asset_key, check_name, run_id, partition), []).append(row_id)
    # (Bound names differ from the columns': SQLAlchemy reserves those for its own SET.)
    updates = [
        {"row_id": row_id, **{f"v_{name}": value for name, value in values.items()}}
        for key, values in latest.items()
        for row_id in existing.get(key, ())
    ]
    if updates:
        conn.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values({name: sa.bindparam(f"v_{name}") for name in next(iter(latest.values()))}),
            updates,
        )
    inserts = [
        {"asset_key": key[0], "check_name": key[1], "run_id": key[2], **values}
        for key, values in latest.items()
        if key not in existing
    ]
    if inserts:
        conn.execute(table.insert(), inserts)
