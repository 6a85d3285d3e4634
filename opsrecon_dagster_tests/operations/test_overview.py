"""The operations overview counts outcomes by type, open and stale runs, and lists decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, RunInputs
from opsrecon_dagster.operations.enums import Actor, RunOutcome
from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster.settings import AppContext
from opsrecon_dagster_tests.conftest import Scope


def test_overview_counts_and_recent_decisions(app: AppContext, scope: Scope) -> None:
    def start(op: OperationType, n: int) -> int:
        return app.runs.start(
            op,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(scheduled_for=datetime(2026, 1, 1, n, tzinfo=UTC)),
        ).run.id

    done = start(OperationType.INVENTORY_SYNC, 1)
    app.runs.mark_running(done, "0f3c2b1a-aaaa-bbbb-cccc-00000000000a")
    app.runs.complete(
        done,
        Decision(
            outcome=RunOutcome.PARTIALLY_SUCCEEDED,
            reason_code="inventory_partial_coverage",
            adapter="inventory_sync",
            decided_by=Actor.JOB,
            decided_at=datetime.now(UTC),
            evidence=Evidence(),
        ),
    )
    start(OperationType.INVENTORY_SYNC, 2)
    start(OperationType.RESTORE_EXECUTE, 3)
    with app.sessions() as s:
        now_view = build_overview(s, app.catalog, datetime.now(UTC))
        later_view = build_overview(s, app.catalog, datetime.now(UTC) + timedelta(hours=2))
    assert (now_view.total, now_view.open, now_view.stale) == (3, 2, 0)
    assert later_view.stale == 2
    assert now_view.by_type.loc["inventory.sync", "partially_succeeded"] == 1
    assert now_view.by_type.loc["inventory.sync", "open"] == 1
    assert now_view.by_type.loc["restore.execute", "open"] == 1
    [row] = now_view.recent.to_dict("records")
    assert row["reason"] == "Some policy types were synced, others failed."
    assert row["environment"] == "acme.contoso"
    assert row["dagster_run"] == ("[0f3c2b1a](/runs/0f3c2b1a-aaaa-bbbb-cccc-00000000000a)")
