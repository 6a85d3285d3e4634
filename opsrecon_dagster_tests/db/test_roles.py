"""Least-privilege database roles on a real PostgreSQL server (migration ``0013_roles``, and
``0014_access_grants`` for the entitlement tables).

The database is owned and migrated by a login that is no superuser, as deployed; each role
gets a login user that is a member of it and connects through the product's own code paths:
job steps (materializing the assets) as the worker, the sensors and ``opsrecon reconcile`` as
the reconciler, the read-only commands and the overview as the reader, the operators'
commands as the operator. Each is then refused the others' writes by the server itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import make_engine
from opsrecon_dagster.db.models import (
    AccessEvent,
    AccessGrant,
    AlertDelivery,
    AuditLog,
    BackupItem,
    BackupSchedule,
    BackupSet,
    Base,
    EnvironmentReview,
    ManagedEnvironment,
    OperationRun,
    ReviewEvent,
)
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.resources import (
    AlertWebhookResource,
    AppDatabaseResource,
    ClockResource,
    ProviderResource,
)
from opsrecon_dagster.sensors.alerts import decision_alerts_sensor
from opsrecon_dagster.sensors.reconciliation import reconciliation_sensor
from opsrecon_dagster.sensors.scheduling import backup_schedules_sensor
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.alerts.conftest import Receiver, receiver  # noqa: F401 (fixture)
from opsrecon_dagster_tests.cli.test_cli import invoke
from opsrecon_dagster_tests.conftest import (
    Scope,
    add_profile,
    add_schedule,
    decide,
    make_scope,
    truncate_all,
)
from opsrecon_dagster_tests.pg_cluster import find_pg_bin

pytestmark = pytest.mark.postgres

ROLES = ("reader", "worker", "reconciler", "operator")
MIGRATION = (
    Path(migrate.MIGRATIONS_DIR) / "versions" / "0013_database_roles.py"
)  # its role statement, raced below
LOGINS_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "logins.sql"
PASSWORD = "role-test-pw"  # the logins' password (a trust-auth cluster ignores it)

# -- what each role may do, stated here on its own (the migration's grants must agree) --------

TABLES = {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
ARTIFACTS = {
    "inventory_items",
    "inventory_coverage",
    "baseline_snapshots",
    "baseline_snapshot_items",
    "baseline_gaps",
    "backup_sets",
    "backup_items",
    "environment_reviews",
    "environment_review_events",
}
CONFIGURATION = {"workspaces", "baseline_profiles", "backup_schedules"}
RUN_BY_JOB = {
    *("status", "dagster_run_id", "started_at", "last_heartbeat_at", "last_progress_at"),
    *("stale_at", "context", "outcome", "reason_code", "completed_at"),
}
RUN_BY_DECISION = {
    *("status", "outcome", "reason_code", "context", "completed_at", "stale_at", "dagster_run_id"),
}
READINESS = {"readiness", "readiness_changed_at"}
# Workspace entitlements (0014): every role reads the grants; the roles whose commands can be
# refused append the refusal rows; only the operator (and the owner) changes the grants.
ACCESS_EVENTS_APPENDED: tuple[set[str], dict[str, set[str]]] = ({"SELECT", "INSERT"}, {})
ACCESS_GRANTS_MANAGED: tuple[set[str], dict[str, set[str]]] = (
    {"SELECT", "INSERT", "DELETE"},
    {"UPDATE": {"role", "granted_by", "granted_at"}},
)
REVIEW_STATUS = {"status", "updated_at", "composed_at", "superseded_by_id"}
DECISIONS: dict[str, tuple[set[str], dict[str, set[str]]]] = {
    # table -> (table privileges, {"UPDATE": columns})
    "operation_runs": ({"SELECT", "INSERT"}, {"UPDATE": RUN_BY_DECISION}),
    "audit_log": ({"SELECT", "INSERT"}, {}),
    "decision_outbox": (
        {"SELECT", "INSERT", "DELETE"},
        {"UPDATE": {"claim", "due_at", "attempts"}},
    ),
    "alert_deliveries": (
        {"SELECT", "INSERT", "DELETE"},
        {"UPDATE": {"outcome", "reason_code", "delivered_at"}},
    ),
}
EXPECTED: dict[str, dict[str, tuple[set[str], dict[str, set[str]]]]] = {
    "reader": {
        t: ({"SELECT"}, {})
        for t in (
            "alembic_version",
            "workspaces",
            "managed_environments",
            "operation_runs",
            "audit_log",
            "environment_reviews",
            "environment_review_events",
            "access_grants",
            "environment_events",
        )
    }
    | {"access_events": ACCESS_EVENTS_APPENDED},
    "worker": {
        **{t: ({"SELECT"}, {}) for t in TABLES - {"alert_deliveries"}},
        **{t: ({"SELECT", "INSERT"}, {}) for t in ARTIFACTS},
        "operation_runs": ({"SELECT", "INSERT"}, {"UPDATE": RUN_BY_JOB}),
        "audit_log": ({"SELECT", "INSERT"}, {}),
        "decision_outbox": ({"SELECT", "INSERT", "DELETE"}, {}),
        "managed_environments": ({"SELECT"}, {"UPDATE": READINESS}),
        "inventory_items": (
            {"SELECT", "INSERT"},
            {
                "UPDATE": {
                    "display_name",
                    "content_hash",
                    "last_seen_at",
                    "last_seen_operation_run_id",
                }
            },
        ),
        "backup_sets": (
            {"SELECT", "INSERT"},
            {"UPDATE": {"pruned_at", "pruned_by_operation_run_id"}},
        ),
        "backup_items": ({"SELECT", "INSERT", "DELETE"}, {}),
        "environment_reviews": ({"SELECT", "INSERT"}, {"UPDATE": REVIEW_STATUS}),
    },
    "reconciler": {
        **{t: ({"SELECT"}, {}) for t in TABLES},
        **DECISIONS,
        "access_events": ACCESS_EVENTS_APPENDED,
    },
    "operator": {
        **{t: ({"SELECT"}, {}) for t in TABLES},
        **DECISIONS,
        "managed_environments": ({"SELECT"}, {"UPDATE": READINESS}),
        "environment_reviews": ({"SELECT"}, {"UPDATE": REVIEW_STATUS}),
        "environment_review_events": ({"SELECT", "INSERT"}, {}),
        "access_grants": ACCESS_GRANTS_MANAGED,
        "access_events": ACCESS_EVENTS_APPENDED,
        # Operators' readiness changes (0015), with who made them.
        "environment_events": ({"SELECT", "INSERT"}, {}),
    },
}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


# -- the database, its owner and one login per role -----------------------------------------


@dataclass(frozen=True)
class Logins:
    """URLs of the owner and of one login user per role, on one migrated database."""

    owner: str
    urls: dict[str, str]
    admin: str  # the server's superuser, on the same database

    def app(self, role: str) -> AppContext:
        return AppContext(Settings(database_url=self.urls[role] if role != "owner" else self.owner))


def _login_url(server: str, database: str, user: str) -> str:
    url = make_url(server).set(database=database, username=user, password=PASSWORD)
    return url.render_as_string(hide_password=False)


def _admin(server: str) -> Engine:
    return create_engine(server, isolation_level="AUTOCOMMIT")


@contextmanager
def _owned_database(
    server: str, database: str, owner: str, *, may_create_roles: bool, logins: Sequence[str] = ()
) -> Iterator[Engine]:
    """A new ``database`` owned by a new login ``owner`` that is no superuser
    (``may_create_roles``: with CREATEROLE). Yields the server's superuser engine; afterwards
    drops the database, then the ``logins`` the caller made and the owner."""
    admin = _admin(server)
    createrole = " CREATEROLE" if may_create_roles else ""
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN{createrole} PASSWORD '{PASSWORD}'"))
        conn.execute(text(f'CREATE DATABASE "{database}" OWNER {owner}'))
    try:
        yield admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for login in [*logins, owner]:
                conn.execute(text(f"DROP ROLE IF EXISTS {login}"))
        admin.dispose()


@pytest.fixture(scope="module")
def logins(postgres_server_url: str) -> Iterator[Logins]:
    """A database owned by a login that is no superuser (but may create roles, in case this
    is the cluster's first migration), migrated by it; one login user per role."""
    tag = uuid.uuid4().hex[:8]
    database, owner = f"opsrecon_roles_{tag}", f"t_owner_{tag}"
    users = {role: f"t_{role}_{tag}" for role in ROLES}
    with _owned_database(
        postgres_server_url, database, owner, may_create_roles=True, logins=list(users.values())
    ) as admin:
        owner_url = _login_url(postgres_server_url, database, owner)
        engine = make_engine(owner_url)
        migrate.upgrade(engine)
        engine.dispose()
        with admin.connect() as conn:
            for role, user in users.items():
                conn.execute(
                    text(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}' IN ROLE opsrecon_{role}")
                )
        yield Logins(
            owner=owner_url,
            urls={r: _login_url(postgres_server_url, database, u) for r, u in users.items()},
            admin=make_url(postgres_server_url).set(database=database).render_as_string(False),
        )


@dataclass
class Apps:
    """An application context per login on the emptied database."""

    owner: AppContext
    reader: AppContext
    worker: AppContext
    reconciler: AppContext
    operator: AppContext
    logins: Logins

    def url(self, role: str) -> str:
        return self.logins.urls[role]


@pytest.fixture
def apps(logins: Logins) -> Iterator[Apps]:
    contexts = {role: logins.app(role) for role in ("owner", *ROLES)}
    truncate_all(contexts["owner"])
    try:
        yield Apps(**contexts, logins=logins)
    finally:
        for context in contexts.values():
            context.dispose()


def refused(app: AppContext, statement: str) -> bool:
    """Whether the server refuses the statement for lack of privilege (``42501``); any other
    error is one the test did not mean to provoke, and is raised."""
    try:
        with app.engine.begin() as conn:
            conn.execute(text(statement))
    except ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) != "42501":
            raise
        return True
    return False


