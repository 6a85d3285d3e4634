"""Jobs: one per artifact family, each launched per environment partition."""

from __future__ import annotations

import dagster as dg

from opsrecon_dagster.artifacts.families import FAMILIES

# Dagster run monitoring cancels a run that is still going after this long (the tag
# ``dagster/max_runtime``), whatever the launcher; its run-end sensor then decides the
# operation run from proof. Well above a healthy run, so only a hung worker reaches it.
MAX_RUNTIME_SECONDS = {
    "inventory_items": 2 * 3600,
    "baseline_snapshots": 2 * 3600,
    "backup_sets": 6 * 3600,  # fetches every item of every policy type
    "environment_reviews": 3600,
}


def _family_job(asset_key: str) -> dg.UnresolvedAssetJobDefinition:
    # Partitioning is inferred from the selected (environment-partitioned) asset.
    name = FAMILIES[asset_key].job
    assert name is not None  # every asset family has its job
    return dg.define_asset_job(
        name,
        selection=[asset_key],
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
