"""Materializations and rows reconciled both ways, with worker processes really SIGKILLed.

Each worker is a real ``opsrecon operations launch --in-process`` subprocess running the real
Dagster job against the test's database (SQLite and PostgreSQL); it dies by a real SIGKILL.

- Killed after committing its artifacts, before completing the row and reporting the
  materialization: the reconciler proves the run from the artifacts and materializes the
  partition itself, so the asset shows the artifact that exists. No provider call marks that
  moment, so the worker runs under ``opsrecon_dagster_tests.harness.die_before_report``,
  which kills it where it would complete its row.
- Killed before writing anything (the fixture provider's ``crash_at``, just before the
  second listing), while a materialization names the run (as one reported by hand from the
  UI would): the reconciler fails closed and the check says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.execution.stats import StepEventStatus

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.execution import JOB_REPORT_GRACE
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.instance.decisions import InstancePort
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import CallPoint
from opsrecon_dagster.reconciliation.service import deliver, reconcile_batch
from opsrecon_dagster.resources import FIXTURE_PATH_VAR, AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import reconciliation_sensor
from opsrecon_dagster_tests.conftest import Scope
from opsrecon_dagster_tests.harness import die_after_commit, die_before_report
from opsrecon_dagster_tests.ui_agreement import disagreements

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ASSET = dg.AssetKey("inventory_items")
LATER = timedelta(hours=3)
REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = "opsrecon_dagster.cli.main"
DIE_BEFORE_REPORT = die_before_report.__name__
DIE_AFTER_COMMIT = die_after_commit.__name__
# Inventory lists one type per call: before the second listing, nothing is written yet.
BEFORE_THE_SECOND_LISTING = CallPoint(call="list_policies", number=2)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _killed_worker(
    app: AppContext,
    instance: dg.DagsterInstance,
    scope: Scope,
    tmp_path: Path,
    *,
    crash_at: CallPoint | None = None,
    module: str = CLI,
    status: str = "running",
) -> tuple[int, str, str]:
    """A queued inventory run whose worker process (``python -m <module>``) is SIGKILLed,
    by the fixture provider at ``crash_at`` or by the harness ``module``: the operation run
    id, its Dagster run id and the worker's stderr."""
    instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    faults: dict[str, Any] = {} if crash_at is None else {"crash_at": crash_at.model_dump()}
    fixture = tmp_path / "tenants.json"
    fixture.write_text(json.dumps({"environments": {scope.partition_key: {"faults": faults}}}))
    run_id = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run.id
    env = {
        **os.environ,
        "OPSRECON_DATABASE_URL": app.url.render_as_string(False),
        FIXTURE_PATH_VAR: str(fixture),
    }
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            "operations",
            "launch",
            "--in-process",
            str(run_id),
        ],
        env=env,
        cwd=REPO_ROOT,  # so that `-m opsrecon_dagster_tests...` is found
        capture_output=True,
        timeout=600,
    )
    stderr = worker.stderr.decode(errors="replace")
    assert worker.returncode == -signal.SIGKILL, stderr[-2000:]
    run = app.runs.get(run_id)
    assert run.status == status
    assert run.dagster_run_id is not None
    return run_id, run.dagster_run_id, stderr


def _reconcile(app: AppContext, instance: dg.DagsterInstance) -> None:
    port, now = InstancePort(instance), datetime.now(UTC) + LATER
    reconcile_batch(app, port, now=now)
    deliver(app, port, now=now)


