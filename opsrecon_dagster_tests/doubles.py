"""Test doubles (also used by the benchmarks): views that stand in for Dagster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from opsrecon_dagster.operations.staleness import DagsterRunInfo


class NoDagster:
    """A Dagster view that knows no runs and no materializations: the reconciler decides
    from the database alone (the database-only benchmarks, lock tests)."""

    def start_timeout(self) -> timedelta | None:
        return None

    def runs(self, dagster_run_ids: Sequence[str]) -> Mapping[str, DagsterRunInfo]:
        return {}

    def runs_tagged(
        self, operation_run_ids: Sequence[int]
    ) -> Mapping[int, Sequence[DagsterRunInfo]]:
        return {}

    def materializations(
        self,
        asset_key: str,
        partition_keys: Sequence[str],
        operation_run_ids: Sequence[int],
        since: datetime,
    ) -> Mapping[int, Sequence[str]]:
        return {}
