"""The demo (the README's main job) decides every scenario as expected, twice in a row."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.main import cli
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.demo import run_demo
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.ui_agreement import disagreements, partition_views

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # The demo points these at its own state; monkeypatch restores them afterwards.
    for name in (
        "DAGSTER_HOME",
        "OPSRECON_DATABASE_URL",
        "OPSRECON_STALE_THRESHOLDS",
        "OPSRECON_FIXTURE_PATH",
    ):
        monkeypatch.setenv(name, "")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def test_demo_decides_every_scenario_as_expected(isolated_env: Path) -> None:
    lines: list[str] = []
    isolated_env.mkdir(parents=True)
    (isolated_env / "notes.txt").write_text("mine")  # not the demo's: it stays
    rows = run_demo(lines.append, isolated_env)
    assert len(rows) == 16  # 15 scenarios and the retention run after the complete backup
    # Every scenario has its German name for the demo table.
    from opsrecon_dagster.cli.demo import SCENARIOS_DE

    assert [r.label for r in rows if r.label not in SCENARIOS_DE] == []
    assert (isolated_env / "notes.txt").read_text() == "mine"
    # One data location: the CLI's defaults (here, from this working directory) read the
    # demo's database.
    listed = CliRunner().invoke(
        cli, ["runs", "list", "--limit", "100", "--json"],
        env={"OPSRECON_DATABASE_URL": "", "DAGSTER_HOME": ""},
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.output)) >= 15
    assert [(r.label, r.decided) for r in rows if r.decided != r.expected] == []
    by_label = {r.label: r for r in rows}
    assert by_label["worker killed mid-materialization"].reason == "stale_without_proof"
    assert by_label["late-finishing job (corrected once)"].decided_by == "late_correction"
    assert by_label["launch that never started"].reason == "queued_never_started"
    retention = by_label["backup: retention after the backup"]
    assert (retention.environment, retention.decided_by, retention.reason) == (
        "globex.contoso",
        "job",
        "retention_enforced",
    )
    # The queued run was left alone past the queued threshold, then decided by its own job.
    queued = by_label["waited in Dagster's run queue, then ran"]
    assert (queued.decided_by, queued.reason) == ("job", "inventory_all_types_covered")
    assert any("no decision (run_waiting_in_queue)" in line for line in lines)
    assert [r.label for r in rows if r.reason == "queued_never_started"] == [
        "launch that never started"
    ]
    assert any("exited with signal 9" in line for line in lines)
    # The demo's instance holds the runs, observations and the overview for the UI.
    assert Path(os.environ["DAGSTER_HOME"]) == (isolated_env / "dagster_home").resolve()
    with dg.DagsterInstance.get() as instance:
        observed = instance.fetch_observations(dg.AssetKey("inventory_items"), limit=20).records
        assert {r.partition_key for r in observed} >= {"globex.umbrella", "globex.stark"}
        assert instance.get_latest_materialization_event(dg.AssetKey("operations_overview"))
        # What the UI shows per partition is what the rows say, and no run looks alive.
        app = AppContext(Settings(f"sqlite:///{isolated_env / 'opsrecon.sqlite3'}"))
        try:
            assert disagreements(app, instance) == []
            views = {(v.asset, v.partition): v for v in partition_views(app, instance)}
            # Reconciled "as of" a later instant, yet no decision is stamped after now.
            with app.sessions() as session:
                latest = session.scalar(select(func.max(OperationRun.completed_at)))
            assert latest is not None and latest <= datetime.now(UTC)
        finally:
            app.dispose()
        assert views[("inventory_items", "globex.umbrella")].status == "failed"
        assert views[("inventory_items", "acme.fabrikam")].check == "warning"  # blocked
        assert views[("inventory_items", "acme.northwind")].check == "passed: partial"
        assert len(views) == 12
    again = run_demo(lines.append, isolated_env)
    assert [r.decided for r in again] == [r.decided for r in rows]
    assert any(
        "reset (the previous database and Dagster instance removed)" in line for line in lines
    )
