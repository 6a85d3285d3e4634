"""Rows the reconciler cannot read never stop a tick: each is finalized on its own reason,
and the healthy rows of the same batch are decided from their proof (both databases).
Every stored field counts, not only the context: a foreign writer may put anything the
database accepts into any column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import RUN_END_SENSORS, reconciliation_sensor
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


# ------------------------------------------------------------------ every column
# A value each column of ``operation_runs`` can hold that no product code writes, as SQL
# literals for SQLite and for PostgreSQL (None: that database cannot store such a value in
# the column, its type or constraints refuse it).
GARBAGE: dict[str, tuple[str, str | None, str | None]] = {
    "dagster_run_id": ("dagster_run_id", "'" + "Z" * 64 + "'", "'" + "Z" * 64 + "'"),
    "dagster_run_id_blob": ("dagster_run_id", "X'00FF10'", None),
    "type_empty": ("type", "''", "''"),
    "type_blob": ("type", "X'00FF'", None),
    "workspace_id": ("workspace_id", "'acme'", None),
    "managed_environment_id": ("managed_environment_id", "'contoso'", None),
    "input_hash": ("input_hash", "'not a hash!'", "'not a hash!'"),
    "identity_key": ("identity_key", "1.5", "'NOT-A-KEY'"),
    "once_key": ("once_key", "X'01'", "'once key'"),
    "outcome": ("outcome", "X'02'", None),
    "created_at": ("created_at", "'yesterday'", "'infinity'"),
    "started_at": ("started_at", "'2026-13-45 99:99:99'", "'4000-01-01 BC'"),
    "last_heartbeat_at": ("last_heartbeat_at", "X'FFFF'", "'-infinity'"),
    # Also the due time: the tick first makes every open row due at its last progress.
    "last_progress_at": ("last_progress_at", "'never'", "'infinity'"),
    "completed_at": ("completed_at", "'not yet'", "'infinity'"),
}


def literal_of(world: World, name: str) -> str | None:
    _column, sqlite, postgresql = GARBAGE[name]
    return postgresql if world.app.engine.dialect.name == "postgresql" else sqlite


def set_raw(world: World, run_id: int, column: str, literal: str) -> None:
    """Store a raw SQL literal in a column, as a foreign writer might (on SQLite without
    foreign keys, so a scope id can be text)."""
    with world.app.engine.begin() as conn:
        if world.app.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.execute(
            text(f"UPDATE operation_runs SET {column} = {literal} WHERE id = :id"), {"id": run_id}
        )


def stored_rows(
    world: World, ids: Sequence[int]
) -> dict[int, tuple[str, str | None, str | None, str]]:
    """Status, outcome, reason and context text of rows, read without the ORM (which would
    fail on the garbage still stored in their other columns)."""
    with world.app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, status, outcome, reason_code, CAST(context AS TEXT) "
                "FROM operation_runs WHERE id IN (" + ", ".join(map(str, ids)) + ")"
            )
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def audit_text(world: World, run_id: int) -> list[str]:
    with world.app.engine.connect() as conn:
        return [
            f"{action} {details}"
            for action, details in conn.execute(
                text(
                    "SELECT action, CAST(details AS TEXT) FROM audit_log "
                    "WHERE operation_run_id = :id ORDER BY id"
                ),
                {"id": run_id},
            )
        ]


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_a_garbage_field_among_healthy_rows_is_finalized_alone_in_one_tick(
    world: World, garbage: str
) -> None:
    column = GARBAGE[garbage][0]
    literal = literal_of(world, garbage)
    if literal is None:
        pytest.skip(f"{world.app.engine.dialect.name} refuses this value in {column}")
    healthy = []
    for _ in range(2):
        run_id = new_run(world, "healthy")
        world.running(run_id)
        world.work_then_die("inventory_items", run_id)
        healthy.append(run_id)
    # A row with a Dagster run that ended, so it would be looked up in Dagster if readable.
    bad = new_run(world)
    world.running(bad, "FAILURE")
    set_raw(world, bad, column, literal)

    result = tick(world)

    rows = stored_rows(world, [*healthy, bad])
    assert {rows[r][:3] for r in healthy} == {
        ("completed", "succeeded", "inventory_all_types_covered")
    }
    status, outcome, reason, context = rows[bad]
    assert (status, outcome, reason) == ("completed", "failed", "run_field_invalid")
    # The evidence names the field, its kind and length; never the value.
    counts = json.loads(context)["decision"]["evidence"]["counts"]
    # (A last progress time is the due time too, once the tick made every open row due.)
    also = {"stale_at"} if column == "last_progress_at" else set()
    assert {key.split(".")[1] for key in counts} == {column, *also}
    raw = literal.strip("'")
    trail = audit_text(world, bad)
    assert [line.split()[0] for line in trail][-1] == "run.reconciled"
    if len(raw) > 3 and not raw.startswith("X"):
        assert raw not in context
        assert not any(raw in line for line in trail)
    # Told to Dagster in the same tick: nothing is left in the outbox.
    with world.app.sessions() as session:
        assert outbox.count(session) == 0
    assert (result.skip_reason.skip_message or "").startswith("decided 3 of 3")  # type: ignore[union-attr]


def test_a_garbage_due_time_is_read_and_decided(world: World) -> None:
    """A due time no clock reaches (infinite, or text that sorts after every date) would
    keep a row out of every batch: the reconciler reads such rows too."""
    run_id = new_run(world)
    set_raw(world, run_id, "stale_at", literal_of(world, "last_progress_at") or "")
    [result] = world.reconcile()
    assert (result.run_id, result.verdict.reason_code) == (run_id, "run_field_invalid")
    assert stored_rows(world, [run_id])[run_id][:3] == ("completed", "failed", "run_field_invalid")


def test_the_run_end_sensor_finalizes_a_row_with_a_garbage_field(world: World) -> None:
    """The run-end sensor reads its row as the stale scan does: a garbage field finalizes
    it (``run_field_invalid``), the sensor does not fail."""
    run_id = new_run(world)
    failed = world.running(run_id, "FAILURE")
    set_raw(world, run_id, "created_at", literal_of(world, "created_at") or "")
    stored = world.instance.get_run_by_id(failed)
    assert stored is not None
    [sensor] = [s for s in RUN_END_SENSORS if s.name == "reconcile_on_run_failure"]
    said = sensor(
        dg.build_run_status_sensor_context(
            sensor_name="reconcile_on_run_failure",
            dagster_instance=world.instance,
            dagster_run=stored,
            dagster_event=world.instance.all_logs(failed)[-1].dagster_event,  # type: ignore[arg-type]
            resources={
                "app_db": AppDatabaseResource(database_url=world.app.url.render_as_string(False)),
                "clock": ClockResource.at(datetime.now(UTC)),
            },
        )
    )
    assert isinstance(said, dg.SkipReason)
    assert said.skip_message == f"operation run {run_id}: failed (run_field_invalid)"
    with world.app.sessions() as session:
        assert outbox.count(session) == 0


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
# Any text a column of 64 characters holds (PostgreSQL refuses NUL characters in text).
_column_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=64
)
# One more stored field, or none: a column and what a foreign writer put there, as text or
# as one of the raw values of ``GARBAGE`` (those a dialect cannot store are left out).
_fields = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["dagster_run_id", "input_hash", "type", "reason_code"]),
        _column_text.map(lambda raw: ("text", raw)),
    ),
    # (Not the keys with unique indexes: examples share one database.)
    st.sampled_from(sorted(set(GARBAGE) - {"once_key", "identity_key"})).map(
        lambda name: (name, ("raw", name))
    ),
)


@dataclass(frozen=True)
class Row:
    context: str
    op_type: str
    scope: str
    field: tuple[str, tuple[str, str]] | None = None


def _attributable(row: Row) -> bool:
    """A row with no environment and an unreadable workspace belongs to no scope: it stays
    open, logged by id, and is looked at again (docs/decisions.md, "Unreadable rows")."""
    if row.scope != "none" or row.field is None:
        return True
    name, (how, value) = row.field
    column = name if how == "text" else GARBAGE[value][0]
    return column != "workspace_id"


_rows = st.lists(
    st.builds(Row, _context_text, _types, _scopes, _fields).filter(_attributable),
    min_size=1,
    max_size=5,
)


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
        if row.field is not None:
            column, (how, value) = row.field
            if how == "text":
                with world.app.engine.begin() as conn:
                    conn.execute(
                        text(f"UPDATE operation_runs SET {column} = :v WHERE id = :id"),
                        {"v": value, "id": run_id},
                    )
            elif literal_of(world, value) is not None:
                set_raw(world, run_id, GARBAGE[value][0], literal_of(world, value) or "")
        ids.append(run_id)
    return ids


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_rows)
def test_any_context_type_scope_and_field_ends_terminal_in_one_tick(
    world: World, rows: list[Row]
) -> None:
    ids = insert(world, rows)
    tick(world)
    open_rows = [
        r for r, (status, *_rest) in stored_rows(world, ids).items() if status != "completed"
    ]
    assert open_rows == []


def test_a_decision_that_does_not_validate_fails_only_its_row(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: should a value pass the reading checks (here: the Dagster run id's
    check is switched off) and then fail the decision's own validation, only that row is
    recorded, as ``run_unreadable`` with its scope ids; the batch's writes and the tick go
    on, and the value is stored nowhere."""
    from opsrecon_dagster.reconciliation import stored

    monkeypatch.setitem(stored.CHECKS, "dagster_run_id", (lambda value: value, None))
    healthy = new_run(world, "healthy")
    world.running(healthy)
    world.work_then_die("inventory_items", healthy)
    bad = new_run(world)
    set_raw(world, bad, "dagster_run_id", "'" + "Z" * 64 + "'")

    tick(world)

    rows = stored_rows(world, [healthy, bad])
    assert rows[healthy][:3] == ("completed", "succeeded", "inventory_all_types_covered")
    status, outcome, reason, context = rows[bad]
    assert (status, outcome, reason) == ("completed", "failed", "run_unreadable")
    evidence = json.loads(context)["decision"]["evidence"]
    scope = world.scope("full")
    assert (evidence["workspace_id"], evidence["managed_environment_id"]) == (
        scope.workspace_id,
        scope.environment_id,
    )
    assert evidence.get("dagster_run_id") is None and evidence["counts"] == {}
    assert "Z" * 64 not in context
    assert not any("Z" * 64 in line for line in audit_text(world, bad))
    with world.app.sessions() as session:
        assert outbox.count(session) == 0