def writes_of(table: str, column: str) -> list[str]:
    """Every kind of write to ``table`` (none touches a row: privileges are checked first)."""
    return [
        f"INSERT INTO {table} DEFAULT VALUES",
        f"UPDATE {table} SET {column} = {column} WHERE false",
        f"DELETE FROM {table} WHERE false",
        f"TRUNCATE {table}",
    ]


def _has_id(table: str) -> bool:
    return table in Base.metadata.tables and "id" in Base.metadata.tables[table].columns


def first_column(table: str) -> str:
    if table == "alembic_version":
        return "version_num"
    return next(iter(Base.metadata.tables[table].columns)).name


# -- the grants as the server reports them ---------------------------------------------------


def test_the_roles_are_nologin_groups_with_exactly_their_privileges(logins: Logins) -> None:
    assert {t for grants in EXPECTED.values() for t in grants} <= TABLES
    engine = create_engine(logins.admin)
    found: dict[str, dict[str, tuple[set[str], dict[str, set[str]]]]] = {}
    with engine.connect() as conn:
        can_login: dict[str, bool] = dict(
            conn.execute(
                text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(:names)"),
                {"names": [f"opsrecon_{r}" for r in ROLES]},
            ).all()
        )
        assert can_login == {f"opsrecon_{r}": False for r in ROLES}
        for role in ROLES:
            found[role] = {}
            for table in sorted(TABLES):
                held = {
                    p
                    for p in TABLE_PRIVILEGES
                    if conn.scalar(
                        text("SELECT has_table_privilege(:r, :t, :p)"),
                        {"r": f"opsrecon_{role}", "t": table, "p": p},
                    )
                }
                columns = conn.scalars(
                    text(
                        "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
                        "AND attnum > 0 AND NOT attisdropped "
                        "AND has_column_privilege(:r, attrelid, attnum, 'UPDATE')"
                    ),
                    {"r": f"opsrecon_{role}", "t": table},
                ).all()
                if held or columns:
                    found[role][table] = (held, {"UPDATE": set(columns)} if columns else {})
                if not _has_id(table):
                    continue
                sequence = conn.scalar(
                    text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
                )
                if sequence is not None:
                    usage = conn.scalar(
                        text("SELECT has_sequence_privilege(:r, :s, 'USAGE')"),
                        {"r": f"opsrecon_{role}", "s": sequence},
                    )
                    # A sequence is usable exactly where rows are inserted.
                    assert usage == ("INSERT" in held), (role, table)
    engine.dispose()
    assert found == EXPECTED