def _check_on(instance: dg.DagsterInstance, dagster_run_id: str) -> dg.AssetCheckEvaluation:
    [record] = [
        r
        for r in instance.all_logs(dagster_run_id)
        if r.dagster_event is not None
        and r.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    data = record.dagster_event.event_specific_data  # type: ignore[union-attr]
    assert isinstance(data, dg.AssetCheckEvaluation)
    return data


def test_artifacts_without_a_materialization_are_materialized_by_the_reconciler(
    app: AppContext, scope: Scope, tmp_path: Path, home: Path
) -> None:
    with dg.DagsterInstance.get() as instance:
        run_id, dagster_run_id, stderr = _killed_worker(
            app, instance, scope, tmp_path, module=DIE_BEFORE_REPORT
        )
        # Killed where it would complete its row (not earlier, by something else).
        assert f"instead of completing operation run {run_id}" in stderr
        assert instance.fetch_materializations(ASSET, limit=10).records == []

        _reconcile(app, instance)

        run = app.runs.get(run_id)
        assert (run.outcome, run.reason_code) == ("succeeded", "inventory_all_types_covered")
        [record] = instance.fetch_materializations(ASSET, limit=10).records
        mat = record.asset_materialization
        assert mat is not None
        assert mat.partition == scope.partition_key
        assert mat.metadata["operation_run_id"].value == run_id
        assert mat.metadata["decided_by"].value == "reconciler"
        assert mat.metadata["types_succeeded"].value == 3
        # The dead worker's Dagster run is ended, with the passing check on it.
        dagster_run = instance.get_run_by_id(dagster_run_id)
        assert dagster_run is not None
        assert dagster_run.status is dg.DagsterRunStatus.FAILURE
        assert _check_on(instance, dagster_run_id).passed


def test_a_materialization_without_artifacts_fails_closed(
    app: AppContext, scope: Scope, tmp_path: Path, home: Path
) -> None:
    with dg.DagsterInstance.get() as instance:
        run_id, dagster_run_id, stderr = _killed_worker(
            app, instance, scope, tmp_path, crash_at=BEFORE_THE_SECOND_LISTING
        )
        assert "fixture fault: killing process" in stderr
        # Someone reports the partition materialized for this run (the UI allows that).
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=ASSET,
                partition=scope.partition_key,
                metadata={"operation_run_id": run_id, "outcome": "succeeded"},
            )
        )

        _reconcile(app, instance)

        run = app.runs.get(run_id)
        assert (run.outcome, run.reason_code) == ("failed", "materialization_without_proof")
        check = _check_on(instance, dagster_run_id)
        assert not check.passed
        assert check.severity is dg.AssetCheckSeverity.ERROR
        assert "materialization_without_proof" in (check.description or "")
        assert "artifacts do not exist" in (check.description or "")
        # The step the dead worker held is failed, not left executing on the run page, and
        # the run's failure says the decision in words with the next step.
        steps = instance.get_run_step_stats(dagster_run_id)
        assert steps and {s.status for s in steps} == {StepEventStatus.FAILURE}
        [failure] = [
            e.dagster_event.message
            for e in instance.all_logs(dagster_run_id, of_type=DagsterEventType.RUN_FAILURE)
            if e.dagster_event is not None
        ]
        assert failure is not None
        assert failure.startswith("Failed: ")
        assert "decided by reconciler; its worker is gone)" in failure
        assert "[materialization_without_proof]" in failure and "Next step: " in failure


def _tick(app: AppContext, instance: dg.DagsterInstance, at: datetime) -> dg.SensorResult:
    """One reconciliation sensor tick on this instance, its clock at ``at``."""
    result = reconciliation_sensor(
        dg.build_sensor_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            resources={
                "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
                "clock": ClockResource.at(at),
            },
        )
    )
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_job_decision_committed_before_its_report_reaches_dagster(
    app: AppContext, scope: Scope, tmp_path: Path, home: Path
) -> None:
    """The worker commits its decision (and the decision's outbox entry) and dies before
    reporting to Dagster: the first tick leaves the entry to the worker's grace, the second
    shows the decision on the partition, with its check, and ends the Dagster run."""
    with dg.DagsterInstance.get() as instance:
        run_id, dagster_run_id, stderr = _killed_worker(
            app, instance, scope, tmp_path, module=DIE_AFTER_COMMIT, status="completed"
        )
        assert f"after completing operation run {run_id}" in stderr
        run = app.runs.get(run_id)
        assert (run.status, run.outcome) == ("completed", "succeeded")
        assert run.completed_at is not None
        assert instance.fetch_materializations(ASSET, limit=10).records == []
        with app.sessions() as session:
            assert outbox.count(session) == 1

        _tick(app, instance, run.completed_at)  # within the grace: the worker's to report
        assert instance.fetch_materializations(ASSET, limit=10).records == []
        _tick(app, instance, run.completed_at + JOB_REPORT_GRACE)

        [record] = instance.fetch_materializations(ASSET, limit=10).records
        mat = record.asset_materialization
        assert mat is not None
        assert mat.partition == scope.partition_key
        assert mat.metadata["operation_run_id"].value == run_id
        assert mat.metadata["decided_by"].value == "job"
        assert _check_on(instance, dagster_run_id).passed
        dagster_run = instance.get_run_by_id(dagster_run_id)
        assert dagster_run is not None
        assert dagster_run.status is dg.DagsterRunStatus.FAILURE
        with app.sessions() as session:
            assert outbox.count(session) == 0
        assert disagreements(app, instance) == []
        # A third tick changes nothing: the decision is shown once.
        _tick(app, instance, run.completed_at + 2 * JOB_REPORT_GRACE)
        assert len(instance.fetch_materializations(ASSET, limit=10).records) == 1
