"""The operations overview: what needs attention per environment, outcomes of the last 24 h
by type, and the latest decisions.

Every query is bounded by an index, so the cost follows the open backlog and the last day's
volume, never the whole history: open runs through the partial open-runs index, decisions
through the completion-time index. Plain pandas; the Dagster asset renders it as tables.
"""

from __future__ import annotations

import textwrap
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
from opsrecon_dagster.operations.reasons import Language, message, next_step, outcome_label, word
from opsrecon_dagster.operations.staleness import StalenessRule

RECENT = 15
WINDOW = timedelta(hours=24)
ATTENTION_ITEMS = 10  # the attention list's length; the counts table has every environment
ATTENTION_COLUMNS = ["workspace", "environment", "open", "stale", "blocked_24h", "failed_24h"]
# Narrow on purpose: the reason in words and the next step are in the attention list, and a
# wide table is cut off in the asset page's metadata column.
RECENT_COLUMNS = ["run", "environment", "type", "outcome", "reason_code", "dagster_run"]
PROBLEMS = (RunOutcome.BLOCKED.value, RunOutcome.FAILED.value)
# Outcomes that put an environment on the attention list, worst first ("stuck": open past
# its stale threshold, not decided yet).
STUCK = "stuck"
ATTENTION_ORDER = (
    RunOutcome.FAILED.value,
    RunOutcome.BLOCKED.value,
    STUCK,
    RunOutcome.PARTIALLY_SUCCEEDED.value,
)


class OpenRun(NamedTuple):
    id: int
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


class Decided(NamedTuple):
    """One decision of the last day, as the attention list needs it."""

    id: int
    type: str
    outcome: str | None
    reason_code: str | None
    workspace_id: int
    managed_environment_id: int | None
    completed_at: datetime | None  # never None: selected by completion time
    dagster_run_id: str | None


@dataclass(frozen=True)
class AttentionItem:
    """An environment's operation type whose newest state needs someone: its newest
    decision of the last day failed, was blocked or partially succeeded, or a run is stuck
    open past its stale threshold. ``since``: when it was decided or went stale."""

    workspace: str
    environment: str
    type: str
    outcome: str  # an outcome value, or ``STUCK``
    reason_code: str | None
    operation_run_id: int
    dagster_run_id: str | None
    since: datetime


@dataclass(frozen=True)
class Overview:
    attention: pd.DataFrame  # counts per environment with anything open, stale, blocked or failed
    needs_attention: list[AttentionItem]  # worst first, at most ATTENTION_ITEMS
    by_type: pd.DataFrame  # rows: type; columns: outcomes of the last 24 h + open
    recent: pd.DataFrame  # latest decisions, newest first
    open: int
    stale: int
    decided_24h: int
    latest_problem_dagster_run: str | None  # the newest blocked/failed decision's run


def build_overview(session: Session, now: datetime, language: Language = "en") -> Overview:
    """Summarize open runs and the last 24 hours with index-bounded queries."""
    open_runs = _open_runs(session)
    day = _decisions_since(session, now - WINDOW)
    decided = _counted(day)
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
    needs = _needs_attention(open_runs, stale_flags, day, names)
    problem = next(
        (r.dagster_run_id for r in latest if r.outcome in PROBLEMS and r.dagster_run_id), None
    )
    return Overview(
        attention=attention,
        needs_attention=needs,
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
                OperationRun.id,
                OperationRun.type,
                OperationRun.status,
                OperationRun.stale_at,
                OperationRun.workspace_id,
                OperationRun.managed_environment_id,
            ).where(ACTIVE_RUN)
        )
    ]


def _decisions_since(session: Session, since: datetime) -> list[Decided]:
    """Runs completed since ``since``, through the completion-time index."""
    # Plain tuples, read once: the counts and the attention list both come from them (a
    # GROUP BY tempts SQLite's planner into scanning a type index over the whole history).
    return [
        Decided(*row)
        for row in session.execute(
            select(
                OperationRun.id,
                OperationRun.type,
                OperationRun.outcome,
                OperationRun.reason_code,
                OperationRun.workspace_id,
                OperationRun.managed_environment_id,
                OperationRun.completed_at,
                OperationRun.dagster_run_id,
            ).where(OperationRun.completed_at >= since)
        )
    ]