# -- the worker: job steps ------------------------------------------------------------------

BACKUP_ASSET = ARTIFACT_ASSETS[2]
SUBJECTS = [{"policy_type": "deviceConfigurations", "display_name": None}]


def _materialize(
    apps: Apps, instance: dg.DagsterInstance, asset: Any, scope: Scope, fixture: Path
) -> dg.ExecuteInJobResult:
    """One job step as deployed: the asset, its resources on the worker's login."""
    name = ENVIRONMENTS.name or ""
    if not instance.has_dynamic_partition(name, scope.partition_key):
        instance.add_dynamic_partitions(name, [scope.partition_key])
    return dg.materialize(
        [asset],
        partition_key=scope.partition_key,
        instance=instance,
        resources={
            "app_db": AppDatabaseResource(database_url=apps.url("worker")),
            "provider": ProviderResource(fixture_path=str(fixture)),
        },
        raise_on_error=False,
    )


def _decisions(app: AppContext) -> list[tuple[str, str | None, str | None]]:
    with app.sessions() as s:
        rows = s.execute(
            select(OperationRun.type, OperationRun.outcome, OperationRun.reason_code).order_by(
                OperationRun.id
            )
        )
        return [(t, o, r) for t, o, r in rows]


def test_the_worker_login_runs_every_job_step(
    apps: Apps, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    fixture = tmp_path / "tenants.json"
    fixture.write_text(
        json.dumps({"environments": {"acme.noconsent": {"faults": {"consent_missing": True}}}})
    )
    owner = apps.owner
    scope = make_scope(owner, "acme", "contoso")
    noconsent = make_scope(owner, "acme", "noconsent")
    add_profile(owner, scope, SUBJECTS)
    schedule_id = add_schedule(owner, scope)
    with owner.sessions.begin() as s:
        s.execute(
            update(BackupSchedule).where(BackupSchedule.id == schedule_id).values(retention_count=1)
        )
    inventory, baseline, backup, review = ARTIFACT_ASSETS
    # Launched without an operation run tag, as from the UI: each step creates its own row.
    for asset in (inventory, baseline, backup, backup, review):
        assert _materialize(apps, instance, asset, scope, fixture).success
    refused_by_provider = _materialize(apps, instance, inventory, noconsent, fixture)
    assert not refused_by_provider.success  # blocked: the step fails, as designed
    assert _decisions(owner) == [
        ("inventory.sync", "succeeded", "inventory_all_types_covered"),
        ("baseline.capture", "succeeded", "baseline_snapshot_complete"),
        ("backup.schedule.execute", "succeeded", "backup_all_items_captured"),
        ("backup.retention.prune", "succeeded", "retention_enforced"),
        ("backup.schedule.execute", "succeeded", "backup_all_items_captured"),
        ("backup.retention.prune", "succeeded", "retention_enforced"),
        ("environment.review.compose", "succeeded", "review_composed"),
        ("inventory.sync", "blocked", "inventory_access_missing"),
    ]
    with owner.sessions() as s:
        sets = s.scalars(select(BackupSet).order_by(BackupSet.id)).all()
        # Retention pruned the first set (its items deleted, the set stamped) by the worker.
        assert [x.pruned_at is not None for x in sets] == [True, False]
        items = s.scalar(
            select(func.count())
            .select_from(BackupItem)
            .where(BackupItem.backup_set_id == sets[0].id)
        )
        assert items == 0
        # What the provider answered set the environment's readiness, audited on the run.
        env = s.get(ManagedEnvironment, noconsent.environment_id)
        assert env is not None and env.readiness == "consent_missing"
        actions = s.scalars(select(AuditLog.action)).all()
        assert "environment.readiness_changed" in actions
        # Every step reported its own decision and acknowledged its outbox entry.
        assert outbox.count(s) == 0


def test_the_worker_login_is_refused_what_is_not_a_job_steps(apps: Apps) -> None:
    worker = apps.worker
    for statement in [
        *writes_of("alert_deliveries", "outcome"),  # the alert ledger is the sensors'
        "UPDATE decision_outbox SET claim = claim WHERE false",  # claims are deliverers'
        "UPDATE audit_log SET actor = actor WHERE false",  # the audit trail is append-only
        "DELETE FROM audit_log WHERE false",
        "DELETE FROM operation_runs WHERE false",
        "UPDATE operation_runs SET workspace_id = workspace_id WHERE false",
        "UPDATE operation_runs SET type = type WHERE false",
        "UPDATE managed_environments SET partition_key = partition_key WHERE false",
        "UPDATE backup_items SET status = status WHERE false",  # written once, then kept
        "UPDATE inventory_coverage SET status = status WHERE false",
        *(w for t in sorted(CONFIGURATION) for w in writes_of(t, first_column(t))),
        "TRUNCATE inventory_items",
    ]:
        assert refused(worker, statement), statement


# -- the reconciler: the code server's sensors ----------------------------------------------


def test_the_reconciler_login_runs_the_sensors(
    apps: Apps,
    instance: dg.DagsterInstance,
    receiver: Receiver,  # noqa: F811
) -> None:
    owner, reconciler = apps.owner, apps.reconciler
    scope = make_scope(owner, "acme", "contoso")
    add_schedule(owner, scope, cron="* * * * *")
    # Two runs whose workers died after starting (no artifact, no heartbeat since).
    dead = []
    for hour in range(2):
        run = owner.runs.start(
            OperationType.INVENTORY_SYNC,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(scheduled_for=datetime(2026, 1, 1, hour, tzinfo=UTC)),
        ).run
        owner.runs.mark_running(run.id, None)
        dead.append(run.id)
    url = apps.url("reconciler")
    later = datetime.now(UTC) + timedelta(hours=3)
    alerts = AlertWebhookResource(url=receiver.url)

    def alert_tick(cursor: str | None) -> dg.SensorResult:
        result = decision_alerts_sensor(
            dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={
                    "app_db": AppDatabaseResource(database_url=url),
                    "alerts": alerts,
                    "clock": ClockResource(),  # the decisions' own time
                },
            )
        )
        assert isinstance(result, dg.SensorResult)
        return result

    begun = alert_tick(None)
    # The reconciliation sensor: restamps due times (first tick), decides, delivers.
    ticked = reconciliation_sensor(
        dg.build_sensor_context(
            instance=instance,
            resources={
                "app_db": AppDatabaseResource(database_url=url),
                "clock": ClockResource.at(later),
            },
        )
    )
    assert isinstance(ticked, dg.SensorResult)
    with owner.sessions() as s:
        decided = s.execute(
            select(OperationRun.id, OperationRun.outcome, OperationRun.reason_code).where(
                OperationRun.id.in_(dead)
            )
        ).all()
        assert sorted(decided) == [(i, "failed", "stale_without_proof") for i in dead]
        assert outbox.count(s) == 0  # shown in Dagster, acknowledged
    # The alert sensor posts them and records them in its ledger (and prunes it).
    alert_tick(begun.cursor)
    assert sorted(receiver.accepted_run_ids()) == dead
    with owner.sessions() as s:
        assert sorted(s.scalars(select(AlertDelivery.operation_run_id))) == dead
    # The backup schedule sensor queues a due window's run with its audit row.
    cursor = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    result = backup_schedules_sensor(
        dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"app_db": AppDatabaseResource(database_url=url)},
        )
    )
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests
    with owner.sessions() as s:
        assert s.scalar(
            select(func.count())
            .select_from(OperationRun)
            .where(OperationRun.type == OperationType.BACKUP_SCHEDULE_EXECUTE.value)
        )
    assert reconciler.runs.restamp_open() >= 1  # the open backup row


