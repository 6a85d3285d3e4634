"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import make_engine
from opsrecon_dagster.db.models import Base


def test_migrated_schema_matches_models(app: AppContext) -> None:
    with app.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    assert migrate.current_revision(app.engine) == migrate.head_revision()


def test_promise_indexes_are_partial_and_unique(app: AppContext) -> None:
    inspector = inspect(app.engine)
    runs = {ix["name"]: ix for ix in inspector.get_indexes("operation_runs")}
    reviews = {ix["name"]: ix for ix in inspector.get_indexes("environment_reviews")}
    assert runs["uq_operation_runs_active_identity"]["unique"]
    assert not runs["ix_operation_runs_open_due"]["unique"]
    assert reviews["uq_environment_reviews_mutable_fingerprint"]["unique"]
    assert reviews["uq_environment_reviews_mutable_fingerprint"]["column_names"] == [
        "workspace_id",
        "managed_environment_id",
        "fingerprint",
    ]


def test_upgrade_applies_to_empty_sqlite_and_is_repeatable(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    with pytest.raises(migrate.SchemaNotCurrentError, match="not migrated"):
        migrate.ensure_current(engine)
    assert migrate.upgrade(engine) == (None, migrate.head_revision())
    assert migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())
    migrate.ensure_current(engine)
    assert "operation_runs" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.postgres
def test_upgrade_applies_to_empty_postgres_database(postgres_server_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "opsrecon_empty"'))
        conn.execute(text('CREATE DATABASE "opsrecon_empty"'))
    url = make_url(postgres_server_url).set(database="opsrecon_empty")
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        migrate.ensure_current(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE "opsrecon_empty" WITH (FORCE)'))
        admin.dispose()
