"""``DagsterView`` over a real ``DagsterInstance``, batched per call (public APIs, but for
the materializations that name runs: ``instance/claims.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from opsrecon_dagster.instance.claims import naming_runs
from opsrecon_dagster.operations.staleness import DagsterRunInfo
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG


def _utc(timestamp: float | datetime | None) -> datetime | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(timestamp, UTC)


def _info(record: dg.RunRecord) -> DagsterRunInfo:
    return DagsterRunInfo(
        run_id=record.dagster_run.run_id,
        status=record.dagster_run.status.value,
        created_at=_utc(record.create_timestamp),
        started_at=_utc(record.start_time),
        job_name=record.dagster_run.job_name,
        partition_key=record.dagster_run.tags.get("dagster/partition"),
        updated_at=_utc(record.update_timestamp),
    )


class InstanceDagsterView:
    """Reads Dagster run statuses and materializations for the reconciler."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance

    def start_timeout(self) -> timedelta | None:
        """The instance's ``run_monitoring.start_timeout_seconds`` (Dagster's default: 180 s,
        also when run monitoring is off: then nothing else ends a run stuck STARTING); 0 or
        less means none, as for Dagster's own monitor."""
        seconds = self._instance.run_monitoring_start_timeout_seconds
        return timedelta(seconds=seconds) if seconds > 0 else None

    def runs(self, dagster_run_ids: Sequence[str]) -> Mapping[str, DagsterRunInfo]:
        """One run-records query for the whole batch."""
        if not dagster_run_ids:
            return {}
        records = self._instance.get_run_records(
            filters=dg.RunsFilter(run_ids=list(dagster_run_ids))
        )
        return {r.dagster_run.run_id: _info(r) for r in records}

    def runs_tagged(
        self, operation_run_ids: Sequence[int]
    ) -> Mapping[int, Sequence[DagsterRunInfo]]:
        """One tag query for the whole batch, grouped by tag value, oldest first."""
        if not operation_run_ids:
            return {}
        records = self._instance.get_run_records(
            filters=dg.RunsFilter(tags={RUN_TAG: [str(i) for i in operation_run_ids]})
        )
        found: dict[int, list[DagsterRunInfo]] = {}
        for record in sorted(records, key=lambda r: r.create_timestamp):
            tag = record.dagster_run.tags.get(RUN_TAG, "")
            if tag.isdigit():
                found.setdefault(int(tag), []).append(_info(record))
        return found

    def materializations(
        self,
        asset_key: str,
        partition_keys: Sequence[str],
        operation_run_ids: Sequence[int],
        since: datetime,
    ) -> Mapping[int, Sequence[str]]:
        """Materializations in the given partitions whose metadata names one of the runs,
        with the outcome each reports (``instance/claims.py``)."""
        return naming_runs(self._instance, asset_key, partition_keys, operation_run_ids, since)
