"""Shared fixtures: an application database on SQLite and on real PostgreSQL.

PostgreSQL comes from ``OPSRECON_TEST_POSTGRES_URL`` when set, else from a throwaway cluster
started from the machine's binaries. Without either, PostgreSQL tests skip with a message,
except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import make_engine, normalize_url
from opsrecon_dagster.db.models import (
    BackupSchedule,
    Base,
    BaselineProfile,
    InventoryItem,
    ManagedEnvironment,
    Workspace,
)
from opsrecon_dagster.enums import Actor, Readiness, RunOutcome
from opsrecon_dagster.operations.context import Decision, Evidence
from opsrecon_dagster.settings import Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace
from opsrecon_dagster_tests.graph_server import GraphServer
from opsrecon_dagster_tests.pg_cluster import ThrowawayCluster, find_pg_bin

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent


def opsrecon(
    *args: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the ``opsrecon`` command line in a subprocess, as a user would: this interpreter,
    the repository as working directory (so a scratch copy's code is what runs)."""
    return subprocess.run(
        [sys.executable, "-m", "opsrecon_dagster.cli.main", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def _no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI lays piped output out for ``$COLUMNS`` when set; pytest-xdist's workers set
    it to 80 for themselves. Tests start without it and set it where they mean to."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


def _no_postgres(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (temporary folder, in-process run launcher)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A superuser URL to a PostgreSQL server for this test session."""
    given = os.environ.get("OPSRECON_TEST_POSTGRES_URL")
    if given:
        yield normalize_url(given).render_as_string(hide_password=False)
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _no_postgres("no OPSRECON_TEST_POSTGRES_URL and no initdb (apt-get install postgresql)")
    assert bin_dir is not None
    cluster = ThrowawayCluster(bin_dir).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def throwaway_database(server: str, prefix: str, migrated: bool = False) -> Iterator[str]:
    """Create a database on the server, yield its URL, drop it afterwards (a generator for
    fixtures: ``yield from``). ``migrated`` upgrades it to the application schema."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        if migrated:
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_test_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database on the server, dropped at the end of the session."""
    yield from throwaway_database(postgres_server_url, "opsrecon_test", migrated=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:  # fold the WAL into the main file before copying
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def truncate_all(app: AppContext) -> None:
    """Empty every application table (PostgreSQL test databases are shared per session)."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with app.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppContext]:
    """An ``AppContext`` on a clean, migrated application database (SQLite and PostgreSQL)."""
    if request.param == "sqlite":
        target = tmp_path / "app.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        url = f"sqlite:///{target}"
    else:
        url = request.getfixturevalue("postgres_test_url")
    context = AppContext(Settings(database_url=url))
    if request.param == "postgresql":
        truncate_all(context)
    try:
        yield context
    finally:
        context.dispose()


@pytest.fixture
def sqlite_app(tmp_path: Path, sqlite_template: Path) -> Iterator[AppContext]:
    """SQLite only, for tests about the embedded default."""
    target = tmp_path / "app.sqlite3"
    shutil.copy(sqlite_template, target)
    context = AppContext(Settings(database_url=f"sqlite:///{target}"))
    yield context
    context.dispose()


@dataclass(frozen=True)
class Scope:
    workspace_id: int
    environment_id: int
    partition_key: str


def make_scope(
    app: AppContext, workspace: str, environment: str, readiness: Readiness = Readiness.READY
) -> Scope:
    """Create (or find) a workspace and environment; returns their ids."""
    with app.sessions.begin() as session:
        ws: Workspace = get_or_create_workspace(session, workspace)
        env: ManagedEnvironment = get_or_create_environment(
            session, ws, environment, readiness=readiness
        )
        return Scope(ws.id, env.id, env.partition_key)


@pytest.fixture
def scope(app: AppContext) -> Scope:
    """One ready environment ``acme.contoso`` in workspace ``acme``."""
    return make_scope(app, "acme", "contoso")


def decide(
    app: AppContext,
    run_id: int,
    outcome: RunOutcome,
    reason: str,
    adapter: str = "inventory_sync",
    **evidence: Any,
) -> None:
    """Complete a run with a job decision (``evidence``: fields of ``Evidence``)."""
    app.runs.complete(
        run_id,
        Decision(
            outcome=outcome,
            reason_code=reason,
            adapter=adapter,
            decided_by=Actor.JOB,
            decided_at=datetime.now(UTC),
            evidence=Evidence(**evidence),
        ),
    )


def add_inventory_item(
    app: AppContext, scope: Scope, run_id: int, external_id: str, content_hash: str = "0" * 64
) -> None:
    """One inventory item of the scope's environment, last seen by ``run_id``."""
    with app.sessions.begin() as s:
        s.add(
            InventoryItem(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                policy_type="deviceConfigurations",
                external_id=external_id,
                display_name=external_id,
                content_hash=content_hash,
                last_seen_operation_run_id=run_id,
            )
        )


ALL_TYPES = ["deviceConfigurations", "compliancePolicies", "appProtectionPolicies"]


def add_profile(app: AppContext, scope: Scope, subjects: list[dict[str, Any]]) -> int:
    """A baseline profile for the scope's environment; returns its id."""
    with app.sessions.begin() as s:
        row = BaselineProfile(
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            name="Standard",
            subjects={"subjects": subjects},
        )
        s.add(row)
        s.flush()
        return row.id


def add_schedule(
    app: AppContext,
    scope: Scope,
    *,
    enabled: bool = True,
    cron: str = "0 2 * * *",
    policy_types: list[str] | None = None,
) -> int:
    """A backup schedule for the scope's environment; returns its id."""
    with app.sessions.begin() as s:
        row = BackupSchedule(
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            name="nightly",
            cron=cron,
            policy_types={"policy_types": policy_types or ALL_TYPES},
            enabled=enabled,
        )
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    """A local Graph-style API that answers only for ``graph_server.TOKEN``."""
    server = GraphServer()
    yield server
    server.stop()
