"""The documented production instance config (deploy/dagster.postgres.yaml): runs and events
are stored on a real PostgreSQL server, and its run queue limits each tenant."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from opsrecon_dagster.definitions import defs
from opsrecon_dagster.reconciliation.dagster_view import ENVIRONMENT_TAG, WORKSPACE_TAG, run_tags

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


def _launched(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
            )
        )
    )


def _per(runs: list[dg.DagsterRun], tag: str) -> dict[str, int]:
    return dict(Counter(r.tags[tag] for r in runs))


def test_the_run_queue_limits_each_tenant_and_lets_others_pass(tmp_path: Path) -> None:
    """The production run queue, evaluated by Dagster's own queue daemon over our code
    location: a throttling tenant with more queued runs than its limits holds only its own
    lanes, and another tenant's runs, queued after all of them, start at once."""
    queue = yaml.safe_load(CONFIG.read_text())["run_coordinator"]
    overrides = {
        "run_coordinator": queue,
        # Records launches without starting workers: the queue's decisions are the subject.
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }
    target = ModuleTarget(
        module_name="opsrecon_dagster.definitions",
        attribute="defs",
        working_directory=str(CONFIG.parent.parent),
        location_name="opsrecon_dagster",
    )
    with (
        dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        location = workspace.create_request_context().get_code_location("opsrecon_dagster")
        remote = location.get_repository("__repository__").get_full_job("inventory_sync")
        job = defs.resolve_job_def("inventory_sync")
        # 12 runs of the noisy tenant (two environments), then one each for three calm ones.
        scopes = [f"noisy.{env}" for env in "ab" for _ in range(6)]
        scopes += [f"calm-{i}.main" for i in range(3)]
        for number, partition in enumerate(scopes, start=1):
            instance.create_run_for_job(
                job,
                status=dg.DagsterRunStatus.QUEUED,
                tags={**run_tags(number, partition), "dagster/partition": partition},
                remote_job_origin=remote.get_remote_origin(),
            )
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        list(daemon.run_iteration(workspace))
        first = _launched(instance)
        # Per environment 2, per workspace 4: the noisy tenant holds 4, every calm one runs.
        assert _per(first, ENVIRONMENT_TAG) == {
            "noisy.a": 2,
            "noisy.b": 2,
            "calm-0.main": 1,
            "calm-1.main": 1,
            "calm-2.main": 1,
        }
        assert _per(first, WORKSPACE_TAG)["noisy"] == 4
        queued = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        assert len(queued) == 8
        # Nothing ends: a second pass launches nothing more.
        list(daemon.run_iteration(workspace))
        assert len(_launched(instance)) == 7
        # Two noisy runs end: exactly two more of its queued runs start.
        for run in [r for r in first if r.tags[WORKSPACE_TAG] == "noisy"][:2]:
            instance.report_run_failed(run)
        list(daemon.run_iteration(workspace))
        assert _per(_launched(instance), WORKSPACE_TAG) == {
            "noisy": 4,
            "calm-0": 1,
            "calm-1": 1,
            "calm-2": 1,
        }
