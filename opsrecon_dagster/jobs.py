"""Jobs: one per artifact family, each launched per environment partition."""

from __future__ import annotations

import dagster as dg

# Partitioning is inferred from the selected (environment-partitioned) assets.
inventory_sync_job = dg.define_asset_job("inventory_sync", selection=["inventory_items"])
baseline_capture_job = dg.define_asset_job("baseline_capture", selection=["baseline_snapshots"])
backup_execute_job = dg.define_asset_job("backup_schedule_execute", selection=["backup_sets"])
review_compose_job = dg.define_asset_job(
    "environment_review_compose", selection=["environment_reviews"]
)

JOBS = [inventory_sync_job, baseline_capture_job, backup_execute_job, review_compose_job]
JOB_BY_TYPE = {
    "inventory.sync": inventory_sync_job,
    "baseline.capture": baseline_capture_job,
    "backup.schedule.execute": backup_execute_job,
    "environment.review.compose": review_compose_job,
}
