"""An at-a-glance asset over ``operation_runs``: what needs attention first, then the last
day's outcomes and the latest decisions, as Dagster tables; refreshed by a schedule."""

import dagster as dg
import pandas as pd

from opsrecon_dagster.operations.overview import attention_text, build_overview
from opsrecon_dagster.operations.reasons import Language, word
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource

# Column types for the UI's table renderer; every other column is text.
INTEGER_COLUMNS = {
    "open",
    "stale",
    "blocked_24h",
    "failed_24h",
    "run",
    "succeeded",
    "partially_succeeded",
    "blocked",
    "failed",
}


def table(
    frame: pd.DataFrame, index_label: str | None = None, language: Language = "en"
) -> dg.TableMetadataValue:
    """A typed Dagster table of a data frame (the index becomes a column when labelled),
    its column names in the language."""
    if index_label is not None:
        frame = frame.rename_axis(index_label).reset_index()
    names = {str(c): word(str(c), language) for c in frame.columns}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(names[str(c)], "int" if c in INTEGER_COLUMNS else "string")
            for c in frame.columns
        ]
    )
    records = [
        dg.TableRecord(
            {names[str(k)]: (int(v) if k in INTEGER_COLUMNS else str(v)) for k, v in row.items()}
        )
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema=schema)


@dg.asset(group_name="operations", kinds={"python", "sqlalchemy"})
def operations_overview(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, clock: ClockResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """Operation runs at a glance. First the attention list: per environment and operation
    type whose newest decision failed, was blocked or partially succeeded, or whose run is
    stuck, the outcome, the reason in words, the deciding run (linked), how long ago, and
    the next step. Then counts per environment, outcomes of the last 24 h by type, and the
    latest decisions.

    Refreshed every five minutes by ``operations_overview_schedule``.
    """
    now = clock.now()
    with app_db.opened() as app, app.sessions() as session:
        view = build_overview(session, now, app.language)
        language = app.language
    context.log.info(
        f"{view.open} open, {view.stale} stale, {view.decided_24h} decided in the last 24 h"
    )
    # The attention list first, one entry per environment and type: short Markdown, which
    # the UI shows inline (a wide table is cut off in the asset page's metadata column).
    metadata: dict[str, dg.MetadataValue] = {
        # Zero-padded: the UI lists metadata keys in sorted order.
        f"{word('attention', language)} {n:02}: {item.environment}": dg.MetadataValue.md(
            attention_text(item, now, language)
        )
        for n, item in enumerate(view.needs_attention, start=1)
    }
    if not view.needs_attention:
        metadata[word("attention", language)] = dg.MetadataValue.text(word("nothing", language))
    rest: dict[str, dg.MetadataValue] = {
        "attention_counts": table(view.attention, language=language),
        "outcomes_24h_by_type": table(view.by_type, index_label="type", language=language),
        "latest_decisions": table(view.recent, language=language),
        "runs_open": dg.MetadataValue.int(view.open),
        "runs_stale": dg.MetadataValue.int(view.stale),
        "decided_24h": dg.MetadataValue.int(view.decided_24h),
    }
    if view.latest_problem_dagster_run is not None:
        rest["latest_problem_run"] = dg.MetadataValue.dagster_run(view.latest_problem_dagster_run)
    # Keys in the language too: the UI shows them as the entries' names.
    metadata |= {word(key, language): value for key, value in rest.items()}
    return dg.MaterializeResult(metadata=metadata)


overview_job = dg.define_asset_job(
    "operations_overview_refresh",
    selection=[operations_overview],
    description="Refreshes the operations overview from the application database.",
)

# A schedule, not an automation condition: the overview reads the application database,
# whose changes Dagster cannot see, so no upstream event would ever trigger it; a short
# cron bounds how old the overview can be.
operations_overview_schedule = dg.ScheduleDefinition(
    name="operations_overview_schedule",
    job=overview_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refreshes operations_overview every five minutes.",
)
