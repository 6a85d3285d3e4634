"""The run queue with per-tenant lanes for every launch path.

Dagster adds a partitioned config's tags (``jobs.lane_tags``) to runs it creates for a
partition from the launchpad, backfills and run requests, but a raw GraphQL submission
(``DagsterGraphQLClient.submit_job_execution`` with only ``dagster/partition``) merges only
the job's and the caller's tags. This coordinator gives such a run its lanes when it is
submitted, before it waits in the queue, so its tenant's tag concurrency limits hold.
"""

from __future__ import annotations

from dagster import DagsterRun
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.tags import PARTITION_NAME_TAG

from opsrecon_dagster.jobs import lane_tags


class LaneRunCoordinator(QueuedRunCoordinator):
    """Dagster's queued run coordinator (same configuration), adding a partition's lane
    tags to a submitted run that lacks them; tags the run has are left as they are."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        partition = run.tags.get(PARTITION_NAME_TAG)
        if partition and "." in partition:  # ``<workspace>.<environment>``: ours
            missing = {k: v for k, v in lane_tags(partition).items() if k not in run.tags}
            if missing:
                self._instance.add_run_tags(run.run_id, missing)
                tagged = self._instance.get_run_by_id(run.run_id)
                if tagged is not None:
                    context = SubmitRunContext(tagged, context.workspace)
        return super().submit_run(context)
