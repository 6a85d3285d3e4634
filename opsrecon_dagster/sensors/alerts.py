"""The alerts sensor: posts each decision that needs attention to the configured webhook."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from pydantic import BaseModel, ConfigDict, ValidationError

from opsrecon_dagster.alerts.posting import PostingReport, post_due_alerts
from opsrecon_dagster.resources import AlertWebhookResource, AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.guard import SensorTickError, guarded_tick

ALERTS_INTERVAL_SECONDS = 30


class AlertCursor(BaseModel):
    """When alerting began: decisions completed before then are never posted (turning
    alerts on does not replay the history)."""

    model_config = ConfigDict(extra="ignore")

    since: datetime

    @classmethod
    def parse(cls, raw: str | None) -> AlertCursor | None:
        """None for a missing or unreadable cursor."""
        try:
            return cls.model_validate_json(raw) if raw else None
        except ValidationError:
            return None


@dg.sensor(
    minimum_interval_seconds=ALERTS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts each blocked, failed or partially succeeded decision to the alert "
    "webhook (OPSRECON_ALERT_WEBHOOK_URL), once.",
)
def decision_alerts_sensor(
    context: dg.SensorEvaluationContext,
    app_db: AppDatabaseResource,
    alerts: AlertWebhookResource,
    clock: ClockResource,
) -> dg.SensorResult:
    """Each tick posts the decisions completed since alerting began that need attention and
    were not posted yet, oldest first; a failed post fails the tick, and the alerts it did
    not post are posted by a later one."""
    webhook = alerts.webhook()
    if webhook is None:
        return dg.SensorResult(skip_reason="alerts are off: no OPSRECON_ALERT_WEBHOOK_URL")
    now = clock.now()
    cursor = AlertCursor.parse(context.cursor)
    if cursor is None:
        return dg.SensorResult(
            cursor=AlertCursor(since=now).model_dump_json(),
            skip_reason="alerting begins now: decisions from here on are posted",
        )
    outcomes = alerts.alert_outcomes()

    def post() -> PostingReport:
        with app_db.opened() as app:
            return post_due_alerts(app, webhook, outcomes=outcomes, since=cursor.since, now=now)

    try:
        report = guarded_tick(context, "posting alerts", post)
    finally:
        webhook.close()
    if report.failure is not None:  # visible in the UI as a failed tick; retried next tick
        raise SensorTickError(
            f"{report.posted} alerts posted, then the {report.failure}; the rest are posted "
            "on a later tick"
        )
    if not report.posted:
        return dg.SensorResult(skip_reason="no new decisions that need attention")
    context.log.info(f"{report.posted} alerts posted")
    return dg.SensorResult()
