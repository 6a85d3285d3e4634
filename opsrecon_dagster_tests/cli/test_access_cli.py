"""Workspace entitlements (``opsrecon access``): off while no grant exists; once one does,
reads need a viewer or operator grant on the workspace and actions an operator grant, and
each refusal is one ``error:`` line, exit code 2 and an ``access.refused`` row; on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from opsrecon_dagster import entitlements
from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import AccessEvent, AccessGrant, EnvironmentReview, OperationRun
from opsrecon_dagster.enums import ReviewStatus
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster_tests.cli.test_cli import _stale_restore_run, invoke
from opsrecon_dagster_tests.cli.test_operator_cli import url_of
from opsrecon_dagster_tests.cli.test_reviews_cli import _composed
from opsrecon_dagster_tests.conftest import Scope, make_scope


@pytest.fixture(autouse=True)
def _no_declared_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSRECON_ACTOR", raising=False)


@pytest.fixture
def as_actor(app: AppContext, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``as_actor("alice", "runs", "list")``: the command run as that declared actor."""

    def run(actor: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("OPSRECON_ACTOR", actor)
        return invoke(url_of(app), *args)

    return run


def one_error(err: str) -> str:
    """The single ``error:`` line of a refused command (never a traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def events(app: AppContext) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(action, acted_by, workspace_id, details) of every access event, oldest first."""
    with app.sessions() as s:
        rows = s.scalars(select(AccessEvent).order_by(AccessEvent.id))
        return [(e.action, e.acted_by, e.workspace_id, e.details) for e in rows]


def refusals(app: AppContext) -> list[tuple[str, int, dict[str, Any]]]:
    return [(who, ws, d) for action, who, ws, d in events(app) if action == "access.refused"]


def count(app: AppContext, model: Any) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def start(app: AppContext, scope: Scope) -> int:
    """A queued inventory sync in the scope (started by a test, not a command)."""
    return app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run.id


@pytest.fixture
def two(app: AppContext, as_actor: Any) -> tuple[Scope, Scope, int, int]:
    """Workspaces acme and globex with one run each; alice operates acme (the first grant),
    bob views acme, and nobody holds a grant on globex."""
    acme, globex = make_scope(app, "acme", "contoso"), make_scope(app, "globex", "initech")
    runs = start(app, acme), start(app, globex)
    for actor, grantee, role in (("alice", "alice", "operator"), ("alice", "bob", "viewer")):
        code, _, err = as_actor(actor, "access", "grant", grantee, "acme", "--role", role)
        assert code == 0, err
    return acme, globex, *runs


# -- off by default ----------------------------------------------------------------------------


def test_without_grants_every_command_behaves_as_before(
    app: AppContext, scope: Scope, as_actor: Any
) -> None:
    """No grant: no check, no note, no row, and no actor name read by the reads (even an
    unusable one), as before this feature."""
    run_id = start(app, scope)
    review_id = _composed(app, scope, "a")
    for args in (
        ("runs", "list", "--json"),
        ("runs", "show", str(run_id)),
        ("runs", "explain", str(run_id)),
        ("reviews", "list"),
        ("reviews", "show", str(review_id)),
        ("access", "list"),
    ):
        code, out, err = as_actor("not a name", *args)
        assert (code, err) == (0, ""), (args, err)
    code, out, _ = as_actor("not a name", "access", "list")
    assert "entitlements are off" in out
    code, out, err = as_actor("zoe", "operations", "start", "inventory.sync",
                              "--environment", scope.partition_key, "--no-launch")  # fmt: skip
    assert (code, err) == (0, "")
    code, _, err = as_actor("zoe", "reviews", "publish", str(review_id))
    assert (code, err) == (0, "")
    assert events(app) == []


# -- grants ------------------------------------------------------------------------------------


def test_the_first_grant_must_be_the_granters_own_operator_grant(
    app: AppContext, scope: Scope, as_actor: Any
) -> None:
    for actor, grantee, role in (("bob", "alice", "operator"), ("alice", "alice", "viewer")):
        code, _, err = as_actor(actor, "access", "grant", grantee, "acme", "--role", role)
        assert code == 2
        assert "first one must be your own operator grant" in one_error(err)
    assert count(app, AccessGrant) == 0
    code, out, err = as_actor("alice", "access", "grant", "alice", "acme", "--role", "operator")
    assert (code, out.strip()) == (0, "alice is operator on workspace acme"), err
    assert events(app) == [
        (
            "access.granted",
            "alice",
            scope.workspace_id,
            {"command": "access grant", "grantee": "alice", "role": "operator"},
        )
    ]
    code, out, _ = as_actor("alice", "access", "list", "--json")
    listed = json.loads(out)
    assert listed["entitlements_on"] is True
    assert [(g["actor"], g["workspace_slug"], g["role"]) for g in listed["grants"]] == [
        ("alice", "acme", "operator")
    ]


def test_only_an_operator_of_the_workspace_grants_there(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    acme, globex, _, _ = two
    # bob views acme: he may not grant there, and not claim globex (no grant yet).
    code, _, err = as_actor("bob", "access", "grant", "bob", "acme", "--role", "operator")
    assert code == 2 and "bob needs the operator role on workspace 'acme'" in one_error(err)
    code, _, err = as_actor("bob", "access", "grant", "bob", "globex", "--role", "operator")
    assert code == 2 and "workspace 'globex'" in one_error(err)
    assert refusals(app) == [
        ("bob", acme.workspace_id, {"command": "access grant", "needed": "operator",
                                    "held": "viewer"}),
        ("bob", globex.workspace_id, {"command": "access grant", "needed": "operator"}),
    ]  # fmt: skip
    # alice operates acme: she claims globex with her own operator grant, nothing else.
    code, _, err = as_actor("alice", "access", "grant", "bob", "globex", "--role", "viewer")
    assert code == 2 and "its first one must be your own operator grant" in one_error(err)
    code, _, err = as_actor("alice", "access", "grant", "alice", "globex", "--role", "operator")
    assert code == 0, err
    code, out, err = as_actor("alice", "access", "grant", "bob", "globex", "--role", "viewer")
    assert (code, out.strip()) == (0, "bob is viewer on workspace globex"), err
    # A grant given again changes the role; the last operator is never demoted.
    code, out, _ = as_actor("alice", "access", "grant", "bob", "acme", "--role", "operator")
    assert (code, out.strip()) == (0, "bob is operator on workspace acme (was viewer)")
    code, _, err = as_actor("alice", "access", "grant", "alice", "globex", "--role", "viewer")
    assert code == 2 and "last operator of workspace 'globex'" in one_error(err)
    code, out, _ = as_actor("bob", "access", "list", "--json")
    assert {(g["actor"], g["workspace_slug"], g["role"]) for g in json.loads(out)["grants"]} == {
        ("alice", "acme", "operator"),
        ("bob", "acme", "operator"),
        ("alice", "globex", "operator"),
        ("bob", "globex", "viewer"),
    }


# -- reads -------------------------------------------------------------------------------------


def test_reads_outside_the_grants_are_refused_and_audited(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    _acme, globex, acme_run, globex_run = two
    for verb in ("show", "explain"):
        code, out, err = as_actor("bob", "runs", verb, str(globex_run))
        assert (code, out) == (2, "")
        line = one_error(err)
        assert "bob needs the viewer role on workspace 'globex'" in line
        assert "holds no grant there" in line
        code, out, err = as_actor("bob", "runs", verb, str(acme_run), "--json")
        assert code == 0, err
        assert json.loads(out)["id"] == acme_run
    for args in (
        ("runs", "list", "--workspace", "globex"),
        ("runs", "list", "--environment", globex.partition_key),
        ("reviews", "list", "--workspace", "globex"),
        ("access", "list", "--workspace", "globex"),
    ):
        code, out, err = as_actor("bob", *args)
        assert (code, out) == (2, ""), args
        one_error(err)
    assert [(who, ws, d["command"], d.get("target")) for who, ws, d in refusals(app)] == [
        ("bob", globex.workspace_id, "runs show", f"run {globex_run}"),
        ("bob", globex.workspace_id, "runs explain", f"run {globex_run}"),
        ("bob", globex.workspace_id, "runs list", None),
        ("bob", globex.workspace_id, "runs list", None),
        ("bob", globex.workspace_id, "reviews list", None),
        ("bob", globex.workspace_id, "access list", None),
    ]
    assert {d["needed"] for _, _, d in refusals(app)} == {"viewer"}


def test_listings_show_only_the_granted_workspaces_and_say_so(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    acme, globex, _acme_run, _ = two
    acme_review, globex_review = _composed(app, acme, "a"), _composed(app, globex, "b")
    code, out, err = as_actor("bob", "runs", "list", "--json")
    assert code == 0
    assert {r["workspace_id"] for r in json.loads(out)} == {acme.workspace_id}
    assert err.strip() == "note: runs of the workspaces bob may read only: acme"
    code, out, err = as_actor("bob", "reviews", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [acme_review]
    assert err.strip() == "note: reviews of the workspaces bob may read only: acme"
    code, out, err = as_actor("bob", "reviews", "show", str(globex_review))
    assert code == 2 and "workspace 'globex'" in one_error(err)
    # Someone with no grant at all sees nothing, and is told so.
    code, out, err = as_actor("mallory", "runs", "list", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert "mallory may read only: none" in err
    code, out, _ = as_actor("mallory", "access", "list", "--json")
    assert json.loads(out)["grants"] == []


# -- actions -----------------------------------------------------------------------------------


def test_actions_need_an_operator_grant(
    app: AppContext,
    two: tuple[Scope, Scope, int, int],
    as_actor: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    acme, globex, acme_run, globex_run = two
    review = _composed(app, acme, "a")
    runs_before = count(app, OperationRun)
    start_acme = ("operations", "start", "inventory.sync", "--environment", acme.partition_key,
                  "--no-launch", "--policy-type", "compliancePolicies")  # fmt: skip
    refused_writes: list[tuple[str, ...]] = [
        start_acme,  # bob only views acme
        ("operations", "launch", str(acme_run)),
        ("reviews", "publish", str(review)),
        ("reviews", "archive", str(review)),
        ("reviews", "supersede", str(review)),
        ("reconcile", "--workspace", "acme"),
    ]
    for args in refused_writes:
        code, out, err = as_actor("bob", *args)
        assert (code, out) == (2, ""), args
        assert "bob needs the operator role on workspace 'acme'" in one_error(err), args
    with app.sessions() as s:
        review_row = s.get(EnvironmentReview, review)
        assert review_row is not None and review_row.status == ReviewStatus.READY.value
    assert count(app, OperationRun) == runs_before
    assert [d["command"] for _, _, d in refusals(app)] == [
        "operations start",
        "operations launch",
        "reviews publish",
        "reviews archive",
        "reviews supersede",
        "reconcile",
    ]
    # A viewer may reconcile dry (it writes nothing) where it may read.
    code, _, err = as_actor("bob", "reconcile", "--dry-run", "--workspace", "acme")
    assert code == 0, err
    # alice operates acme: she acts there, not in globex, and not across every workspace.
    code, _, err = as_actor("alice", *start_acme)
    assert code == 0, err
    code, _, err = as_actor("alice", "reviews", "publish", str(review))
    assert code == 0, err
    code, _, err = as_actor("alice", "operations", "launch", str(globex_run))
    assert code == 2 and "workspace 'globex'" in one_error(err)
    code, _, err = as_actor("alice", "operations", "start", "inventory.sync",
                            "--environment", globex.partition_key, "--no-launch")  # fmt: skip
    assert code == 2 and "workspace 'globex'" in one_error(err)
    code, _, err = as_actor("alice", "reconcile")
    assert code == 2 and "operator role on workspace 'globex' for `reconcile`" in one_error(err)
    code, _, err = as_actor("alice", "reconcile", "--workspace", "acme")
    assert code == 0, err


def test_a_writing_reconcile_outside_the_grants_decides_nothing(
    app: AppContext, as_actor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    run = _stale_restore_run(app)  # in acme
    make_scope(app, "globex", "initech")
    code, _, err = as_actor("alice", "access", "grant", "alice", "globex", "--role", "operator")
    assert code == 0, err
    code, _, err = as_actor("alice", "reconcile")
    assert code == 2 and "workspace 'acme'" in one_error(err)
    with app.sessions() as s:
        row = s.get(OperationRun, run.id)
        assert row is not None and row.status == "queued"


# -- revoke ------------------------------------------------------------------------------------


def test_revoke_takes_the_grant_away_and_the_last_grant_turns_entitlements_off(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    acme, _globex, acme_run, globex_run = two
    code, _, err = as_actor("bob", "access", "revoke", "alice", "acme")
    assert code == 2 and "bob needs the operator role" in one_error(err)
    code, _, err = as_actor("alice", "access", "revoke", "alice", "acme")
    assert code == 2 and "last operator of workspace 'acme'" in one_error(err)
    code, out, err = as_actor("alice", "access", "revoke", "bob", "acme")
    assert (code, out.strip()) == (0, "bob holds no grant on workspace acme any more"), err
    code, _, err = as_actor("bob", "runs", "show", str(acme_run))
    assert code == 2 and "holds no grant there" in one_error(err)
    code, _, err = as_actor("alice", "access", "revoke", "bob", "acme")
    assert code == 2 and "bob holds no grant on workspace 'acme'" in one_error(err)
    code, out, err = as_actor("alice", "access", "revoke", "alice", "acme")
    assert code == 0, err
    assert "entitlements are off" in out
    assert count(app, AccessGrant) == 0
    code, _, err = as_actor("bob", "runs", "show", str(globex_run))
    assert (code, err) == (0, "")
    assert [(a, who, ws) for a, who, ws, _ in events(app) if a != "access.refused"] == [
        ("access.granted", "alice", acme.workspace_id),
        ("access.granted", "alice", acme.workspace_id),
        ("access.revoked", "alice", acme.workspace_id),
        ("access.revoked", "alice", acme.workspace_id),
    ]
    code, _, err = as_actor("alice", "access", "revoke", "bob", "acme")
    assert code == 2 and "nothing to revoke" in one_error(err)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("grant", "alice", "nope", "--role", "operator"), "no workspace 'nope'"),
        (("grant", "alice", "acme", "--role", "admin"), "Invalid value for '--role'"),
        (("grant", "alice", "acme"), "--role is required"),
        (("grant", "a b", "acme", "--role", "viewer"), "ACTOR must be 1 to 128"),
        (("grant", "x" * 129, "acme", "--role", "viewer"), "ACTOR must be 1 to 128"),
        (("revoke", "alice", "nope"), "no workspace 'nope'"),
        (("revoke", "'; drop", "acme"), "ACTOR must be 1 to 128"),
        (("list", "--workspace", "nope"), "no workspace 'nope'"),
    ],
)
def test_bad_input_is_one_error_line(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any, args: tuple[str, ...],
    says: str
) -> None:  # fmt: skip
    before = events(app), count(app, AccessGrant)
    code, out, err = as_actor("alice", "access", *args)
    assert (code, out) == (2, "")
    assert says in one_error(err)
    assert (events(app), count(app, AccessGrant)) == before


def test_an_unusable_actor_name_is_refused_before_anything_is_written(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    """With entitlements on, even a read needs a usable name (it is what the grants name)."""
    _, _, acme_run, _ = two
    before = events(app)
    code, _, err = as_actor("not a name", "runs", "show", str(acme_run))
    assert code == 2 and "OPSRECON_ACTOR must be" in one_error(err)
    assert events(app) == before


def test_the_check_itself_passes_everyone_while_no_grant_exists(
    app: AppContext, scope: Scope
) -> None:
    """``entitlements.check`` (beneath every command's check) is off without grants, and on
    with one, for an actor who holds nothing."""
    with app.sessions() as s:
        entitlements.check(s, "zoe", [scope.workspace_id], "operator", "operations start")
    with app.sessions.begin() as s:
        entitlements.grant(s, "alice", "alice", scope.workspace_id, "operator")
    with app.sessions() as s, pytest.raises(entitlements.AccessRefused) as refused:
        entitlements.check(s, "zoe", [scope.workspace_id], "viewer", "runs show")
    assert refused.value.details.model_dump(exclude_none=True) == {
        "command": "runs show",
        "needed": "viewer",
    }


def test_access_events_show_grants_and_refusals_of_readable_workspaces_only(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    """What ``access events`` shows is what ``access_events`` holds, newest first, within
    the actor's workspaces; a workspace the actor may not read is refused like any read."""
    *_, globex_run = two
    code, _, _ = as_actor("bob", "runs", "show", str(globex_run))
    assert code == 2
    code, out, err = as_actor("alice", "access", "events", "--json")
    assert code == 0, err
    shown = [(e["action"], e["acted_by"], e["workspace_slug"]) for e in json.loads(out)]
    # bob's refusal happened in globex, which alice may not read either.
    assert shown == [
        ("access.granted", "alice", "acme"),
        ("access.granted", "alice", "acme"),
    ]
    assert len(events(app)) == 3
    code, out, err = as_actor("alice", "access", "events")
    assert code == 0, err
    assert "bob viewer" in out and "alice operator" in out
    code, out, err = as_actor("bob", "access", "events", "--workspace", "globex")
    assert code == 2 and "viewer role on workspace 'globex'" in one_error(err)
    # An operator of globex sees the refusal, in words.
    code, _, err = as_actor("alice", "access", "grant", "alice", "globex", "--role", "operator")
    assert code == 0, err
    code, out, err = as_actor("alice", "access", "events", "--workspace", "globex")
    assert code == 0, err
    assert "`runs show` (run" in out and "needs viewer, held no grant" in out


def test_a_listing_cannot_start_after_a_run_of_another_workspace(
    app: AppContext, two: tuple[Scope, Scope, int, int], as_actor: Any
) -> None:
    """``--before-id`` of a run the actor may not read would tell where it stands."""
    *_, acme_run, globex_run = two
    code, out, err = as_actor("bob", "runs", "list", "--before-id", str(globex_run))
    assert code == 2 and "viewer role on workspace 'globex'" in one_error(err), out + err
    code, out, err = as_actor("bob", "runs", "list", "--before-id", str(acme_run), "--json")
    assert code == 0, err
