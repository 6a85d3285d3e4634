"""What reconciliation reads from Dagster, as an interface (no Dagster import here).

The Dagster layer implements it over a ``DagsterInstance``; every call is batched, so a
reconciliation batch costs a fixed number of instance reads, not a few per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from opsrecon_dagster.operations.staleness import DagsterRunInfo

# The Dagster run tag that names a run's operation run (docs/architecture.md).
RUN_TAG = "opsrecon/operation_run_id"
# The tenant scope of a run, for the run queue's per-tenant concurrency limits
# (``deploy/dagster.postgres.yaml``): a throttled tenant's backlog waits in its own lane.
WORKSPACE_TAG = "opsrecon/workspace"
ENVIRONMENT_TAG = "opsrecon/environment"


def run_tags(operation_run_id: int, partition_key: str) -> dict[str, str]:
    """The tags of every Dagster run launched for an operation run: the row it reports on
    and its scope (the partition key is ``<workspace>.<environment>``)."""
    return {
        RUN_TAG: str(operation_run_id),
        WORKSPACE_TAG: partition_key.split(".", 1)[0],
        ENVIRONMENT_TAG: partition_key,
    }


class DagsterView(Protocol):
    def start_timeout(self) -> timedelta | None:
        """How long a launched run may stay ``STARTING`` (the instance's run monitoring
        ``start_timeout_seconds``); None: no such limit."""
        ...

    def runs(self, dagster_run_ids: Sequence[str]) -> Mapping[str, DagsterRunInfo]:
        """Status and timestamps per known Dagster run id."""
        ...

    def runs_tagged(
        self, operation_run_ids: Sequence[int]
    ) -> Mapping[int, Sequence[DagsterRunInfo]]:
        """The Dagster runs tagged with each operation run id, oldest first (schedule and
        sensor submissions, whose run id the row cannot know when it is created)."""
        ...

    def materializations(
        self,
        asset_key: str,
        partition_keys: Sequence[str],
        operation_run_ids: Sequence[int],
        since: datetime,
    ) -> Mapping[int, Sequence[str]]:
        """Materializations of ``asset_key`` in those partitions since ``since`` (the oldest
        run's creation: none can name a run before it existed), per operation run id that
        their metadata carries: the outcome each one reports (``""`` when it names none)."""
        ...
