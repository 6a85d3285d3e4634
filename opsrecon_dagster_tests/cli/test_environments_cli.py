"""``opsrecon environments``: the readiness of each environment, and the operator's way back
to ``ready`` once consent is granted (the runs before it are blocked before any provider
call, so no provider answer could set it back), recorded with who did it; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import AccessEvent, EnvironmentEvent, ManagedEnvironment
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster_tests.cli.test_access_cli import one_error
from opsrecon_dagster_tests.cli.test_cli import invoke
from opsrecon_dagster_tests.cli.test_operator_cli import url_of
from opsrecon_dagster_tests.conftest import make_scope


def readiness_of(app: AppContext, env_id: int) -> str:
    with app.sessions() as s:
        return s.get_one(ManagedEnvironment, env_id).readiness


def events(app: AppContext) -> list[tuple[str, str, dict[str, object]]]:
    with app.sessions() as s:
        rows = s.scalars(select(EnvironmentEvent).order_by(EnvironmentEvent.id))
        return [(e.action, e.acted_by, e.details) for e in rows]


def start_inventory(app: AppContext, partition: str) -> tuple[str, str]:
    """Run inventory.sync in this process; its (outcome, reason_code)."""
    code, out, err = invoke(
        url_of(app),
        *("operations", "start", "inventory.sync", "--environment", partition),
        *("--in-process", "--json"),
    )
    assert code in (0, 1), out + err
    decided = json.loads(out)["run"]
    return decided["outcome"], decided["reason_code"]


def test_ready_again_after_consent_lets_the_next_run_reach_the_provider(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(app, "acme", "contoso", readiness=Readiness.CONSENT_MISSING)
    # Blocked by its precondition, before any provider call: nothing could set it back.
    assert start_inventory(app, scope.partition_key) == ("blocked", "environment_consent_missing")
    assert readiness_of(app, scope.environment_id) == "consent_missing"
    code, out, err = invoke(url_of(app), "environments", "list", "--json")
    since = json.loads(out)[0]["readiness_changed_at"]

    monkeypatch.setenv("OPSRECON_ACTOR", "alice")
    code, out, err = invoke(url_of(app), "environments", "readiness", scope.partition_key, "ready")
    assert code == 0, err
    assert out.strip() == "acme.contoso: readiness consent_missing -> ready (by alice)"
    assert events(app) == [
        (
            "environment.readiness_set",
            "alice",
            {"previous_readiness": "consent_missing", "readiness": "ready"},
        )
    ]
    # The next run calls the provider (the fixture provider answers) and proves its work.
    assert start_inventory(app, scope.partition_key) == (
        "succeeded",
        "inventory_all_types_covered",
    )

    code, out, err = invoke(url_of(app), "environments", "list", "--json")
    assert code == 0, err
    listed = {row["environment"]: row["readiness"] for row in json.loads(out)}
    assert listed == {"acme.contoso": "ready"}
    assert json.loads(out)[0]["readiness_changed_at"] > since  # when it changed, recorded


def test_disabled_and_back_and_nothing_written_when_unchanged(app: AppContext) -> None:
    scope = make_scope(app, "acme", "contoso")
    url = url_of(app)
    code, out, err = invoke(url, "environments", "readiness", str(scope.environment_id), "disabled")
    assert code == 0, err
    assert readiness_of(app, scope.environment_id) == "disabled"
    code, out, err = invoke(url, "environments", "readiness", "acme/contoso", "DISABLED")
    assert code == 0, err
    assert out.strip() == "acme.contoso is already disabled; nothing changed"
    assert len(events(app)) == 1
    code, out, err = invoke(url, "environments", "list")
    assert code == 0, err
    assert out.splitlines()[2].split()[:4] == [
        str(scope.environment_id),
        "acme.contoso",
        "contoso",
        "disabled",
    ]


@pytest.mark.parametrize(
    ("environment", "state", "expected"),
    [
        ("acme.contoso", "consent_missing", "error: an operator sets readiness ready or disabled"),
        ("acme.contoso", "permission_missing", "error: an operator sets readiness ready or"),
        ("acme.nowhere", "ready", "error: no managed environment has partition key"),
        ("999", "ready", "error: no managed environment with id 999"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    app: AppContext, environment: str, state: str, expected: str
) -> None:
    scope = make_scope(app, "acme", "contoso", readiness=Readiness.CONSENT_MISSING)
    code, out, err = invoke(url_of(app), "environments", "readiness", environment, state)
    assert code == 2, out + err
    assert one_error(err).startswith(expected)
    assert readiness_of(app, scope.environment_id) == "consent_missing"
    assert events(app) == []


def test_with_grants_only_an_operator_of_the_workspace_sets_readiness(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = make_scope(app, "acme", "contoso", readiness=Readiness.CONSENT_MISSING)
    other = make_scope(app, "globex", "stark")
    url = url_of(app)
    monkeypatch.setenv("OPSRECON_ACTOR", "alice")
    assert invoke(url, "access", "grant", "alice", "acme", "--role", "operator")[0] == 0
    assert invoke(url, "access", "grant", "bob", "acme", "--role", "viewer")[0] == 0
    monkeypatch.setenv("OPSRECON_ACTOR", "bob")
    code, out, err = invoke(url, "environments", "readiness", scope.partition_key, "ready")
    assert code == 2, out + err
    assert "bob needs the operator role on workspace 'acme'" in one_error(err)
    assert readiness_of(app, scope.environment_id) == "consent_missing"
    assert events(app) == []
    with app.sessions() as s:
        refused = s.scalars(select(AccessEvent).where(AccessEvent.action == "access.refused"))
        assert [(e.acted_by, e.details["command"]) for e in refused] == [
            ("bob", "environments readiness")
        ]
    # A viewer lists the environments of their workspaces only.
    code, out, err = invoke(url, "environments", "list", "--json")
    assert code == 0, err
    assert [row["environment"] for row in json.loads(out)] == ["acme.contoso"]
    assert other.partition_key not in out
    monkeypatch.setenv("OPSRECON_ACTOR", "alice")
    code, out, err = invoke(url, "environments", "readiness", scope.partition_key, "ready")
    assert code == 0, err
    assert readiness_of(app, scope.environment_id) == "ready"
