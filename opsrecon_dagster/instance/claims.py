"""Materializations that name operation runs (a run's claim of its outcome), read in bulk.

The reconciler asks, per batch, which materializations of an asset's partitions since the
batch's oldest run name one of its runs (metadata ``operation_run_id``) and with what
``outcome``. Dagster cannot filter on metadata: its ``fetch_materializations`` returns every
materialization in the window, each deserialized (an ``EventLogEntry`` of nested serdes
records), newest first up to the limit. With a day's window over 1,000 partitions that is
thousands of records per batch, nearly all naming other runs: it was the largest cost of a
reconciliation batch on either storage (``benchmarks/reconcile_backlog.py``).

On Dagster's SQL storages this runs Dagster's own query (``SqlEventLogStorage``'s filter,
wipe boundary, order and limit) and deserializes only the rows that can name a wanted run:
a row whose serialized text has no ``"operation_run_id"`` label has no such metadata; a row
whose integer entry under that label names no wanted run cannot match. Any other row (a
label with another kind of value, a layout this does not recognise) is deserialized and
checked as before, so an unrecognised layout costs time, never a claim.
``opsrecon_dagster_tests/instance/test_claims.py`` compares the result with Dagster's public
path and checks that the skipping still happens, so a Dagster upgrade that changes the
layout fails it. Other storages take the public path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import dagster as dg
import sqlalchemy as sa
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._serdes import deserialize_value

MAX_MATERIALIZATIONS = 2000
LABEL = "operation_run_id"
# An integer metadata entry labelled ``operation_run_id`` as Dagster's serdes writes it
# (keys sorted; quotes inside strings are escaped, so no string value can look like this).
_INT_ENTRY = re.compile(
    r'"entry_data": \{"__class__": "IntMetadataEntryData", "value": (-?\d+)\}, '
    r'"label": "' + LABEL + '"'
)


def naming_runs(
    instance: dg.DagsterInstance,
    asset_key: str,
    partition_keys: Sequence[str],
    operation_run_ids: Sequence[int],
    since: datetime,
) -> Mapping[int, Sequence[str]]:
    """Materializations in the given partitions (newest first, up to
    ``MAX_MATERIALIZATIONS``, after ``since``) whose metadata names one of the runs: run id
    -> the outcome each reports ("" when it reports none)."""
    if not partition_keys or not operation_run_ids:
        return {}
    wanted = set(operation_run_ids)
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset_key),
        asset_partitions=list(partition_keys),
        after_timestamp=since.timestamp(),
    )
    storage = instance.event_log_storage
    entries: Iterable[EventLogEntry]
    if isinstance(storage, SqlEventLogStorage):
        entries = _prefiltered(storage, records_filter, wanted)
    else:
        result = instance.fetch_materializations(records_filter, limit=MAX_MATERIALIZATIONS)
        entries = [r.event_log_entry for r in result.records]
    found: dict[int, list[str]] = {}
    for entry in entries:
        mat = entry.asset_materialization
        if mat is None:
            continue
        value = getattr(mat.metadata.get(LABEL), "value", None)
        if isinstance(value, int) and value in wanted:
            outcome = getattr(mat.metadata.get("outcome"), "value", None)
            found.setdefault(value, []).append(outcome if isinstance(outcome, str) else "")
    return found


def could_name(text: str, wanted: set[int]) -> bool:
    """Whether a serialized materialization may name one of ``wanted`` (False only when it
    certainly does not)."""
    if f'"{LABEL}"' not in text:
        return False
    named = _INT_ENTRY.findall(text)
    return not named or any(int(v) in wanted for v in named)


def _prefiltered(
    storage: SqlEventLogStorage, records_filter: dg.AssetRecordsFilter, wanted: set[int]
) -> list[EventLogEntry]:
    """Dagster's own materialization query (as ``fetch_materializations`` builds it),
    deserializing only the rows ``could_name`` keeps."""
    event_filter = records_filter.to_event_records_filter(
        event_type=DagsterEventType.ASSET_MATERIALIZATION, cursor=None, ascending=False
    )
    [details] = storage._get_assets_details([records_filter.asset_key])
    table = SqlEventLogStorageTable
    query = storage._apply_filter_to_query(
        query=sa.select(table.c.id, table.c.event).select_from(table),
        event_records_filter=event_filter,
        asset_details=details,
    )
    query = query.order_by(table.c.id.desc()).limit(MAX_MATERIALIZATIONS)
    with storage.index_connection() as conn:
        rows = conn.execute(query).fetchall()
    entries = []
    for _row_id, text in rows:
        if not could_name(text, wanted):
            continue
        try:
            entry = deserialize_value(text)
        except json.JSONDecodeError:  # Dagster skips such rows too
            continue
        if isinstance(entry, EventLogEntry):
            entries.append(entry)
    return entries
