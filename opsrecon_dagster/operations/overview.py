"""The operations overview: outcomes by type, open and stale runs, the latest decisions.

Plain pandas over ``operation_runs``; the Dagster asset renders it as metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.operations.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.queries import partition_keys
from opsrecon_dagster.operations.reasons import message
from opsrecon_dagster.operations.staleness import StalenessRule

RECENT = 15


@dataclass(frozen=True)
class Overview:
    by_type: pd.DataFrame  # rows: type; columns: outcomes + open
    recent: pd.DataFrame  # latest decisions, newest first
    total: int
    open: int
    stale: int


def build_overview(session: Session, catalog: OperationCatalog, now: datetime) -> Overview:
    """Summarize the runs with aggregate queries, so the cost does not grow with history:
    counts by type and state, the open runs (partial index), and the latest decisions."""
    counts = session.execute(
        select(OperationRun.type, OperationRun.status, OperationRun.outcome, func.count()).group_by(
            OperationRun.type, OperationRun.status, OperationRun.outcome
        )
    ).all()
    columns = [o.value for o in RunOutcome] + ["open"]
    table: dict[str, dict[str, int]] = {}
    for op_type, status, outcome, n in counts:
        state = outcome if status == RunStatus.COMPLETED.value and outcome else "open"
        row = table.setdefault(op_type, dict.fromkeys(columns, 0))
        row[state] = row.get(state, 0) + int(n)
    by_type = pd.DataFrame.from_dict(table, orient="index", columns=columns).sort_index()
    open_runs = session.execute(
        select(OperationRun.type, OperationRun.status, OperationRun.last_progress_at).where(
            OperationRun.status.in_([s.value for s in RunStatus.active()])
        )
    ).all()
    rule = StalenessRule(catalog)
    stale = sum(rule.is_stale(t, status, progress, now) for t, status, progress in open_runs)
    latest = session.scalars(
        select(OperationRun)
        .where(OperationRun.status == RunStatus.COMPLETED.value)
        .order_by(OperationRun.completed_at.desc(), OperationRun.id.desc())
        .limit(RECENT)
    ).all()
    keys = partition_keys(session, latest)
    recent = pd.DataFrame(
        [_decision_row(run, keys) for run in latest],
        columns=["run", "type", "environment", "outcome", "reason", "decided_by", "dagster_run"],
    )
    total = sum(int(n) for *_rest, n in counts)
    return Overview(by_type, recent, total, len(open_runs), stale)


def _decision_row(run: OperationRun, keys: dict[int, str]) -> dict[str, object]:
    decision = RunContext.load_or_empty(run.context).decision
    link = f"[{run.dagster_run_id[:8]}](/runs/{run.dagster_run_id})" if run.dagster_run_id else "-"
    return {
        "run": run.id,
        "type": run.type,
        "environment": keys.get(run.managed_environment_id or -1, "-"),
        "outcome": run.outcome,
        "reason": message(run.reason_code or ""),
        "decided_by": decision.decided_by.value if decision else "-",
        "dagster_run": link,
    }
