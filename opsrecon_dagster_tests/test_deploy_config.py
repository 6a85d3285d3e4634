"""The documented production instance config (deploy/dagster.postgres.yaml) works on a real
PostgreSQL server: runs and events are stored there."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "dagster.postgres.yaml"


@dg.op
def _hello() -> int:
    return 1


@dg.job
def _hello_job() -> None:
    _hello()


@pytest.mark.postgres
def test_postgres_instance_config(
    postgres_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"dagster_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        shutil.copy(CONFIG, tmp_path / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        url = make_url(postgres_server_url).set(database=name)
        monkeypatch.setenv("DAGSTER_PG_URL", url.render_as_string(hide_password=False))
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = _hello_job.execute_in_process(instance=instance)
            assert result.success
            assert instance.get_run_by_id(result.run_id) is not None
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
