"""Jobs: one per artifact family, each launched per environment partition."""

from __future__ import annotations

import dagster as dg

from opsrecon_dagster.artifacts.families import FAMILIES
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import ENVIRONMENT_TAG, WORKSPACE_TAG

# Dagster run monitoring cancels a run that is still going after this long (the tag
# ``dagster/max_runtime``), whatever the launcher; its run-end sensor then decides the
# operation run from proof. Well above a healthy run, so only a hung worker reaches it.
MAX_RUNTIME_SECONDS = {
    "inventory_items": 2 * 3600,
    "baseline_snapshots": 2 * 3600,
    "backup_sets": 6 * 3600,  # fetches every item of every policy type
    "environment_reviews": 3600,
}


def lane_tags(partition_key: str) -> dict[str, str]:
    """The run queue's per-tenant lanes, from the partition (``<workspace>.<environment>``):
    every launch of a partition, the UI's and GraphQL's included, waits in its own lanes."""
    return {WORKSPACE_TAG: partition_key.split(".", 1)[0], ENVIRONMENT_TAG: partition_key}


# A partition's runs carry its lane tags whoever launches them (Dagster adds a partitioned
# config's tags to every run of a partition); the run config itself stays empty.
LANES = dg.PartitionedConfig(
    partitions_def=ENVIRONMENTS,
    run_config_for_partition_key_fn=lambda _key: {},
    tags_for_partition_key_fn=lane_tags,
)


def _family_job(asset_key: str) -> dg.UnresolvedAssetJobDefinition:
    name = FAMILIES[asset_key].job
    assert name is not None  # every asset family has its job
    return dg.define_asset_job(
        name,
        selection=[asset_key],
        config=LANES,
        tags={"dagster/max_runtime": str(MAX_RUNTIME_SECONDS[asset_key])},
    )


inventory_sync_job = _family_job("inventory_items")
baseline_capture_job = _family_job("baseline_snapshots")
backup_execute_job = _family_job("backup_sets")
review_compose_job = _family_job("environment_reviews")

JOBS = [inventory_sync_job, baseline_capture_job, backup_execute_job, review_compose_job]
JOB_BY_TYPE = {
    family.op_type.value: next(job for job in JOBS if job.name == family.job)
    for family in FAMILIES.values()
}
