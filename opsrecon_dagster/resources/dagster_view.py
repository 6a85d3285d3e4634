"""``DagsterView`` over a real ``DagsterInstance`` (public APIs only), batched per call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

MAX_MATERIALIZATIONS = 2000


class InstanceDagsterView:
    """Reads Dagster run statuses and materializations for the reconciler."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance

    def run_statuses(self, dagster_run_ids: Sequence[str]) -> Mapping[str, str]:
        """One runs query for the whole batch."""
        if not dagster_run_ids:
            return {}
        runs = self._instance.get_runs(filters=dg.RunsFilter(run_ids=list(dagster_run_ids)))
        return {run.run_id: run.status.value for run in runs}

    def materialization_counts(
        self, asset_key: str, partition_keys: Sequence[str], operation_run_ids: Sequence[int]
    ) -> Mapping[int, int]:
        """Materializations in the given partitions whose metadata names one of the runs."""
        if not partition_keys or not operation_run_ids:
            return {}
        wanted = set(operation_run_ids)
        result = self._instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(asset_key), asset_partitions=list(partition_keys)
            ),
            limit=MAX_MATERIALIZATIONS,
        )
        counts: dict[int, int] = {}
        for record in result.records:
            mat = record.asset_materialization
            if mat is None:
                continue
            entry = mat.metadata.get("operation_run_id")
            value = getattr(entry, "value", None)
            if isinstance(value, int) and value in wanted:
                counts[value] = counts.get(value, 0) + 1
        return counts