def test_the_reconciler_login_never_writes_an_artifact_or_configuration_table(
    apps: Apps,
) -> None:
    reconciler = apps.reconciler
    assert refused(reconciler, "UPDATE backup_items SET status = status WHERE false")
    for table in sorted(ARTIFACTS | CONFIGURATION):
        for statement in writes_of(table, first_column(table)):
            assert refused(reconciler, statement), statement
    for statement in [
        "UPDATE managed_environments SET readiness = readiness WHERE false",
        "UPDATE operation_runs SET workspace_id = workspace_id WHERE false",
        "DELETE FROM operation_runs WHERE false",
        "UPDATE audit_log SET outcome = outcome WHERE false",
        "DELETE FROM audit_log WHERE false",
    ]:
        assert refused(reconciler, statement), statement


# -- the reader: the read-only surfaces -------------------------------------------------------


def _history(apps: Apps) -> tuple[Scope, list[int], int]:
    """Two decided runs and a ready review with its event, written by the owner."""
    owner = apps.owner
    scope = make_scope(owner, "acme", "contoso")
    run_ids = []
    for n, outcome in enumerate((RunOutcome.SUCCEEDED, RunOutcome.FAILED)):
        run = owner.runs.start(
            OperationType.INVENTORY_SYNC,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(policy_types=[f"t{n}"]),
        ).run
        owner.runs.mark_running(run.id, None)
        decide(owner, run.id, outcome, f"reason_{outcome.value}")
        run_ids.append(run.id)
    now = datetime.now(UTC)
    with owner.sessions.begin() as s:
        review = EnvironmentReview(
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            fingerprint="f" * 64,
            status="ready",
            operation_run_id=run_ids[0],
            summary={},
            composed_at=now,
        )
        s.add(review)
        s.flush()
        s.add(
            ReviewEvent(
                review_id=review.id,
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                action="composed",
                actor="job",
                to_status="ready",
                operation_run_id=run_ids[0],
            )
        )
        review_id = review.id
    return scope, run_ids, review_id


