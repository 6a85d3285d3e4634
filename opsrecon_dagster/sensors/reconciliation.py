"""The reconciliation sensors: a stale scan every 10 s, and an immediate look at tagged
Dagster runs that ended while their operation run was still open. Thin: each turns its
Dagster context into a call of the reconciliation service (``reconciliation/service.py``),
with the instance as its Dagster side (``instance/decisions.py``)."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import BaseModel, ConfigDict, ValidationError

from opsrecon_dagster.instance.decisions import InstancePort, jobs_of
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.service import (
    BATCH_SIZE,
    deliver,
    drain,
    operation_run_of,
    reconcile_batch,
)
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.guard import guarded_tick, sanitized_failure

# A tick runs batches until the backlog is empty or its budget is spent, well inside
# Dagster's 60 s limit for a sensor evaluation.
TICK_BUDGET_SECONDS = 20.0
# The daemon evaluates sensors in a loop every 5 s. The stale scan (silent workers, launches
# that never started) runs every other loop; the run-end sensors every loop.
STALE_SCAN_INTERVAL_SECONDS = 10
# No single statement of a tick may outlast Dagster's limit for a sensor evaluation.
STATEMENT_TIMEOUT_MS = 55_000
RUN_END_INTERVAL_SECONDS = 3


class TickCursor(BaseModel):
    """The reconciliation sensor's cursor: the last tick's figures, for the UI, and the
    thresholds the open rows' due times were computed with."""

    model_config = ConfigDict(extra="ignore")

    tick: str | None = None
    considered: int = 0
    decided: int = 0
    delivered: int = 0
    thresholds: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> "TickCursor":
        """A missing or unreadable cursor is an empty one."""
        try:
            return cls.model_validate_json(raw) if raw else cls()
        except ValidationError:
            return cls()


def pool_connections(instance: dg.DagsterInstance) -> None:
    """Reuse the instance's database connections for the rest of this evaluation.

    Dagster's PostgreSQL storage opens a new connection for every operation by default (an
    idle instance then holds none). A tick that ends hundreds of Dagster runs makes several
    writes per run, and would spend most of its time connecting (about 6 times slower,
    ``benchmarks/reconcile_backlog.py``). The sensor context disposes its instance, and the
    pool with it, when the evaluation ends. A no-op on SQLite storage.
    """
    instance.optimize_for_webserver(
        statement_timeout=STATEMENT_TIMEOUT_MS, pool_recycle=3600, max_overflow=4
    )


def restamp_on_new_thresholds(app_db: AppDatabaseResource, cursor: TickCursor) -> str:
    """Make every open row due now when the thresholds differ from those of the last tick
    (a configuration change, or the first tick): stored due times may then be too late.
    Returns the current thresholds' digest, for the cursor."""
    with app_db.opened() as app:
        digest = app.runs.rule.digest
        if cursor.thresholds != digest:
            app.runs.restamp_open()
    return digest


