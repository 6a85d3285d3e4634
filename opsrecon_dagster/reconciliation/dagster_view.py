"""What reconciliation reads from Dagster, as an interface (no Dagster import here).

The Dagster layer implements it over a ``DagsterInstance``; both calls are batched so a
reconciliation batch costs two instance reads, not two per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

ALIVE_STATUSES = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})


class DagsterView(Protocol):
    def run_statuses(self, dagster_run_ids: Sequence[str]) -> Mapping[str, str]:
        """Status name (``SUCCESS``, ``FAILURE``, ...) per known Dagster run id."""
        ...

    def materialization_counts(
        self, asset_key: str, partition_keys: Sequence[str], operation_run_ids: Sequence[int]
    ) -> Mapping[int, int]:
        """Materializations of ``asset_key`` in those partitions, per operation run id that
        their metadata carries."""
        ...


class NoDagster:
    """A view that knows no Dagster runs (e.g. a CLI without an instance)."""

    def run_statuses(self, dagster_run_ids: Sequence[str]) -> Mapping[str, str]:
        return {}

    def materialization_counts(
        self, asset_key: str, partition_keys: Sequence[str], operation_run_ids: Sequence[int]
    ) -> Mapping[int, int]:
        return {}
