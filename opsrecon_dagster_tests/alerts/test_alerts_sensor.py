"""The alerts sensor against a real local webhook: each decision that needs attention is
posted once (at least once across failures, never twice once accepted), nothing else, and
no secret or evidence in any post."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.reasons import message
from opsrecon_dagster.resources import AlertWebhookResource, AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.alerts import AlertCursor, decision_alerts_sensor
from opsrecon_dagster.sensors.guard import SensorTickError
from opsrecon_dagster_tests.alerts.conftest import SECRET_PATH, Receiver
from opsrecon_dagster_tests.conftest import Scope, decide

EVIDENCE_MARK = "evidence_that_stays_home"


def _decide(app: AppContext, scope: Scope, n: int, outcome: RunOutcome, reason: str) -> int:
    run_id = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(scheduled_for=datetime(2026, 1, 1, n, tzinfo=UTC)),
    ).run.id
    app.runs.mark_running(run_id, None)
    decide(app, run_id, outcome, reason, artifact_kind=EVIDENCE_MARK)
    return run_id


def _tick(
    app: AppContext,
    instance: dg.DagsterInstance,
    alerts: AlertWebhookResource,
    cursor: str | None,
    at: datetime | None = None,
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "alerts": alerts,
            "clock": ClockResource.at(at or datetime.now(UTC)),
        },
    )
    result = decision_alerts_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _skip(result: dg.SensorResult) -> str | None:
    return result.skip_reason.skip_message if result.skip_reason else None


def _begin(app: AppContext, instance: dg.DagsterInstance, alerts: AlertWebhookResource) -> str:
    """The first tick: alerting begins; returns the cursor it stores."""
    result = _tick(app, instance, alerts, None)
    assert result.cursor is not None and AlertCursor.parse(result.cursor) is not None
    return result.cursor


def test_each_decision_that_needs_attention_is_posted_once(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    alerts = AlertWebhookResource(url=receiver.url)
    before = _decide(app, scope, 0, RunOutcome.FAILED, "stale_without_proof")
    cursor = _begin(app, instance, alerts)
    assert receiver.posts == []  # turning alerts on does not replay the history
    failed = _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    blocked = _decide(app, scope, 2, RunOutcome.BLOCKED, "inventory_access_missing")
    partial = _decide(app, scope, 3, RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage")
    _decide(app, scope, 4, RunOutcome.SUCCEEDED, "inventory_all_types_covered")

    result = _tick(app, instance, alerts, cursor)
    assert _skip(result) is None
    assert receiver.accepted_run_ids() == [failed, blocked, partial]
    assert before not in receiver.accepted_run_ids()
    first = receiver.accepted()[0]
    assert first["path"] == SECRET_PATH
    assert first["idempotency_key"] == f"opsrecon-run-{failed}-failed"
    assert first["body"]["text"] == (
        f"opsrecon: inventory.sync run {failed} in {scope.partition_key} ended failed: "
        f"{message('stale_without_proof')} [stale_without_proof]"
    )
    assert first["body"]["opsrecon"]["reason_code"] == "stale_without_proof"

    again = _tick(app, instance, alerts, cursor)
    assert _skip(again) == "no new decisions that need attention"
    assert len(receiver.posts) == 3  # nothing posted twice


def test_a_failed_post_fails_the_tick_and_the_alert_follows_once(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    alerts = AlertWebhookResource(url=receiver.url)
    cursor = _begin(app, instance, alerts)
    first = _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    second = _decide(app, scope, 2, RunOutcome.BLOCKED, "inventory_access_missing")
    receiver.answers = [200, 503]  # the second post fails

    with pytest.raises(
        SensorTickError, match="1 alerts posted, then the webhook answered HTTP 503"
    ):
        _tick(app, instance, alerts, cursor)
    assert receiver.accepted_run_ids() == [first]

    _tick(app, instance, alerts, cursor)
    _tick(app, instance, alerts, cursor)
    # At least once: the refused post was repeated; never twice once accepted.
    assert receiver.accepted_run_ids() == [first, second]
    assert [p["status"] for p in receiver.posts] == [200, 503, 200]
    assert receiver.posts[1]["idempotency_key"] == receiver.posts[2]["idempotency_key"]


def test_posts_name_no_secret_and_no_evidence(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    alerts = AlertWebhookResource(url=receiver.url)
    cursor = _begin(app, instance, alerts)
    _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    _tick(app, instance, alerts, cursor)
    body = json.dumps(receiver.accepted()[0]["body"])
    assert EVIDENCE_MARK not in body and "evidence" not in body
    assert SECRET_PATH not in body

    # An unreachable webhook: the tick's error names neither the URL nor its secret path.
    receiver_gone = AlertWebhookResource(url=f"http://127.0.0.1:9{SECRET_PATH}")
    _decide(app, scope, 2, RunOutcome.FAILED, "stale_without_proof")
    with pytest.raises(SensorTickError) as failure:
        _tick(app, instance, receiver_gone, cursor)
    assert "unreachable" in str(failure.value)
    assert "s3cr3t" not in str(failure.value) and "127.0.0.1" not in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__context__ is None


def test_the_outcomes_posted_are_configurable(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    alerts = AlertWebhookResource(url=receiver.url, outcomes="blocked")
    cursor = _begin(app, instance, alerts)
    _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    blocked = _decide(app, scope, 2, RunOutcome.BLOCKED, "inventory_access_missing")
    _tick(app, instance, alerts, cursor)
    assert receiver.accepted_run_ids() == [blocked]

    wrong = AlertWebhookResource(url=receiver.url, outcomes="blocked,broken")
    with pytest.raises(dg.Failure, match="unknown outcome 'broken'"):
        _tick(app, instance, wrong, cursor)


def test_alerts_are_off_without_a_webhook(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance
) -> None:
    _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    result = _tick(app, instance, AlertWebhookResource(), None)
    assert "alerts are off" in (_skip(result) or "")
    assert result.cursor is None


def test_decisions_older_than_the_look_back_are_no_longer_posted(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    alerts = AlertWebhookResource(url=receiver.url)
    cursor = _begin(app, instance, alerts)
    _decide(app, scope, 1, RunOutcome.FAILED, "stale_without_proof")
    # The webhook was down for eight days.
    result = _tick(app, instance, alerts, cursor, at=datetime.now(UTC) + timedelta(days=8))
    assert _skip(result) == "no new decisions that need attention"
    assert receiver.posts == []


def test_a_corrected_decision_is_followed_up_once(
    app: AppContext, scope: Scope, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    """A failed decision was posted; a late report with the run's own proof corrects it:
    the next tick posts one follow-up naming the previous and the new outcome, in the
    chosen language, and no later tick posts it again."""
    from opsrecon_dagster.enums import Actor
    from opsrecon_dagster.operations.context import Decision, Evidence

    alerts = AlertWebhookResource(url=receiver.url)
    cursor = _begin(app, instance, alerts)
    run_id = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run.id
    app.runs.mark_running(run_id, None)
    app.runs.reconcile(
        run_id,
        Decision(
            outcome=RunOutcome.FAILED,
            reason_code="stale_without_proof",
            adapter="inventory_sync",
            decided_by=Actor.RECONCILER,
            decided_at=datetime.now(UTC),
            evidence=Evidence(),
        ),
    )
    _tick(app, instance, alerts, cursor)
    assert receiver.accepted_run_ids() == [run_id]
    decide(app, run_id, RunOutcome.SUCCEEDED, "inventory_all_types_covered")  # late, proven
    assert app.runs.get(run_id).outcome == "succeeded"

    _tick(app, instance, alerts, cursor)
    follow_up = receiver.accepted()[-1]
    assert receiver.accepted_run_ids() == [run_id, run_id]
    assert follow_up["idempotency_key"] == f"opsrecon-run-{run_id}-corrected-succeeded"
    assert follow_up["body"]["text"] == (
        f"opsrecon: inventory.sync run {run_id} in {scope.partition_key} was corrected from "
        f"failed to succeeded: {message('inventory_all_types_covered')} "
        "[inventory_all_types_covered]"
    )
    assert follow_up["body"]["opsrecon"]["previous_outcome"] == "failed"
    again = _tick(app, instance, alerts, cursor)
    assert _skip(again) == "no new decisions that need attention"
    assert len(receiver.accepted()) == 2


def test_alert_text_speaks_the_chosen_language() -> None:
    from opsrecon_dagster.alerts.ledger import Alert

    fields = {
        "operation_run_id": 7,
        "type": "inventory.sync",
        "outcome": RunOutcome.SUCCEEDED,
        "reason_code": "inventory_all_types_covered",
        "workspace": "acme",
        "environment": "acme.contoso",
        "completed_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    corrected = Alert(**fields, previous_outcome=RunOutcome.FAILED)
    assert corrected.payload("de")["text"] == (
        "opsrecon: inventory.sync run 7 in acme.contoso wurde von failed zu succeeded "
        f"korrigiert: {message('inventory_all_types_covered', 'de')} [inventory_all_types_covered]"
    )
    assert " endete mit succeeded: " in Alert(**fields).payload("de")["text"]