@dg.sensor(
    minimum_interval_seconds=STALE_SCAN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Finalizes stale operation runs from the proof their artifacts give.",
)
def reconciliation_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, clock: ClockResource
) -> dg.SensorResult:
    """Each tick decides stale open runs in batches, earliest due first, for up to
    ``TICK_BUDGET_SECONDS``.

    The backlog lives in the database (open runs by their stored due time), so a backlog
    larger than a tick drains over ticks; the cursor records the last tick's figures for
    the UI.
    """

    def tick() -> dg.SensorResult:
        pool_connections(context.instance)
        thresholds = restamp_on_new_thresholds(app_db, TickCursor.parse(context.cursor))
        with app_db.opened() as app:
            drained = drain(
                app,
                InstancePort(context.instance, jobs_of(context.repository_def)),
                now=clock.now(),
                budget_seconds=TICK_BUDGET_SECONDS,
                limit=BATCH_SIZE,
            )
        results = drained.results
        decided = sum(r.status is TransitionStatus.APPLIED for r in results)
        waiting = sum(r.verdict.outcome is None for r in results)
        cursor = TickCursor(
            tick=datetime.now(UTC).isoformat(),
            considered=len(results),
            decided=decided,
            delivered=drained.delivered,
            thresholds=thresholds,
        ).model_dump_json()
        if not results and not drained.delivered:
            return dg.SensorResult(cursor=cursor, skip_reason="no stale operation runs")
        left = "" if drained.finished else "; budget spent, the rest goes on next tick"
        summary = (
            f"decided {decided} of {len(results)} due operation runs"
            f"{_named([r.run_id for r in results if r.status is TransitionStatus.APPLIED])}, "
            f"no decision yet {waiting}, shown in Dagster {drained.delivered}{left}"
        )
        context.log.info(summary)
        # A tick without run requests is always "skipped" in Dagster; its reason is what
        # the tick history and the daemon log show, so it says what the tick did.
        return dg.SensorResult(cursor=cursor, skip_reason=summary)

    # A batch that fails commits no decision (one transaction); decisions whose events were
    # not written stay in the outbox, and the next batch (this tick's or the next) reports
    # them again.
    return guarded_tick(context, "reconciliation", tick)


# Operation run ids a tick's summary names before "and N more".
NAMED_RUNS = 10


def _named(run_ids: list[int]) -> str:
    """`` (runs 1, 2, 3 and 7 more)``: the first few ids of a tick's decisions."""
    if not run_ids:
        return ""
    more = f" and {len(run_ids) - NAMED_RUNS} more" if len(run_ids) > NAMED_RUNS else ""
    return f" (runs {', '.join(map(str, run_ids[:NAMED_RUNS]))}{more})"


def _run_end_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    name = f"reconcile_on_run_{status.value.lower()}"

    @dg.run_status_sensor(
        run_status=status,
        name=name,
        # Every run, including those executed in-process (the CLI, the demo), which carry
        # no code location; a run is matched to its operation run by tag, else by the
        # Dagster run id its row records (runs no operation run names are ignored).
        monitor_all_code_locations=True,
        # Below the daemon's 5 s loop, so every loop evaluates it (an interval of exactly 5 s
        # would be missed by a hair on every other loop, i.e. every 10 s).
        minimum_interval_seconds=RUN_END_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reconciles a tagged operation run at once when its Dagster run ends "
        f"with {status.value}.",
    )
    def _sensor(
        context: dg.RunStatusSensorContext, app_db: AppDatabaseResource, clock: ClockResource
    ) -> dg.SkipReason | None:
        tag = context.dagster_run.tags.get(RUN_TAG)
        if tag is not None and not tag.isdigit():
            return None
        # An error fails the tick visibly, with a sanitized message; the stale scan remains
        # the safety net for a run this sensor could not decide.
        try:
            with app_db.opened() as app:
                # Untagged (launched from the UI or GraphQL): its row, created by its first
                # step, names the Dagster run.
                found = int(tag) if tag else operation_run_of(app, context.dagster_run.run_id)
                if found is None:
                    return None
                tag = str(found)
                port = InstancePort(context.instance, jobs_of(context.repository_def))
                now = clock.now()
                results = reconcile_batch(app, port, now=now, run_ids=[found])
                deliver(app, port, now=now, run_ids=[found])
        except Exception as exc:
            raise sanitized_failure(f"reconciling operation run {tag}", exc) from None
        said = "; ".join(
            f"operation run {r.run_id}: {r.verdict.outcome or 'no decision'} "
            f"({r.verdict.reason_code})"
            for r in results
        )
        if said:
            context.log.info(said)
        # Shown in the tick history (a run-status sensor's tick is "skipped" otherwise).
        return dg.SkipReason(said or f"operation run {tag} is already final")

    return _sensor


RUN_END_SENSORS = [
    _run_end_sensor(s)
    for s in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
        dg.DagsterRunStatus.SUCCESS,
    )
]
