"""Proof decides over a materialization's claim (docs/decisions.md#decision-table): a run
whose own artifacts prove an outcome keeps it when a materialization names the run with
another one; the claim goes into the evidence and into an alert (once, in the chosen
language). Without proof, a materialization still fails closed. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from opsrecon_dagster.alerts import ledger
from opsrecon_dagster.alerts.posting import post_due_alerts
from opsrecon_dagster.alerts.webhook import Webhook
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.operations.reasons import message
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC


class _Recorder(Webhook):
    """A webhook that keeps its posts instead of sending them."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9/unused")
        self.posts: list[tuple[dict[str, Any], str]] = []

    def post(self, payload: dict[str, Any], *, idempotency_key: str) -> None:
        self.posts.append((payload, idempotency_key))


def _claimed(world: World, env: str, claim: str, *, work: bool = True) -> int:
    """An inventory run whose Dagster run ended, that wrote its proof (when ``work``), and
    that a materialization names with the outcome ``claim``."""
    scope = world.scope(env)
    world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    run_id = world.start(INV, scope)
    world.running(run_id, "SUCCESS")
    if work:
        world.work_then_die("inventory_items", run_id)
    world.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="inventory_items",
            partition=scope.partition_key,
            metadata={"operation_run_id": run_id, "outcome": claim},
        )
    )
    return run_id


def test_proof_decides_over_a_disagreeing_claim_which_is_recorded_and_alerted(
    world: World,
) -> None:
    begin = datetime.now(UTC) - timedelta(seconds=1)
    partial = _claimed(world, "partial", "succeeded")
    proven = _claimed(world, "full", "partially_succeeded")
    agreed = _claimed(world, "other", "succeeded")

    world.reconcile(later=timedelta(0), run_ids=[partial, proven, agreed])

    assert world.decided(partial) == ("partially_succeeded", "inventory_partial_coverage")
    assert world.decided(proven) == ("succeeded", "inventory_all_types_covered")
    assert world.decided(agreed) == ("succeeded", "inventory_all_types_covered")
    claims = {
        run_id: (decision.evidence.claimed_outcome, decision.evidence.materialization_count)
        for run_id in (partial, proven, agreed)
        if (decision := RunContext.load(world.app.runs.get(run_id).context).decision)
    }
    assert claims == {
        partial: ("succeeded", 1),
        proven: ("partially_succeeded", 1),
        agreed: (None, 1),
    }

    # Alerts for failures only: the disagreements are posted anyway, each once.
    webhook = _Recorder()
    for _ in range(2):
        post_due_alerts(
            world.app,
            webhook,
            outcomes=frozenset({RunOutcome.FAILED}),
            since=begin,
            now=datetime.now(UTC),
        )
    assert [key for _, key in webhook.posts] == [
        f"opsrecon-run-{partial}-partially_succeeded",
        f"opsrecon-run-{proven}-succeeded",
    ]
    payload = webhook.posts[1][0]
    assert payload["text"].endswith(
        f"ended succeeded: {message('inventory_all_types_covered')} "
        "[inventory_all_types_covered]; a materialization claimed partially_succeeded"
    )
    assert payload["opsrecon"]["claimed_outcome"] == "partially_succeeded"


def test_the_claim_alert_speaks_the_chosen_language(world: World) -> None:
    begin = datetime.now(UTC) - timedelta(seconds=1)
    run_id = _claimed(world, "partial", "succeeded")
    world.reconcile(later=timedelta(0), run_ids=[run_id])
    with world.app.sessions() as session:  # no outcome chosen: the disagreement alone
        [alert] = ledger.due(session, outcomes=(), since=begin, now=datetime.now(UTC), limit=5)
    assert (alert.operation_run_id, alert.claimed_outcome) == (run_id, "succeeded")
    assert alert.payload("de")["text"].endswith(
        f"endete mit partially_succeeded: {message('inventory_partial_coverage', 'de')} "
        "[inventory_partial_coverage]; eine Materialisierung meldete succeeded"
    )


def test_a_claim_without_proof_still_fails_closed(world: World) -> None:
    run_id = _claimed(world, "full", "succeeded", work=False)
    world.reconcile(later=timedelta(0), run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "materialization_without_proof")
