"""The alerts service: post the decisions that are due, record each one posted."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from opsrecon_dagster.alerts import ledger
from opsrecon_dagster.alerts.webhook import Webhook, WebhookError
from opsrecon_dagster.app import AppContext
from opsrecon_dagster.enums import RunOutcome

logger = logging.getLogger(__name__)

# Posts per call: a receiver that rate-limits (Slack: about one a second) is not flooded,
# and one tick stays a bounded amount of work; the rest follow on the next tick.
POST_LIMIT = 50


@dataclass(frozen=True)
class PostingReport:
    """What one call did: posts made, and the webhook's failure that stopped it (if any)."""

    posted: int
    failure: WebhookError | None = None


def post_due_alerts(
    app: AppContext,
    webhook: Webhook,
    *,
    outcomes: Collection[RunOutcome],
    since: datetime,
    now: datetime,
    limit: int = POST_LIMIT,
) -> PostingReport:
    """Post every due alert, oldest first, each recorded in its own transaction right after
    its post: a crash in between can repeat that one post (at least once, with the same
    idempotency key), never skip one. The first failed post stops the call; that alert and
    the rest stay due."""
    with app.sessions.begin() as session:
        ledger.prune(session, now)
    with app.sessions() as session:
        alerts = ledger.due(session, outcomes=outcomes, since=since, now=now, limit=limit)
        # Follow-ups for posted decisions that a late report with proof corrected since.
        alerts += ledger.corrections(session, now=now, limit=limit - len(alerts))
    posted = 0
    for alert in alerts:
        try:
            webhook.post(alert.payload(app.language), idempotency_key=alert.idempotency_key)
        except WebhookError as failure:
            logger.warning(
                "alert for operation run %s not posted: %s", alert.operation_run_id, failure
            )
            return PostingReport(posted, failure)
        with app.sessions.begin() as session:
            ledger.record_posted(session, alert, now)
        posted += 1
    return PostingReport(posted)
