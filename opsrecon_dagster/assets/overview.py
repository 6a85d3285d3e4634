"""An at-a-glance asset over ``operation_runs``: decision first, diagnostics second."""

from datetime import UTC, datetime

import dagster as dg

from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster.resources import AppDatabaseResource


@dg.asset(group_name="operations", kinds={"python", "sqlalchemy"})
def operations_overview(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """Operation runs at a glance: the latest decisions with their reasons and Dagster runs,
    outcomes by type, and how many runs are open or stale."""
    with app_db.opened() as app, app.sessions() as session:
        view = build_overview(session, app.catalog, datetime.now(UTC))
    context.log.info(f"{view.total} runs, {view.open} open, {view.stale} stale")
    return dg.MaterializeResult(
        metadata={
            "latest_decisions": dg.MetadataValue.md(
                view.recent.to_markdown(index=False) if not view.recent.empty else "_none yet_"
            ),
            "outcomes_by_type": dg.MetadataValue.md(
                view.by_type.to_markdown() if not view.by_type.empty else "_no runs_"
            ),
            "runs_total": dg.MetadataValue.int(view.total),
            "runs_open": dg.MetadataValue.int(view.open),
            "runs_stale": dg.MetadataValue.int(view.stale),
        }
    )
