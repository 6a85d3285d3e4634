"""The ``opsrecon`` command line as a user drives it: exit codes, JSON, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.main import cli
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster_tests.conftest import make_scope


def invoke(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--database-url", url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_fresh_sqlite_upgrade_then_empty_list(tmp_path: Path) -> None:
    """The real console script, as a new user runs it: upgrade, then ``runs list --json``."""
    env = {**os.environ, "OPSRECON_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"}
    exe = Path(sys.executable).with_name("opsrecon")
    up = subprocess.run(
        [exe, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr
    assert "upgraded empty database" in up.stdout
    listed = subprocess.run(
        [exe, "runs", "list", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_list_and_show_runs(app: AppContext) -> None:
    scope = make_scope(app, "acme", "contoso")
    run = app.runs.start(
        OperationType.BASELINE_CAPTURE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(baseline_profile_id=1),
    ).run
    url = app.url.render_as_string(hide_password=False)
    code, out, _ = invoke(url, "runs", "list", "--json", "--type", "baseline.capture")
    assert code == 0
    [row] = json.loads(out)
    assert row["id"] == run.id and row["partition_key"] == "acme.contoso"
    assert row["status"] == "queued" and row["outcome"] is None
    code, out, _ = invoke(url, "runs", "list", "--json", "--status", "completed")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = invoke(url, "runs", "show", str(run.id), "--json")
    detail = json.loads(out)
    assert detail["audit"][0]["action"] == "run.queued"
    assert detail["context"]["inputs"]["baseline_profile_id"] == 1
    code, out, _ = invoke(url, "runs", "show", str(run.id))
    assert code == 0 and "no decision yet" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "4242"], "error: operation run 4242 not found"),
        (["runs", "list", "--type", "inventory.synk"], "error: unknown operation type"),
        (["runs", "list", "--workspace", "nope"], "error: no workspace 'nope'"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    sqlite_app: AppContext, args: list[str], message: str
) -> None:
    code, out, err = invoke(sqlite_app.url.render_as_string(), *args)
    assert code == 2
    assert err.startswith(message) and "Traceback" not in err + out


def test_unmigrated_database_and_bad_urls(tmp_path: Path) -> None:
    (tmp_path / "empty.sqlite3").touch()  # there, but never upgraded
    code, _, err = invoke(f"sqlite:///{tmp_path / 'empty.sqlite3'}", "runs", "list")
    assert (code, err.strip()) == (
        2,
        "error: the application database is not migrated; run `opsrecon db upgrade` first",
    )
    code, _, err = invoke("mysql://u:pw@h/db", "runs", "list")
    assert code == 2 and "unsupported database backend" in err
    code, _, err = invoke("postgresql://u:hunter2@127.0.0.1:1/db", "runs", "list")
    assert code == 2 and "cannot use the application database" in err
    assert "hunter2" not in err and "Traceback" not in err


def list_runs_now(app: AppContext) -> list[OperationRun]:
    with app.sessions() as s:
        return list(s.scalars(select(OperationRun)).all())


def test_operations_start_in_process_executes_the_tagged_job(
    sqlite_app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(sqlite_app, "acme", "contoso")
    url = sqlite_app.url.render_as_string()
    # What the row says at the moment the job is submitted, before its Dagster run exists.
    seen_at_submission: list[tuple[str | None, bool]] = []
    submit = dg.JobDefinition.execute_in_process

    def spy(job: dg.JobDefinition, *args: Any, **kwargs: Any) -> dg.ExecuteInProcessResult:
        [row] = list_runs_now(sqlite_app)
        exists = kwargs["instance"].get_run_by_id(kwargs["run_id"]) is not None
        seen_at_submission.append((row.dagster_run_id, exists))
        assert row.dagster_run_id == kwargs["run_id"]
        return submit(job, *args, **kwargs)

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", spy)
    code, out, err = invoke(url, "operations", "start", "inventory.sync", "--environment",
                            scope.partition_key, "--in-process", "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["created"] is True
    assert data["launched"]["dagster_status"] == "SUCCESS"
    assert data["launched"]["ui_url"].endswith(f"/runs/{data['launched']['dagster_run_id']}")
    assert data["run"]["status"] == "completed"
    assert data["run"]["outcome"] == "succeeded"
    assert data["run"]["dagster_run_id"] == data["launched"]["dagster_run_id"]
    # The run is recorded in the persistent instance with the operation run tag.
    with dg.DagsterInstance.get() as instance:
        dagster_run = instance.get_run_by_id(data["launched"]["dagster_run_id"])
    assert dagster_run is not None
    assert dagster_run.tags["opsrecon/operation_run_id"] == str(data["run"]["id"])
    assert dagster_run.tags["opsrecon/workspace"] == "acme"  # the run queue's tenant lanes
    assert dagster_run.tags["opsrecon/environment"] == scope.partition_key
    assert seen_at_submission == [(data["run"]["dagster_run_id"], False)]
    # Unsupported types are queued, never launched.
    code, out, _ = invoke(url, "operations", "start", "restore.execute", "--environment",
                          scope.partition_key, "--json")  # fmt: skip
    assert json.loads(out)["launched"] is None
    assert json.loads(out)["run"]["status"] == "queued"


def _stale_restore_run(app: AppContext) -> OperationRun:
    """A queued ``restore.execute`` run (no proof adapter) that went stale a day ago."""
    scope = make_scope(app, "acme", "contoso")
    run = app.runs.start(
        OperationType.RESTORE_EXECUTE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    with app.engine.begin() as conn:
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id == run.id)
            .values(
                last_progress_at=datetime.now(UTC) - timedelta(days=1),
                stale_at=datetime.now(UTC) - timedelta(days=1),
            )
        )
    return run


def test_reconcile_dry_run_then_write_then_explain(
    sqlite_app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    run = _stale_restore_run(sqlite_app)
    url = sqlite_app.url.render_as_string()
    code, out, err = invoke(url, "reconcile", "--dry-run", "--json")
    assert code == 0, err
    [row] = json.loads(out)["runs"]
    assert (row["outcome"], row["reason_code"], row["written"]) == (
        "failed",
        "unsupported_type_stale",
        None,
    )
    assert sqlite_app.runs.get(run.id).status == "queued"
    code, out, _ = invoke(url, "reconcile", "--json")
    assert json.loads(out)["runs"][0]["written"] == "applied"
    assert sqlite_app.runs.get(run.id).outcome == "failed"
    code, out, _ = invoke(url, "reconcile", "--json")
    assert json.loads(out)["runs"] == []
    code, out, _ = invoke(url, "runs", "explain", str(run.id))
    lines = out.splitlines()
    assert lines[1].startswith("Decision: failed: The run went stale; this operation type")
    assert lines.index("Evidence:") < lines.index("Audit trail:") < lines.index("Raw context:")
    code, out, _ = invoke(url, "runs", "explain", str(run.id), "--lang", "de")
    assert "Der Lauf ist veraltet" in out


def test_language_applies_to_every_command(
    sqlite_app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--lang`` / ``OPSRECON_LANGUAGE`` choose the messages of list, show, explain and
    reconcile; the reason code always stands beside the message."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    run = _stale_restore_run(sqlite_app)
    url = sqlite_app.url.render_as_string()
    german = "Der Lauf ist veraltet; für diesen Vorgangstyp gibt es keinen Nachweisadapter."
    code, out, err = invoke(url, "--lang", "de", "reconcile")
    assert code == 0, err
    # Tables name the code; their legend gives each code's message (wrapped to 100 columns).
    assert f"unsupported_type_stale {german}" in " ".join(out.split())
    monkeypatch.setenv("OPSRECON_LANGUAGE", "de")
    for args in (["runs", "list"], ["runs", "show", str(run.id)], ["runs", "explain", str(run.id)]):
        code, out, err = invoke(url, *args)
        assert code == 0, err
        assert german in " ".join(out.split()) and "unsupported_type_stale" in out, args
    code, out, _ = invoke(url, "--lang", "en", "runs", "list")
    assert "The run went stale; this operation type has no proof adapter." in out
    monkeypatch.setenv("OPSRECON_LANGUAGE", "fr")
    code, out, err = invoke(url, "runs", "list")
    assert code == 2
    assert "fr" in err and "Traceback" not in err + out


def test_reconcile_reports_pending_deliveries_instead_of_nothing_to_do(
    sqlite_app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's decision waits out its worker's grace in the outbox: with no stale run,
    ``reconcile`` says what is still to deliver, never "nothing to do"."""
    from opsrecon_dagster.enums import Actor, RunOutcome
    from opsrecon_dagster.operations import outbox

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    url = sqlite_app.url.render_as_string()
    scope = make_scope(sqlite_app, "acme", "contoso")
    run = sqlite_app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    now = datetime.now(UTC)
    event = outbox.DecisionEvent(
        operation_run_id=run.id,
        outcome=RunOutcome.SUCCEEDED,
        reason_code="inventory_all_types_covered",
        adapter="inventory_sync",
        decided_by=Actor.JOB,
        decided_at=now,
    )
    with sqlite_app.sessions.begin() as session:
        outbox.enqueue_one(session, event, due_at=now + timedelta(hours=1))
    code, out, err = invoke(url, "reconcile")
    assert code == 0, err
    assert out.strip() == (
        "no stale operation runs; decisions shown in Dagster: 0; still to deliver: 1 (0 due now)"
    )
    code, out, _ = invoke(url, "reconcile", "--json")
    assert json.loads(out)["deliveries"] == {
        "delivered": 0,
        "pending": 1,
        "due": 0,
        "unreadable": 0,
    }
    with sqlite_app.sessions.begin() as session:
        outbox.acknowledge(session, [e.id for e in outbox.pending(session)])
    code, out, _ = invoke(url, "reconcile")
    assert out.strip() == "nothing to do"
