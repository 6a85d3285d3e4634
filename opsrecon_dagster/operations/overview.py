"""The operations overview: what needs attention per environment, outcomes of the last 24 h
by type, and the latest decisions.

Every query is bounded by an index, so the cost follows the open backlog and the last day's
volume, never the whole history: open runs through the partial open-runs index, decisions
through the completion-time index. Plain pandas; the Dagster asset renders it as tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import ACTIVE_RUN, ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.operations.reasons import Language, message
from opsrecon_dagster.operations.staleness import StalenessRule

RECENT = 15
WINDOW = timedelta(hours=24)
ATTENTION_COLUMNS = ["workspace", "environment", "open", "stale", "blocked_24h", "failed_24h"]
RECENT_COLUMNS = [
    "run",
    "type",
    "environment",
    "outcome",
    "reason_code",
    "reason",
    "decided_by",
    "dagster_run",
]
PROBLEMS = (RunOutcome.BLOCKED.value, RunOutcome.FAILED.value)


class OpenRun(NamedTuple):
    type: str
    status: str
    stale_at: datetime | None
    workspace_id: int
    managed_environment_id: int | None


class DecidedCount(NamedTuple):
    type: str
    outcome: str | None
    workspace_id: int
    managed_environment_id: int | None
    runs: int


@dataclass(frozen=True)
class Overview:
    attention: pd.DataFrame  # per environment with anything open, stale, blocked or failed
    by_type: pd.DataFrame  # rows: type; columns: outcomes of the last 24 h + open
    recent: pd.DataFrame  # latest decisions, newest first
    open: int
    stale: int
    decided_24h: int
    latest_problem_dagster_run: str | None  # the newest blocked/failed decision's run


def build_overview(session: Session, now: datetime, language: Language = "en") -> Overview:
    """Summarize open runs and the last 24 hours with index-bounded queries."""
    open_runs = _open_runs(session)
    decided = _decided_since(session, now - WINDOW)
    latest = _latest_decisions(session)
    names = _scope_names(
        session,
        [(r.workspace_id, r.managed_environment_id) for r in open_runs]
        + [(d.workspace_id, d.managed_environment_id) for d in decided]
        + [(r.workspace_id, r.managed_environment_id) for r in latest],
    )
    # Stale as the reconciler sees it: past the stored due time (a run waiting in Dagster's
    # queue, or found alive, is due again only when it could be decided).
    stale_flags = [StalenessRule.stored_stale(r.stale_at, now) for r in open_runs]
    attention = _attention(open_runs, stale_flags, decided, names)
    problem = next(
        (r.dagster_run_id for r in latest if r.outcome in PROBLEMS and r.dagster_run_id), None
    )
    return Overview(
        attention=attention,
        by_type=_by_type(open_runs, decided),
        recent=pd.DataFrame(
            [_decision_row(run, names, language) for run in latest], columns=RECENT_COLUMNS
        ),
        open=len(open_runs),
        stale=sum(stale_flags),
        decided_24h=sum(d.runs for d in decided),
        latest_problem_dagster_run=problem,
    )


def _open_runs(session: Session) -> list[OpenRun]:
    """Every open run, through the partial open-runs index."""
    # The open-runs predicate is written as literals, as in the partial index's own
    # definition: bound parameters would keep SQLite from using that index.
    return [
        OpenRun(*row)
        for row in session.execute(
            select(
                OperationRun.type,
                OperationRun.status,
                OperationRun.stale_at,
                OperationRun.workspace_id,
                OperationRun.managed_environment_id,
            ).where(ACTIVE_RUN)
        )
    ]


def _decided_since(session: Session, since: datetime) -> list[DecidedCount]:
    """Runs completed since ``since``, counted per type, outcome and scope."""
    # The last day's decisions through the completion-time index, counted here: a GROUP BY
    # tempts SQLite's planner into scanning a type index over the whole history.
    # Plain tuples: counting Row objects costs more than reading them.
    day: Counter[tuple[str, str | None, int, int | None]] = Counter(
        (t, o, ws, env)
        for t, o, ws, env in session.execute(
            select(
                OperationRun.type,
                OperationRun.outcome,
                OperationRun.workspace_id,
                OperationRun.managed_environment_id,
            ).where(OperationRun.completed_at >= since)
        )
    )
    return [DecidedCount(*key, runs) for key, runs in day.items()]


def _latest_decisions(session: Session) -> Sequence[OperationRun]:
    """The newest decisions, newest first."""
    return session.scalars(
        select(OperationRun)
        .where(OperationRun.completed_at.is_not(None))
        .order_by(OperationRun.completed_at.desc(), OperationRun.id.desc())
        .limit(RECENT)
    ).all()


Names = dict[tuple[int, int | None], tuple[str, str]]


def _scope_names(session: Session, scopes: Iterable[tuple[int, int | None]]) -> Names:
    """Workspace slug and environment partition key per (workspace, environment) pair."""
    wanted = set(scopes)
    ws_ids = {ws for ws, _ in wanted}
    env_ids = {env for _, env in wanted if env is not None}
    ws_slug = dict(
        session.execute(select(Workspace.id, Workspace.slug).where(Workspace.id.in_(ws_ids))).all()
        if ws_ids
        else []
    )
    env_key = dict(
        session.execute(
            select(ManagedEnvironment.id, ManagedEnvironment.partition_key).where(
                ManagedEnvironment.id.in_(env_ids)
            )
        ).all()
        if env_ids
        else []
    )
    return {
        (ws, env): (ws_slug.get(ws, str(ws)), env_key.get(env, "-") if env else "-")
        for ws, env in wanted
    }


def _attention(
    open_runs: Sequence[OpenRun], stale: list[bool], decided: Sequence[DecidedCount], names: Names
) -> pd.DataFrame:
    counts: dict[tuple[int, int | None], dict[str, int]] = {}

    def row(ws: int, env: int | None) -> dict[str, int]:
        return counts.setdefault((ws, env), dict.fromkeys(ATTENTION_COLUMNS[2:], 0))

    for run, is_stale in zip(open_runs, stale, strict=True):
        entry = row(run.workspace_id, run.managed_environment_id)
        entry["open"] += 1
        entry["stale"] += int(is_stale)
    for d in decided:
        if d.outcome in PROBLEMS:
            row(d.workspace_id, d.managed_environment_id)[f"{d.outcome}_24h"] += d.runs
    frame = pd.DataFrame(
        [
            {"workspace": names[key][0], "environment": names[key][1], **values}
            for key, values in counts.items()
        ],
        columns=ATTENTION_COLUMNS,
    )
    return frame.sort_values(
        ["stale", "failed_24h", "blocked_24h", "open", "workspace", "environment"],
        ascending=[False, False, False, False, True, True],
        ignore_index=True,
    )


def _by_type(open_runs: Sequence[OpenRun], decided: Sequence[DecidedCount]) -> pd.DataFrame:
    columns = [o.value for o in RunOutcome] + ["open"]
    table: dict[str, dict[str, int]] = {}
    for d in decided:
        if d.outcome is not None:
            entry = table.setdefault(d.type, dict.fromkeys(columns, 0))
            entry[d.outcome] = entry.get(d.outcome, 0) + d.runs
    for run in open_runs:
        table.setdefault(run.type, dict.fromkeys(columns, 0))["open"] += 1
    return pd.DataFrame.from_dict(table, orient="index", columns=columns).sort_index()


def _decision_row(run: OperationRun, names: Names, language: Language) -> dict[str, object]:
    decision = RunContext.load_or_empty(run.context).decision
    return {
        "run": run.id,
        "type": run.type,
        "environment": names[(run.workspace_id, run.managed_environment_id)][1],
        "outcome": run.outcome,
        "reason_code": run.reason_code,
        "reason": message(run.reason_code or "", language),
        "decided_by": decision.decided_by.value if decision else "-",
        "dagster_run": run.dagster_run_id or "-",
    }
