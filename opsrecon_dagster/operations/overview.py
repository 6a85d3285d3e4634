"""The operations overview: outcomes by type, open and stale runs, the latest decisions.

Plain pandas over ``operation_runs``; the Dagster asset renders it as metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog, UnknownOperationType
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.operations.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.reasons import message

RECENT = 15


@dataclass(frozen=True)
class Overview:
    by_type: pd.DataFrame  # rows: type; columns: outcomes + open
    recent: pd.DataFrame  # latest decisions, newest first
    total: int
    open: int
    stale: int


def build_overview(session: Session, catalog: OperationCatalog, now: datetime) -> Overview:
    """Summarize every run (one query for runs, one for environment names)."""
    runs = session.scalars(select(OperationRun).order_by(OperationRun.id)).all()
    keys = {
        i: k
        for i, k in session.execute(select(ManagedEnvironment.id, ManagedEnvironment.partition_key))
    }
    rows = []
    stale = 0
    for run in runs:
        is_open = run.status != RunStatus.COMPLETED.value
        if is_open:
            try:
                entry = catalog.get(run.type)
                limit = (
                    entry.queued_stale_after
                    if run.status == RunStatus.QUEUED.value
                    else entry.running_stale_after
                )
                stale += now - run.last_progress_at > limit
            except UnknownOperationType:
                stale += 1
        rows.append({"type": run.type, "state": "open" if is_open else (run.outcome or "unknown")})
    columns = [o.value for o in RunOutcome] + ["open"]
    frame = pd.DataFrame(rows, columns=["type", "state"])
    by_type = (
        pd.crosstab(frame["type"], frame["state"]).reindex(columns=columns, fill_value=0)
        if not frame.empty
        else pd.DataFrame(columns=columns)
    )
    recent_rows = []
    completed = [r for r in runs if r.status == RunStatus.COMPLETED.value]
    for run in sorted(completed, key=lambda r: r.completed_at or r.created_at, reverse=True)[
        :RECENT
    ]:
        decision = RunContext.load_or_empty(run.context).decision
        link = (
            f"[{run.dagster_run_id[:8]}](/runs/{run.dagster_run_id})" if run.dagster_run_id else "-"
        )
        recent_rows.append(
            {
                "run": run.id,
                "type": run.type,
                "environment": keys.get(run.managed_environment_id or -1, "-"),
                "outcome": run.outcome,
                "reason": message(run.reason_code or ""),
                "decided_by": decision.decided_by.value if decision else "-",
                "dagster_run": link,
            }
        )
    recent = pd.DataFrame(
        recent_rows,
        columns=["run", "type", "environment", "outcome", "reason", "decided_by", "dagster_run"],
    )
    open_count = sum(r.status != RunStatus.COMPLETED.value for r in runs)
    return Overview(by_type, recent, len(runs), open_count, stale)
