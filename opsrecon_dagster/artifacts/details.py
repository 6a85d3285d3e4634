"""Per-run detail tables (pandas) for materialization metadata: coverage, gaps, items.

Only identifiers, statuses and reason codes: never payloads.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import (
    BackupItem,
    BackupSet,
    BaselineGap,
    BaselineSnapshot,
    InventoryCoverage,
)

MAX_ROWS = 50


def inventory_coverage_frame(session: Session, run_id: int) -> pd.DataFrame:
    rows = session.execute(
        select(
            InventoryCoverage.policy_type,
            InventoryCoverage.status,
            InventoryCoverage.reason_code,
            InventoryCoverage.item_count,
        )
        .where(InventoryCoverage.operation_run_id == run_id)
        .order_by(InventoryCoverage.policy_type)
    ).all()
    frame = pd.DataFrame(rows, columns=["policy_type", "status", "reason_code", "items"])
    return frame.fillna({"reason_code": "-"})


def baseline_gaps_frame(session: Session, run_id: int) -> pd.DataFrame:
    rows = session.execute(
        select(BaselineGap.subject_key, BaselineGap.kind, BaselineGap.candidate_count)
        .join(BaselineSnapshot, BaselineSnapshot.id == BaselineGap.baseline_snapshot_id)
        .where(BaselineSnapshot.operation_run_id == run_id)
        .order_by(BaselineGap.id)
        .limit(MAX_ROWS)
    ).all()
    return pd.DataFrame(rows, columns=["subject", "gap", "candidates"])


def backup_items_frame(session: Session, run_id: int) -> pd.DataFrame:
    rows = session.execute(
        select(BackupItem.policy_type, BackupItem.status, BackupItem.reason_code)
        .join(BackupSet, BackupSet.id == BackupItem.backup_set_id)
        .where(BackupSet.operation_run_id == run_id)
    ).all()
    frame = pd.DataFrame(rows, columns=["policy_type", "status", "reason_code"])
    if frame.empty:
        return pd.DataFrame(columns=["policy_type", "status", "reason_code", "items"])
    return (
        frame.fillna({"reason_code": "-"})
        .groupby(["policy_type", "status", "reason_code"], as_index=False)
        .size()
        .rename(columns={"size": "items"})
    )


DETAIL_FRAMES = {
    "inventory_items": ("coverage_table", inventory_coverage_frame),
    "baseline_snapshots": ("gap_table", baseline_gaps_frame),
    "backup_sets": ("item_table", backup_items_frame),
}