def _counted(day: Iterable[Decided]) -> list[DecidedCount]:
    """The day's decisions counted per type, outcome and scope."""
    counts: Counter[tuple[str, str | None, int, int | None]] = Counter(
        (d.type, d.outcome, d.workspace_id, d.managed_environment_id) for d in day
    )
    return [DecidedCount(*key, runs) for key, runs in counts.items()]


def _needs_attention(
    open_runs: Sequence[OpenRun], stale: list[bool], day: Sequence[Decided], names: Names
) -> list[AttentionItem]:
    """Per environment and operation type, the decision of its newest run decided that day
    when that is a problem (a newer run's success clears an older one's failure, even when
    the older was decided later), and its oldest stuck run; worst first, then oldest first."""
    found: dict[tuple[int, int | None, str], AttentionItem] = {}
    for d in sorted(day, key=lambda d: d.id, reverse=True):  # ids grow with each new run
        key = (d.workspace_id, d.managed_environment_id, d.type)
        if key in found or d.completed_at is None:
            continue
        ws, env = names[(d.workspace_id, d.managed_environment_id)]
        found[key] = AttentionItem(
            ws,
            env,
            d.type,
            d.outcome or "-",
            d.reason_code,
            d.id,
            d.dagster_run_id,
            d.completed_at,
        )
    items = [i for i in found.values() if i.outcome in ATTENTION_ORDER]
    stuck: dict[tuple[int, int | None, str], AttentionItem] = {}
    for run, is_stale in zip(open_runs, stale, strict=True):
        key = (run.workspace_id, run.managed_environment_id, run.type)
        if not is_stale or run.stale_at is None:
            continue
        if key not in stuck or run.stale_at < stuck[key].since:
            ws, env = names[(run.workspace_id, run.managed_environment_id)]
            stuck[key] = AttentionItem(ws, env, run.type, STUCK, None, run.id, None, run.stale_at)
    items.extend(stuck.values())
    items.sort(key=lambda i: (ATTENTION_ORDER.index(i.outcome), i.since, i.operation_run_id))
    return items[:ATTENTION_ITEMS]


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
    return {
        "run": run.id,
        "environment": names[(run.workspace_id, run.managed_environment_id)][1],
        "type": run.type,
        "outcome": outcome_label(run.outcome, language),
        "reason_code": run.reason_code,
        # The id's first block names the run on the Runs page (as Dagster shows it).
        "dagster_run": run.dagster_run_id[:8] if run.dagster_run_id else "-",
    }


def age(since: datetime, now: datetime, language: Language = "en") -> str:
    """How long ago, coarsely (``12 min ago`` / ``vor 3 h``)."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        span = f"{max(1, seconds // 60)} min"
    elif seconds < 2 * 86400:
        span = f"{seconds // 3600} h"
    else:
        span = f"{seconds // 86400} d"
    return f"{span} {word('ago', language)}" if language == "en" else f"vor {span}"


# The attention list's line length: the UI shows Markdown metadata in a narrow monospaced
# column (about 50 characters at 1440 px) without wrapping it, so lines break here.
ATTENTION_WIDTH = 46


def attention_text(item: AttentionItem, now: datetime, language: Language = "en") -> str:
    """One attention list entry as Markdown: the outcome and the operation type; how long
    ago and the deciding run (linked to its Dagster run page); the reason in words with its
    code; the next step; in the language, in lines of at most ``ATTENTION_WIDTH``."""
    if item.outcome == STUCK:
        label, reason = word("stuck", language), word("stuck_reason", language)
        step: str | None = word("stuck_step", language)
    else:
        label = outcome_label(item.outcome, language)
        code = item.reason_code or ""
        reason = f"{message(code, language)} [{code}]"
        step = next_step(code, language)
    run = f"{word('operation_run', language)} {item.operation_run_id}"
    if item.dagster_run_id:
        run = f"[{run}](/runs/{item.dagster_run_id})"
    blocks = [
        [f"**{label}** · `{item.type}`", f"{age(item.since, now, language)} · {run}"],
        _lines(reason),
    ]
    if step:
        blocks.append(_lines(f"{word('next_step', language)}: {step}"))
    # A hard line break inside a paragraph is two trailing spaces in Markdown.
    return "\n\n".join("  \n".join(block) for block in blocks)


def _lines(text: str) -> list[str]:
    return textwrap.wrap(text, ATTENTION_WIDTH, break_on_hyphens=False)
