"""The overview asset renders the overview as Dagster tables; its schedule refreshes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.assets.overview import operations_overview, operations_overview_schedule
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster_tests.conftest import Scope
from opsrecon_dagster_tests.operations.test_overview import DAGSTER_RUN, seed_overview_world


def test_the_asset_shows_dagster_tables_and_the_problem_run(app: AppContext, scope: Scope) -> None:
    seed_overview_world(app, scope)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [operations_overview],
            instance=instance,
            resources={
                "app_db": AppDatabaseResource(
                    database_url=app.url.render_as_string(False), language="de"
                ),
                "clock": ClockResource.at(datetime.now(UTC) + timedelta(hours=2)),
            },
        )
    assert result.success
    [mat] = result.asset_materializations_for_node("operations_overview")
    # The attention list first, worst first, in the configured language, each entry with its
    # outcome, reason, run link and next step.
    keys = list(mat.metadata)
    assert keys[:4] == [
        "Achtung 01: globex.umbrella",
        "Achtung 02: acme.contoso",
        "Achtung 03: acme.contoso",
        "Achtung 04: globex.umbrella",
    ]
    failed = mat.metadata["Achtung 01: globex.umbrella"]
    assert isinstance(failed, dg.MarkdownMetadataValue)
    assert str(failed.md_str).startswith("**Fehlgeschlagen** · `inventory.sync`  \nvor 2 h · [")
    assert f"](/runs/{DAGSTER_RUN})" in str(failed.md_str)
    assert "[stale_without_proof]" in str(failed.md_str)
    assert "Nächster Schritt:" in str(failed.md_str)
    # Short lines: the UI does not wrap Markdown metadata (links count as their text).
    shown = str(failed.md_str).replace(f"(/runs/{DAGSTER_RUN})", "")
    assert max(len(line) for line in shown.splitlines()) <= 50
    blocked = mat.metadata["Achtung 02: acme.contoso"]
    assert isinstance(blocked, dg.MarkdownMetadataValue)
    assert str(blocked.md_str).startswith("**Blockiert** · `inventory.sync`")
    assert "Erteilen Sie" in str(blocked.md_str)
    for stuck in ("Achtung 03: acme.contoso", "Achtung 04: globex.umbrella"):
        assert str(mat.metadata[stuck].value).startswith("**Hängt**")
    assert keys[:4] == sorted(keys)[:4]  # the UI sorts keys: the attention entries first
    counts = mat.metadata["achtung_anzahlen"]
    assert isinstance(counts, dg.TableMetadataValue)
    assert [c.name for c in counts.schema.columns] == [
        "Arbeitsbereich",
        "Umgebung",
        "offen",
        "überfällig",
        "blockiert_24h",
        "fehlgeschlagen_24h",
    ]
    assert {r.data["Umgebung"] for r in counts.records} == {
        "acme.contoso",
        "globex.umbrella",
    }
    latest = mat.metadata["neueste_entscheidungen"]
    assert isinstance(latest, dg.TableMetadataValue)
    assert {r.data["Ergebnis"] for r in latest.records} >= {"Teilweise erfolgreich", "Blockiert"}
    problem = mat.metadata["neuester_problemlauf"]
    assert isinstance(problem, dg.DagsterRunMetadataValue)
    assert problem.run_id == DAGSTER_RUN
    assert mat.metadata["läufe_überfällig"] == dg.MetadataValue.int(2)


def test_the_schedule_refreshes_the_overview() -> None:
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
        )
        [request] = list(operations_overview_schedule.evaluate_tick(context).run_requests or [])
    assert isinstance(request, dg.RunRequest)
    assert operations_overview_schedule.job_name == "operations_overview_refresh"
    assert operations_overview_schedule.default_status is dg.DefaultScheduleStatus.RUNNING