def test_the_reader_login_reads_every_read_only_surface(apps: Apps) -> None:
    _scope, run_ids, review_id = _history(apps)
    url = apps.url("reader")
    code, out, err = invoke(url, "runs", "list", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == run_ids[::-1]
    for verb in ("show", "explain"):
        code, out, err = invoke(url, "runs", verb, str(run_ids[1]), "--json")
        assert code == 0, err
        detail = json.loads(out)
        assert detail["decision"]["reason_code"] == "reason_failed"
        assert [a["action"] for a in detail["audit"]][-1] == "run.completed"
    code, out, err = invoke(url, "reviews", "list", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [review_id]
    code, out, err = invoke(url, "reviews", "show", str(review_id), "--json")
    assert code == 0, err
    with apps.reader.sessions() as session:
        overview = build_overview(session, datetime.now(UTC))
    assert (overview.decided_24h, len(overview.recent)) == (2, 2)
    assert overview.needs_attention[0].outcome == RunOutcome.FAILED.value


def test_the_reader_login_writes_nothing(apps: Apps) -> None:
    scope, _run_ids, review_id = _history(apps)
    reader = apps.reader
    for table in sorted(TABLES):
        for statement in writes_of(table, first_column(table)):
            if statement == "INSERT INTO access_events DEFAULT VALUES":
                continue  # its one write: a refused read's row (the test below)
            assert refused(reader, statement), statement
    assert refused(reader, "CREATE TABLE scratch (id int)")
    # The writing commands fail on it, and leave nothing behind.
    url = apps.url("reader")
    before = _decisions(apps.owner)
    code, _, _ = invoke(url, "operations", "start", "inventory.sync", "--environment",
                        scope.partition_key, "--no-launch")  # fmt: skip
    assert code != 0
    code, _, _ = invoke(url, "reviews", "publish", str(review_id))
    assert code != 0
    assert _decisions(apps.owner) == before


def test_with_entitlements_on_the_reader_login_records_its_refusals_and_grants_nothing(
    apps: Apps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operators' login grants and revokes; the viewers' login reads within the grants,
    and a read outside them is refused with its ``access.refused`` row written by that login."""
    scope, run_ids, _review_id = _history(apps)
    other = make_scope(apps.owner, "globex", "initech")
    other_run = apps.owner.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=other.workspace_id,
        environment_id=other.environment_id,
    ).run.id
    operators, viewers = apps.url("operator"), apps.url("reader")
    monkeypatch.setenv("OPSRECON_ACTOR", "alice")
    for grantee, role in (("alice", "operator"), ("bob", "viewer")):
        code, _, err = invoke(operators, "access", "grant", grantee, "acme", "--role", role)
        assert code == 0, err
    monkeypatch.setenv("OPSRECON_ACTOR", "bob")
    code, out, err = invoke(viewers, "runs", "list", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == run_ids[::-1]
    code, _, err = invoke(viewers, "runs", "show", str(other_run))
    assert code == 2 and err.startswith("error: access refused: bob needs the viewer role")
    with apps.owner.sessions() as s:
        refusals = s.scalars(select(AccessEvent).where(AccessEvent.action == "access.refused"))
        assert [(e.acted_by, e.workspace_id) for e in refusals] == [("bob", other.workspace_id)]
    # The viewers' login may not change the grants, whatever name it declares.
    monkeypatch.setenv("OPSRECON_ACTOR", "alice")
    code, _, err = invoke(viewers, "access", "grant", "bob", "acme", "--role", "operator")
    assert code == 2 and err.count("\n") == 1, err
    code, _, err = invoke(operators, "access", "revoke", "bob", "acme")
    assert code == 0, err
    with apps.owner.sessions() as s:
        held = s.scalars(
            select(AccessGrant.actor).where(AccessGrant.workspace_id == scope.workspace_id)
        )
        assert list(held) == ["alice"]


# -- the operator: the operators' command line ------------------------------------------------


def test_the_operator_login_starts_runs_moves_reviews_and_reconciles(
    apps: Apps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope, _run_ids, review_id = _history(apps)
    url = apps.url("operator")
    code, out, err = invoke(url, "operations", "start", "inventory.sync", "--environment",
                            scope.partition_key, "--no-launch", "--json")  # fmt: skip
    assert code == 0, err
    started = json.loads(out)["run"]["id"]
    code, _, err = invoke(url, "reviews", "publish", str(review_id))
    assert code == 0, err
    code, _, err = invoke(url, "reviews", "archive", str(review_id))
    assert code == 0, err
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    with apps.owner.sessions.begin() as s:  # queued long ago, and never launched
        s.execute(
            update(OperationRun)
            .where(OperationRun.id == started)
            .values(created_at=long_ago, last_progress_at=long_ago, stale_at=long_ago)
        )
    code, out, err = invoke(url, "reconcile", "--json")
    assert code == 0, err
    [row] = json.loads(out)["runs"]
    assert (row["id"], row["written"]) == (started, "applied")
    code, _, err = invoke(url, "environments", "readiness", scope.partition_key, "disabled")
    assert code == 0, err
    with apps.owner.sessions() as s:
        review = s.get(EnvironmentReview, review_id)
        assert review is not None and review.status == "archived"
        assert s.get_one(ManagedEnvironment, scope.environment_id).readiness == "disabled"
    operator = apps.operator
    for statement in [
        "INSERT INTO inventory_items DEFAULT VALUES",
        "UPDATE backup_items SET status = status WHERE false",
        "INSERT INTO environment_reviews DEFAULT VALUES",  # composing is a job step's
        "DELETE FROM operation_runs WHERE false",
        "UPDATE workspaces SET slug = slug WHERE false",
    ]:
        assert refused(operator, statement), statement


# -- one cluster, many databases --------------------------------------------------------------


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("roles_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_second_database_migrates_with_the_existing_roles_and_keeps_its_own_grants(
    postgres_server_url: str, logins: Logins
) -> None:
    """The roles exist (created by the first database's migration): an owner that may not
    create roles migrates another database, down and up again, and the first database's
    grants stay as they were."""
    tag = uuid.uuid4().hex[:8]
    database, owner = f"opsrecon_roles2_{tag}", f"t_owner2_{tag}"
    with _owned_database(postgres_server_url, database, owner, may_create_roles=False):
        engine = make_engine(_login_url(postgres_server_url, database, owner))
        try:
            assert migrate.upgrade(engine) == (None, migrate.head_revision())
            cfg = migrate.alembic_config()
            before = ScriptDirectory.from_config(cfg).get_revision("0013_roles")
            assert before is not None and isinstance(before.down_revision, str)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, before.down_revision)
            with engine.connect() as conn:  # this database's grants are gone, the roles stay
                assert not conn.scalar(
                    text(
                        "SELECT has_table_privilege('opsrecon_reader', 'operation_runs', 'SELECT')"
                    )
                )
                assert conn.scalar(
                    text("SELECT count(*) FROM pg_roles WHERE rolname = ANY(:n)"),
                    {"n": [f"opsrecon_{r}" for r in ROLES]},
                ) == len(ROLES)
            assert migrate.upgrade(engine) == (before.down_revision, migrate.head_revision())
            reader = logins.app("reader")
            with reader.sessions() as session:  # the first database's grants are untouched
                assert session.scalar(select(func.count()).select_from(OperationRun)) is not None
            reader.dispose()
        finally:
            engine.dispose()


def test_two_migrations_creating_a_role_at_once_both_succeed(postgres_server_url: str) -> None:
    """Databases of one cluster migrated at the same time: the second CREATE ROLE waits for
    the first one's commit and then finds the name taken; the migration takes that as done."""
    name = f"opsrecon_race_{uuid.uuid4().hex[:8]}"
    statement = text(_migration().create_role_sql(name))
    engine = create_engine(postgres_server_url)
    errors: list[BaseException] = []
    try:
        with engine.connect() as first:
            first.execute(statement)  # created, not committed: the second one must wait
            second_done = threading.Event()

            def second() -> None:
                try:
                    with engine.begin() as conn:
                        conn.execute(statement)
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    second_done.set()

            thread = threading.Thread(target=second)
            thread.start()
            assert not second_done.wait(1.0)  # blocked on the first one's uncommitted role
            first.commit()
            thread.join(30)
        assert errors == []
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :n"), {"n": name}
            ).all()
        assert rows == [(False,)]
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        engine.dispose()


# -- the documented SQL for the login users ---------------------------------------------------

DOCUMENTED_LOGINS = {
    "opsrecon_code_server": "opsrecon_reconciler",
    "opsrecon_run_pods": "opsrecon_worker",
    "opsrecon_operators": "opsrecon_operator",
    "opsrecon_viewers": "opsrecon_reader",
}


def _psql() -> str | None:
    bin_dir = find_pg_bin()
    found = bin_dir / "psql" if bin_dir is not None else None
    return str(found) if found is not None and found.exists() else shutil.which("psql")


def test_the_documented_logins_sql_creates_one_member_login_per_role(logins: Logins) -> None:
    """``deploy/postgres/logins.sql`` as the README runs it (psql, passwords as variables)."""
    psql = _psql()
    if psql is None:
        pytest.skip("no psql client on this machine")
    url = make_url(logins.admin)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    passwords = [
        f"{n}_password={PASSWORD}" for n in ("code_server", "run_pods", "operators", "viewers")
    ]
    command = [psql, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
               "-U", url.username or "postgres", "-d", url.database or "",
               "-v", "ON_ERROR_STOP=1", *(a for p in passwords for a in ("-v", p)),
               "-f", str(LOGINS_SQL)]  # fmt: skip
    admin = _admin(logins.admin)
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        with admin.connect() as conn:
            for login, group in DOCUMENTED_LOGINS.items():
                row = conn.execute(
                    text(
                        "SELECT rolcanlogin, pg_has_role(rolname, :g, 'MEMBER') "
                        "FROM pg_roles WHERE rolname = :l"
                    ),
                    {"g": group, "l": login},
                ).one()
                assert tuple(row) == (True, True), login
        # Each can connect with its password and reads as its role allows.
        viewer = create_engine(
            url.set(username="opsrecon_viewers", password=PASSWORD).render_as_string(False)
        )
        with viewer.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(OperationRun)) is not None
        viewer.dispose()
    finally:
        with admin.connect() as conn:
            for login in DOCUMENTED_LOGINS:
                conn.execute(text(f"DROP ROLE IF EXISTS {login}"))
        admin.dispose()
