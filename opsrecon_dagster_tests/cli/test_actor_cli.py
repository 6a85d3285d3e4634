"""Every operator action names its actor: ``operations start`` / ``launch``, ``reviews
publish`` / ``archive`` / ``supersede`` and a writing ``reconcile`` record who ran them
(``OPSRECON_ACTOR``, else the OS user) in the audit trail that ``runs show`` and
``reviews show`` print, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import AuditLog, OperationRun, ReviewEvent
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster_tests.cli.test_cli import _stale_restore_run, invoke
from opsrecon_dagster_tests.cli.test_operator_cli import url_of
from opsrecon_dagster_tests.cli.test_reviews_cli import _composed
from opsrecon_dagster_tests.conftest import Scope, make_scope


def trail(app: AppContext, run_id: int) -> list[tuple[str, str, str | None]]:
    """(action, actor, acted_by) of the run's audit rows, oldest first."""
    with app.sessions() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.operation_run_id == run_id).order_by(AuditLog.id)
        )
        return [(a.action, a.actor, a.acted_by) for a in rows]


@pytest.fixture(autouse=True)
def _no_declared_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSRECON_ACTOR", raising=False)


def test_start_and_launch_record_the_declared_actor(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set after import, read when each command runs: one name per command."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(app, "acme", "contoso", readiness=Readiness.CONSENT_MISSING)
    monkeypatch.setenv("OPSRECON_ACTOR", "alice@example.com")
    code, out, err = invoke(
        url_of(app),
        *("operations", "start", "inventory.sync", "--environment", scope.partition_key),
        *("--no-launch", "--json"),
    )
    assert code == 0, err
    run_id = json.loads(out)["run"]["id"]
    monkeypatch.setenv("OPSRECON_ACTOR", "bob")
    code, out, err = invoke(url_of(app), "operations", "launch", str(run_id), "--in-process")
    assert code == 1, out + err  # blocked: the environment has no consent
    assert trail(app, run_id) == [
        ("run.queued", "operator", "alice@example.com"),
        ("run.launch_requested", "operator", "bob"),
        ("run.running", "job", None),
        ("run.completed", "job", None),
    ]
    code, out, _ = invoke(url_of(app), "runs", "show", str(run_id))
    assert code == 0
    assert "by operator (alice@example.com)" in out and "by operator (bob)" in out
    code, out, _ = invoke(url_of(app), "runs", "show", str(run_id), "--json")
    assert [a["acted_by"] for a in json.loads(out)["audit"]] == [
        "alice@example.com",
        "bob",
        None,
        None,
    ]


def test_without_the_variable_the_os_user_acts(
    app: AppContext, scope: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "carol")  # what getpass.getuser() reads first on this host
    code, out, err = invoke(
        url_of(app),
        *("operations", "start", "restore.execute", "--environment", scope.partition_key),
        "--json",
    )
    assert code == 0, err
    assert trail(app, json.loads(out)["run"]["id"]) == [("run.queued", "operator", "carol")]


@pytest.mark.parametrize("declared", ["a b", "-rf", "x" * 129, "eve\nmallory", "'quoted'"])
def test_an_unusable_actor_name_is_one_error_line_and_writes_nothing(
    app: AppContext, scope: Scope, monkeypatch: pytest.MonkeyPatch, declared: str
) -> None:
    monkeypatch.setenv("OPSRECON_ACTOR", declared)
    code, out, err = invoke(
        url_of(app),
        *("operations", "start", "restore.execute", "--environment", scope.partition_key),
    )
    assert code == 2, out + err
    assert err.startswith("error: OPSRECON_ACTOR must be 1 to 128 letters")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OperationRun)) == 0


def test_no_os_user_and_no_variable_is_one_error_line(
    app: AppContext, scope: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container under an arbitrary uid: getpass finds no name; the command says what to
    set instead of recording no one."""
    import getpass

    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    code, _, err = invoke(
        url_of(app),
        *("operations", "start", "restore.execute", "--environment", scope.partition_key),
    )
    assert (code, err) == (
        2,
        "error: cannot tell who is acting (no OS user name): set OPSRECON_ACTOR\n",
    )


def test_review_changes_record_the_actor_and_show_it(
    app: AppContext, scope: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _composed(app, scope, "a")
    second = _composed(app, scope, "b")
    monkeypatch.setenv("OPSRECON_ACTOR", "dave")
    assert invoke(url_of(app), "reviews", "publish", str(first))[0] == 0
    monkeypatch.setenv("OPSRECON_ACTOR", "erin")
    assert invoke(url_of(app), "reviews", "publish", str(second))[0] == 0  # supersedes first
    monkeypatch.setenv("OPSRECON_ACTOR", "frank")
    assert invoke(url_of(app), "reviews", "archive", str(first))[0] == 0
    with app.sessions() as s:
        events = s.scalars(
            select(ReviewEvent).where(ReviewEvent.review_id == first).order_by(ReviewEvent.id)
        )
        assert [(e.action, e.actor, e.acted_by) for e in events] == [
            ("composed", "job", None),
            ("published", "operator", "dave"),
            ("superseded", "operator", "erin"),
            ("archived", "operator", "frank"),
        ]
    code, out, _ = invoke(url_of(app), "reviews", "show", str(first))
    assert code == 0
    for name in ("dave", "erin", "frank"):
        assert f"operator ({name})" in out
    code, out, _ = invoke(url_of(app), "reviews", "show", str(first), "--json")
    assert [e["acted_by"] for e in json.loads(out)["events"]] == [None, "dave", "erin", "frank"]


def test_a_writing_reconcile_records_its_actor_and_a_dry_run_names_no_one(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    run = _stale_restore_run(app)
    # A dry run needs no name (it writes nothing): even an unusable one is not read.
    monkeypatch.setenv("OPSRECON_ACTOR", "not a name")
    assert invoke(url_of(app), "reconcile", "--dry-run")[0] == 0
    monkeypatch.setenv("OPSRECON_ACTOR", "grace")
    code, out, err = invoke(url_of(app), "reconcile", "--json")
    assert code == 0, err
    assert json.loads(out)["runs"][0]["written"] == "applied"
    assert trail(app, run.id) == [
        ("run.queued", "operator", None),  # started by a test, not by a command
        ("run.reconciled", "reconciler", "grace"),
    ]
    code, out, _ = invoke(url_of(app), "runs", "explain", str(run.id))
    assert "by reconciler (grace) via" in " ".join(out.split())
