"""Which decisions are alerts, which of them were posted already, and what a post says.

An alert is a completed operation run whose outcome needs attention (by default blocked,
failed or partially succeeded), or whose proof contradicted what a materialization claimed
(whatever the outcome), completed since alerting began and within the look-back window.
Posting one records it in ``alert_deliveries`` (one row per run), so a later tick never
posts it again; a post that fails records nothing, so the run is posted on a later tick (at
least once). Alerts carry ids, codes and names only: no evidence, no provider detail, no
secret.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, delete, exists, or_, select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import (
    AlertDelivery,
    AuditLog,
    ManagedEnvironment,
    OperationRun,
    Workspace,
)
from opsrecon_dagster.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.context import SnakeCase
from opsrecon_dagster.operations.reasons import Language, message

ATTENTION = frozenset({RunOutcome.BLOCKED, RunOutcome.FAILED, RunOutcome.PARTIALLY_SUCCEEDED})
# Decisions older than this are no longer posted (a webhook down for longer loses them; the
# runs stay in ``opsrecon runs list``), and delivery records older than this are pruned.
LOOKBACK = timedelta(days=7)


class UnknownOutcomeError(ValueError):
    """An alert outcome that is not a run outcome."""


def parse_outcomes(value: str) -> frozenset[RunOutcome]:
    """``"blocked,failed"`` -> those outcomes; raises ``UnknownOutcomeError`` naming the
    first value that is not an outcome."""
    outcomes = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            outcomes.add(RunOutcome(part))
        except ValueError:
            choices = ", ".join(o.value for o in RunOutcome)
            raise UnknownOutcomeError(f"unknown outcome {part!r}: one of {choices}") from None
    return frozenset(outcomes)


# The frame of an alert's text line, English and German (the reason's message and code
# follow it).
_ENDED = {"en": "ended {outcome}", "de": "endete mit {outcome}"}
_CORRECTED = {
    "en": "was corrected from {previous} to {outcome}",
    "de": "wurde von {previous} zu {outcome} korrigiert",
}
# Appended when a materialization claimed another outcome than the proof that decided.
_CLAIMED = {
    "en": "; a materialization claimed {claimed}",
    "de": "; eine Materialisierung meldete {claimed}",
}


class Alert(BaseModel):
    """One decision to post: what happened to which run, where. With ``previous_outcome``,
    a follow-up: a decision already posted was corrected (a late report with proof)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_run_id: int
    type: str
    outcome: RunOutcome
    reason_code: SnakeCase
    workspace: str
    environment: str | None
    completed_at: datetime
    previous_outcome: RunOutcome | None = None
    previous_reason_code: SnakeCase | None = None
    # What a materialization claimed against the proof (``Evidence.claimed_outcome``).
    claimed_outcome: SnakeCase | None = None

    @property
    def idempotency_key(self) -> str:
        """The same for every post of this decision: a receiver can drop repeats."""
        corrected = "-corrected" if self.previous_outcome is not None else ""
        return f"opsrecon-run-{self.operation_run_id}{corrected}-{self.outcome.value}"

    def payload(self, language: Language = "en") -> dict[str, Any]:
        """Slack-compatible JSON (``text``), with the fields under ``opsrecon`` for
        receivers that read them."""
        where = self.environment or self.workspace
        frame = _ENDED if self.previous_outcome is None else _CORRECTED
        what = frame[language].format(
            outcome=self.outcome.value,
            previous=self.previous_outcome.value if self.previous_outcome else "",
        )
        claimed = (
            _CLAIMED[language].format(claimed=self.claimed_outcome) if self.claimed_outcome else ""
        )
        text = (
            f"opsrecon: {self.type} run {self.operation_run_id} in {where} {what}: "
            f"{message(self.reason_code, language)} [{self.reason_code}]{claimed}"
        )
        return {
            "text": text,
            "opsrecon": {
                **self.model_dump(mode="json"),
                "idempotency_key": self.idempotency_key,
            },
        }


