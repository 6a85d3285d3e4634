"""Jobs: one per artifact family, each launched per environment partition."""

from __future__ import annotations

import dagster as dg

from opsrecon_dagster.partitions import ENVIRONMENTS

inventory_sync_job = dg.define_asset_job(
    "inventory_sync", selection=["inventory_items"], partitions_def=ENVIRONMENTS
)
baseline_capture_job = dg.define_asset_job(
    "baseline_capture", selection=["baseline_snapshots"], partitions_def=ENVIRONMENTS
)
backup_execute_job = dg.define_asset_job(
    "backup_schedule_execute", selection=["backup_sets"], partitions_def=ENVIRONMENTS
)
review_compose_job = dg.define_asset_job(
    "environment_review_compose", selection=["environment_reviews"], partitions_def=ENVIRONMENTS
)

JOBS = [inventory_sync_job, baseline_capture_job, backup_execute_job, review_compose_job]
JOB_BY_ASSET = {
    "inventory_items": inventory_sync_job,
    "baseline_snapshots": baseline_capture_job,
    "backup_sets": backup_execute_job,
    "environment_reviews": review_compose_job,
}
