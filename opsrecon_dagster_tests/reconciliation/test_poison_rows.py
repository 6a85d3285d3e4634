"""Rows the reconciler cannot read never stop a tick: each is finalized on its own reason,
and the healthy rows of the same batch are decided from their proof (both databases)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import dagster as dg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import reconciliation_sensor
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC
LATER = timedelta(hours=3)
_unique = count()


def set_context_text(world: World, run_id: int, raw: str) -> None:
    """Store raw JSON text as the run's context, the way a foreign writer might (the JSON
    encoder could not even serialize some of these)."""
    cast = "CAST(:raw AS JSONB)" if world.app.engine.dialect.name == "postgresql" else ":raw"
    with world.app.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE operation_runs SET context = {cast} WHERE id = :id"),
            {"raw": raw, "id": run_id},
        )


def tick(world: World) -> dg.SensorResult:
    """One real evaluation of the reconciliation sensor, as of three hours from now."""
    result = reconciliation_sensor(
        dg.build_sensor_context(
            instance=world.instance,
            resources={
                "app_db": AppDatabaseResource(database_url=world.app.url.render_as_string(False)),
                "clock": ClockResource.at(datetime.now(UTC) + LATER),
            },
        )
    )
    assert isinstance(result, dg.SensorResult)
    # A tick whose body raised is turned into a skip naming the error: that must not happen.
    skip = result.skip_reason.skip_message if result.skip_reason else ""
    assert "failed (" not in (skip or ""), skip
    return result


def new_run(world: World, scope_env: str = "full", op_type: OperationType = INV) -> int:
    return world.start(
        op_type,
        world.scope(scope_env),
        scheduled_for=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=next(_unique)),
    )


POISON_CONTEXTS = {
    "string": json.dumps("not an object"),
    "list": json.dumps([1, 2, 3]),
    "number": "42",
    "null": "null",
    "deep": "[" * 3000 + "]" * 3000,
    "huge": json.dumps("x" * 1_000_000),
    "wrong_shape": json.dumps({"inputs": "everything"}),
}


def test_poison_rows_and_healthy_rows_are_all_terminal_in_one_tick(world: World) -> None:
    healthy = []
    for _ in range(3):
        run_id = new_run(world, "healthy")  # apart from the poison rows' partition
        world.running(run_id)
        world.work_then_die("inventory_items", run_id)
        healthy.append(run_id)
    poisoned = {}
    for name, raw in POISON_CONTEXTS.items():
        run_id = new_run(world)
        set_context_text(world, run_id, raw)
        poisoned[name] = run_id
    unknown = new_run(world)
    homeless = new_run(world)
    with world.app.engine.begin() as conn:
        conn.execute(update(OperationRun).where(OperationRun.id == unknown).values(type="x.y"))
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id == homeless)
            .values(managed_environment_id=None)
        )

    result = tick(world)

    decided = {run_id: world.decided(run_id) for run_id in [*healthy, *poisoned.values()]}
    assert {decided[r] for r in healthy} == {("succeeded", "inventory_all_types_covered")}
    assert {name: decided[r] for name, r in poisoned.items()} == dict.fromkeys(
        POISON_CONTEXTS, ("failed", "run_context_invalid")
    )
    assert world.decided(unknown) == ("failed", "unsupported_type_stale")
    assert world.decided(homeless) == ("failed", "run_scope_invalid")
    # Every decision is audited, and the healthy ones reach Dagster (written by the tick).
    for run_id in poisoned.values():
        assert [a.action for a in world.app.runs.audit_trail(run_id)][-1] == "run.reconciled"
    # The tick says what it did (Dagster shows a tick without run requests as skipped,
    # with this reason).
    assert result.skip_reason is not None
    assert (result.skip_reason.skip_message or "").startswith("decided 12 of 12 due operation")
    key = dg.AssetKey("inventory_items")
    records = [
        *world.instance.fetch_observations(key, limit=100).records,
        *world.instance.fetch_materializations(key, limit=100).records,
    ]
    events = [r.asset_observation or r.asset_materialization for r in records]
    reported = {e.metadata["operation_run_id"].value for e in events if e is not None}
    # The newest healthy run shows on its partition; the older ones, superseded by it, on
    # their own Dagster runs.
    assert healthy[-1] in reported
    for run_id in healthy[:-1]:
        dagster_run = world.instance.get_run_by_id(world.app.runs.get(run_id).dagster_run_id or "")
        assert dagster_run is not None
        assert dagster_run.tags["opsrecon/reason"] == "inventory_all_types_covered"


# ------------------------------------------------------------------ property: any shape
_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=16,
)
_context_text = st.one_of(
    _json.map(json.dumps),
    st.fixed_dictionaries({"inputs": _json}).map(json.dumps),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries({"policy_types": _json})}).map(
        json.dumps
    ),
    st.integers(20, 3000).map(lambda depth: "[" * depth + "]" * depth),
)
_types = st.sampled_from([t.value for t in OperationType] + ["legacy.thing", "", "x" * 64])
_scopes = st.sampled_from(["own", "none", "foreign"])


@dataclass(frozen=True)
class Row:
    context: str
    op_type: str
    scope: str


_rows = st.lists(st.builds(Row, _context_text, _types, _scopes), min_size=1, max_size=5)


def insert(world: World, rows: Sequence[Row]) -> list[int]:
    foreign = world.scope("elsewhere", workspace="globex")
    ids = []
    for row in rows:
        run_id = new_run(world)
        set_context_text(world, run_id, row.context)
        env = {"own": ..., "none": None, "foreign": foreign.environment_id}[row.scope]
        values: dict[str, object] = {"type": row.op_type}
        if env is not ...:
            values["managed_environment_id"] = env
        with world.app.engine.begin() as conn:
            conn.execute(update(OperationRun).where(OperationRun.id == run_id).values(**values))
        ids.append(run_id)
    return ids


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_rows)
def test_any_context_type_and_scope_ends_terminal_in_one_tick(world: World, rows) -> None:
    ids = insert(world, rows)
    tick(world)
    open_rows = [r for r in ids if world.app.runs.get(r).status != "completed"]
    assert open_rows == []