def due(
    session: Session,
    *,
    outcomes: Collection[RunOutcome],
    since: datetime,
    now: datetime,
    limit: int,
) -> list[Alert]:
    """Decisions with one of ``outcomes``, or whose proof contradicted a materialization's
    claim, completed since ``since`` (and within the look-back window), not posted yet;
    oldest first, at most ``limit``. One range over the completion-time index, whatever
    the history (a claim is looked up per run of the range, by the audit index)."""
    posted = exists().where(AlertDelivery.operation_run_id == OperationRun.id)
    claimed = _claimed_outcome()
    attention = OperationRun.outcome.in_(sorted(o.value for o in outcomes))
    stmt = (
        _alert_select(claimed)
        .where(
            OperationRun.completed_at >= max(since, now - LOOKBACK),
            OperationRun.status == RunStatus.COMPLETED.value,
            or_(attention, claimed.is_not(None)) if outcomes else claimed.is_not(None),
            ~posted,
        )
        .order_by(OperationRun.completed_at, OperationRun.id)
        .limit(limit)
    )
    return [_alert(row[:7], claimed_outcome=row[7]) for row in session.execute(stmt)]


def _claimed_outcome() -> Any:
    """The outcome a materialization claimed against the proof, as the reconciler's decision
    recorded it in its audit row's evidence (NULL: no disagreement). Audit rows are only
    ever written by the product, so their JSON is always readable."""
    return (
        select(AuditLog.details[("evidence", "claimed_outcome")].as_string())
        .where(
            AuditLog.operation_run_id == OperationRun.id,
            AuditLog.action == "run.reconciled",
        )
        .order_by(AuditLog.id.desc())
        .limit(1)
        .correlate(OperationRun)
        .scalar_subquery()
    )


def corrections(session: Session, *, now: datetime, limit: int) -> list[Alert]:
    """Posted decisions that were corrected since (the run's decision is no longer the one
    posted): one follow-up each, oldest post first. ``alert_deliveries`` holds only the
    look-back window's posts, so this reads a bounded table."""
    stmt = (
        _alert_select(AlertDelivery.outcome, AlertDelivery.reason_code)
        .join(AlertDelivery, AlertDelivery.operation_run_id == OperationRun.id)
        .where(
            AlertDelivery.delivered_at >= now - LOOKBACK,
            OperationRun.status == RunStatus.COMPLETED.value,
            OperationRun.outcome.is_not(None),
            or_(
                OperationRun.outcome != AlertDelivery.outcome,
                OperationRun.reason_code != AlertDelivery.reason_code,
            ),
        )
        .order_by(AlertDelivery.delivered_at, AlertDelivery.operation_run_id)
        .limit(limit)
    )
    return [
        _alert(row[:7], previous_outcome=RunOutcome(row[7]), previous_reason_code=row[8])
        for row in session.execute(stmt)
    ]


def _alert_select(*extra: Any) -> Select[Any]:
    """A completed run with its workspace and environment (and ``extra`` columns)."""
    return (
        select(
            OperationRun.id,
            OperationRun.type,
            OperationRun.outcome,
            OperationRun.reason_code,
            OperationRun.completed_at,
            Workspace.slug,
            ManagedEnvironment.partition_key,
            *extra,
        )
        .join(Workspace, Workspace.id == OperationRun.workspace_id)
        .outerjoin(ManagedEnvironment, ManagedEnvironment.id == OperationRun.managed_environment_id)
    )


def _alert(row: Sequence[Any], **previous: Any) -> Alert:
    run_id, op_type, outcome, reason, completed_at, workspace, environment = row
    return Alert(
        operation_run_id=run_id,
        type=op_type,
        outcome=RunOutcome(cast(str, outcome)),  # selected completed: never NULL
        reason_code=reason or "unknown",
        workspace=workspace,
        environment=environment,
        completed_at=completed_at,
        **previous,
    )


def record_posted(session: Session, alert: Alert, at: datetime) -> None:
    """Remember that ``alert`` was posted (a follow-up: the decision it now names), so no
    later tick posts it again."""
    session.merge(
        AlertDelivery(
            operation_run_id=alert.operation_run_id,
            outcome=alert.outcome.value,
            reason_code=alert.reason_code,
            delivered_at=at,
        )
    )


def prune(session: Session, now: datetime) -> int:
    """Forget deliveries older than the look-back window (their runs are no longer due)."""
    result = session.execute(
        delete(AlertDelivery).where(AlertDelivery.delivered_at < now - LOOKBACK)
    )
    return int(getattr(result, "rowcount", 0) or 0)
