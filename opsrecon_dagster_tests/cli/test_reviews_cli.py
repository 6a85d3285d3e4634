"""``opsrecon reviews``: list, show, publish, supersede and archive as an operator uses them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.review import compose_review, current_fingerprint
from opsrecon_dagster.cli.main import cli
from opsrecon_dagster.db.models import EnvironmentReview, OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster_tests.conftest import Scope, add_inventory_item


def _invoke(app: AppContext, *args: str) -> tuple[int, str, str]:
    url = app.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--database-url", url, *args])
    return result.exit_code, result.stdout, result.stderr


def _composed(app: AppContext, scope: Scope, item: str) -> int:
    """A review composed by its own run, after one more inventory item (a new fingerprint)."""
    with app.sessions() as s:
        fp = current_fingerprint(s, scope.workspace_id, scope.environment_id)
    run_id = app.runs.start(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(fingerprint=fp, trigger=item),
    ).run.id
    add_inventory_item(app, scope, run_id, item)
    with app.sessions() as s:
        run = s.get(OperationRun, run_id)
        assert run is not None
        run_scope = load_scope(s, run)
    review_id, adopted = compose_review(app.sessions, run_scope, lambda _p: None)
    assert not adopted
    return review_id


def test_publish_then_publish_a_newer_review_supersedes_the_first(
    app: AppContext, scope: Scope
) -> None:
    first = _composed(app, scope, "a")
    second = _composed(app, scope, "b")
    assert _invoke(app, "reviews", "publish", str(first)) == (
        0,
        f"review {first}: ready -> published\n",
        "",
    )
    code, out, _ = _invoke(app, "reviews", "publish", str(second))
    assert code == 0
    assert out.splitlines() == [
        f"review {second}: ready -> published",
        f"  superseded the earlier published review(s): [{first}]",
    ]
    code, out, _ = _invoke(app, "reviews", "list", "--environment", "acme.contoso", "--json")
    assert code == 0
    listed = {r["id"]: (r["status"], r["superseded_by_id"]) for r in json.loads(out)}
    assert listed == {second: ("published", None), first: ("superseded", second)}
    code, out, _ = _invoke(app, "reviews", "show", str(first), "--json")
    shown = json.loads(out)
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [
        ("composed", "job"),
        ("published", "operator"),
        ("superseded", "operator"),
    ]
    code, out, _ = _invoke(app, "reviews", "show", str(first))
    assert code == 0 and f"superseded by  review {second}" in out
    assert all(len(line) <= 100 for line in out.splitlines())


def test_supersede_and_archive_through_the_cli(app: AppContext, scope: Scope) -> None:
    old = _composed(app, scope, "a")
    new = _composed(app, scope, "b")
    code, out, _ = _invoke(app, "reviews", "supersede", str(old), "--by", str(new), "--json")
    assert code == 0
    assert json.loads(out) == {"id": old, "from_status": "ready", "to_status": "superseded"}
    assert _invoke(app, "reviews", "archive", str(old))[:2] == (
        0,
        f"review {old}: superseded -> archived\n",
    )
    with app.sessions() as s:
        row = s.get(EnvironmentReview, old)
        assert row is not None and (row.status, row.superseded_by_id) == ("archived", new)
    code, out, _ = _invoke(app, "reviews", "list", "--status", "archived")
    assert code == 0 and str(old) in out and "archived" in out


def test_mistakes_are_one_error_line_and_change_nothing(app: AppContext, scope: Scope) -> None:
    review = _composed(app, scope, "a")
    _invoke(app, "reviews", "archive", str(review))
    assert _invoke(app, "reviews", "publish", str(review)) == (
        2,
        "",
        f"error: review {review} is archived; it cannot be published\n",
    )
    assert _invoke(app, "reviews", "publish", "999") == (
        2,
        "",
        "error: review 999 does not exist\n",
    )
    other = _composed(app, scope, "b")
    code, _, err = _invoke(app, "reviews", "supersede", str(other), "--by", "999")
    assert (code, err) == (
        2,
        f"error: review 999 does not exist in the environment of review {other}\n",
    )
    code, _, err = _invoke(app, "reviews", "list", "--environment", "nope.nope")
    assert code == 2 and err.startswith("error: ")
    with app.sessions() as s:
        statuses = {r.id: r.status for r in s.query(EnvironmentReview)}
    assert statuses == {review: "archived", other: "ready"}
