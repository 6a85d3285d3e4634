"""The operator's command line: listing filters and paging, show/explain with audit trail and
links, evidence in the chosen language, and every input checked before anything is written."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli import operations as cli_operations
from opsrecon_dagster.cli import runs as cli_runs
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, Evidence, RunInputs
from opsrecon_dagster_tests.cli.test_cli import invoke
from opsrecon_dagster_tests.conftest import Scope, add_profile, add_schedule, decide, make_scope

NOW = datetime.now(UTC)


def url_of(app: AppContext) -> str:
    return app.url.render_as_string(hide_password=False)


def start(app: AppContext, scope: Scope, op: OperationType, tag: str, age: timedelta) -> int:
    """A run created ``age`` ago (``tag`` keeps identities apart)."""
    run = app.runs.start(
        op,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(policy_types=[tag]),
    ).run
    with app.engine.begin() as conn:
        conn.execute(
            update(OperationRun).where(OperationRun.id == run.id).values(created_at=NOW - age)
        )
    return run.id


@pytest.fixture
def history(app: AppContext) -> dict[str, Any]:
    """Runs of two types in three environments of two workspaces, decided differently, created
    over ten days (one per day, the newest first in id order too)."""
    acme = make_scope(app, "acme", "contoso")
    acme2 = make_scope(app, "acme", "fabrikam")
    globex = make_scope(app, "globex", "contoso")
    plan = [
        (acme, OperationType.INVENTORY_SYNC, RunOutcome.SUCCEEDED),
        (acme, OperationType.INVENTORY_SYNC, RunOutcome.FAILED),
        (acme2, OperationType.INVENTORY_SYNC, RunOutcome.BLOCKED),
        (acme, OperationType.BASELINE_CAPTURE, RunOutcome.PARTIALLY_SUCCEEDED),
        (globex, OperationType.INVENTORY_SYNC, RunOutcome.FAILED),
        (globex, OperationType.BASELINE_CAPTURE, RunOutcome.SUCCEEDED),
        (acme2, OperationType.BASELINE_CAPTURE, None),
        (acme, OperationType.INVENTORY_SYNC, RunOutcome.FAILED),
        (globex, OperationType.INVENTORY_SYNC, None),
        (acme, OperationType.BASELINE_CAPTURE, RunOutcome.SUCCEEDED),
    ]
    ids: dict[int, tuple[Scope, OperationType, RunOutcome | None, int]] = {}
    for i, (scope, op, outcome) in enumerate(plan):
        age_days = len(plan) - i  # 10 days ago ... 1 day ago
        run_id = start(app, scope, op, f"t{i}", timedelta(days=age_days, hours=1))
        if outcome is not None:
            decide(app, run_id, outcome, f"reason_{outcome.value}")
        ids[run_id] = (scope, op, outcome, age_days)
    return {"ids": ids, "acme": acme, "acme2": acme2, "globex": globex}


def listed(app: AppContext, *args: str) -> list[int]:
    code, out, err = invoke(url_of(app), "runs", "list", "--json", *args)
    assert code == 0, err
    return [row["id"] for row in json.loads(out)]


def test_list_filters_combine(app: AppContext, history: dict[str, Any]) -> None:
    ids = history["ids"]
    newest_first = sorted(ids, reverse=True)

    def expect(pred: Any) -> list[int]:
        return [i for i in newest_first if pred(*ids[i])]

    assert listed(app) == newest_first
    assert listed(app, "--outcome", "failed") == expect(
        lambda s, o, out, a: out is RunOutcome.FAILED
    )
    assert listed(app, "--status", "queued") == expect(lambda s, o, out, a: out is None)
    assert listed(app, "--status", "completed", "--type", "baseline.capture") == expect(
        lambda s, o, out, a: out is not None and o is OperationType.BASELINE_CAPTURE
    )
    acme, acme2, globex = history["acme"], history["acme2"], history["globex"]
    in_acme = expect(lambda s, o, out, a: s in (acme, acme2))
    assert listed(app, "--workspace", "acme") == in_acme
    assert listed(app, "--workspace", str(acme.workspace_id)) == in_acme
    contoso = expect(lambda s, o, out, a: s == acme)
    for ref in ("acme.contoso", "acme/contoso", str(acme.environment_id)):
        assert listed(app, "--environment", ref) == contoso, ref
    assert listed(app, "--environment", "globex.contoso", "--outcome", "failed") == expect(
        lambda s, o, out, a: s == globex and out is RunOutcome.FAILED
    )
    # Time windows: relative, ISO datetime, and a date alone for --until (the whole day).
    assert listed(app, "--since", "3d") == expect(lambda s, o, out, a: a <= 2)
    assert listed(app, "--since", "1w", "--until", "3d") == expect(lambda s, o, out, a: 3 <= a <= 6)
    day = (NOW - timedelta(days=5, hours=1)).date().isoformat()
    assert listed(app, "--since", day, "--until", day) == expect(lambda s, o, out, a: a == 5)
    since = (NOW - timedelta(days=2, hours=2)).replace(tzinfo=None).isoformat()
    assert listed(app, "--since", since) == expect(lambda s, o, out, a: a <= 2)


def test_list_pages_with_before_id(app: AppContext, history: dict[str, Any]) -> None:
    everything = listed(app)
    pages: list[list[int]] = []
    args: list[str] = ["--limit", "3"]
    while True:
        page = listed(app, *args)
        pages.append(page)
        if len(page) < 3:
            break
        args = ["--limit", "3", "--before-id", str(page[-1])]
    assert [i for p in pages for i in p] == everything
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    # The text listing says how to get the next page, and only when there is one.
    code, out, _ = invoke(url_of(app), "runs", "list", "--limit", "3")
    assert code == 0 and f"add --before-id {everything[2]} for the next page" in out
    code, out, _ = invoke(
        url_of(app), "runs", "list", "--limit", "3", "--before-id", str(everything[6])
    )
    assert code == 0 and "next page" not in out
    # Filters and paging together.
    failed = listed(app, "--outcome", "failed")
    assert listed(app, "--outcome", "failed", "--limit", "1", "--before-id", str(failed[0])) == [
        failed[1]
    ]
    code, _, err = invoke(url_of(app), "runs", "list", "--before-id", "999999")
    assert (code, err.strip()) == (2, "error: operation run 999999 not found")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--status", "failed"],
            "error: failed is an outcome, not a status: use --outcome failed "
            "(statuses: queued, running, completed)",
        ),
        (["--status", "stuck"], "error: unknown status 'stuck' (statuses: queued, running, "),
        (["--outcome", "queued"], "error: queued is a status, not an outcome: use --status queued"),
        (["--outcome", "ok"], "error: unknown outcome 'ok' (outcomes: succeeded, partially_"),
        (["--since", "yesterday"], "error: --since 'yesterday' is not a time: use an ISO date"),
        (["--since", "1d", "--until", "2d"], "error: --since must be earlier than --until"),
        (["--environment", "acme.nope"], "error: no managed environment has partition key"),
        (
            ["--workspace", "globex", "--environment", "acme.contoso"],
            "error: environment acme.contoso is not in workspace 'globex'",
        ),
        (["--limit", "0"], "error: Invalid value for '--limit': 0 is not in the range"),
        (["--colour"], "error: No such option '--colour'."),
    ],
)
def test_list_mistakes_are_one_line_errors(app: AppContext, args: list[str], expected: str) -> None:
    make_scope(app, "acme", "contoso")
    make_scope(app, "globex", "contoso")
    code, out, err = invoke(url_of(app), "runs", "list", *args)
    assert code == 2, out + err
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


def test_tables_fit_100_columns_without_colour(
    app: AppContext, history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = history["acme"]
    long = app.runs.start(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    decide(app, long.id, RunOutcome.PARTIALLY_SUCCEEDED, "materialization_disagrees_with_proof")
    # Piped, the output is laid out for 100 columns: these rows need 102 as a table, so
    # each run takes two lines, nothing broken.
    code, out, err = invoke(url_of(app), "runs", "list")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[3].split() == [str(long.id), "acme.contoso", "environment.review.compose"]
    assert lines[4].split()[:2] == ["partially_succeeded", "materialization_disagrees_with_proof"]
    monkeypatch.setenv("COLUMNS", "120")  # wide enough for the table
    headers = {
        "en": ["ID", "CREATED", "TYPE", "ENVIRONMENT", "STATE"],
        "de": ["ID", "ERSTELLT", "TYP", "UMGEBUNG", "ZUSTAND"],
    }
    for lang in ("en", "de"):
        code, out, err = invoke(url_of(app), "--lang", lang, "runs", "list")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == headers[lang]
        assert lines[3].split() == ["materialization_disagrees_with_proof"]  # never broken
        assert max(len(line) for line in lines) <= 120
        assert "\x1b[" not in out  # no colour codes when not a terminal
        # ID, CREATED (date and time), TYPE, ENVIRONMENT, STATE: never wrapped.
        assert lines[2].split()[3:6] == [
            "environment.review.compose",
            "acme.contoso",
            "partially_succeeded",
        ]
    # The legend gives each reason once, in the language chosen.
    flat = " ".join(out.split())
    assert "Gründe:" in flat and "Reasons:" not in flat
    assert flat.count("Eine Materialisierung nennt diesen Lauf mit einem anderen Ergebnis") == 1


def test_show_and_explain_give_audit_trail_links_and_evidence(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A no-proof reconciler decision, corrected once by a late report with proof, then a
    second late report that is not applied: the trail shows all three decisions' rows."""
    monkeypatch.setenv("OPSRECON_DAGSTER_UI_URL", "http://ui.example:3000/")
    scope = make_scope(app, "acme", "contoso")
    run = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    dagster_id = "0f0e0d0c-0b0a-4000-8000-000000000001"
    app.runs.mark_running(run.id, dagster_id)
    app.runs.reconcile(
        run.id,
        Decision(
            outcome=RunOutcome.FAILED,
            reason_code="stale_without_proof",
            adapter="inventory_sync",
            decided_by=Actor.RECONCILER,
            decided_at=datetime.now(UTC),
            evidence=Evidence(considered_total=0, dagster_run_status="STARTED"),
        ),
    )
    decide(
        app,
        run.id,
        RunOutcome.SUCCEEDED,
        "inventory_all_types_covered",
        artifact_kind="inventory_coverage",
        artifact_ids=[7, 8],
        counts={"types_requested": 2, "types_succeeded": 2},
    )
    decide(app, run.id, RunOutcome.FAILED, "job_execution_error")
    url = url_of(app)
    code, out, err = invoke(url, "runs", "show", str(run.id), "--json")
    assert code == 0, err
    detail = json.loads(out)
    assert detail["links"] == {
        "dagster_run_id": dagster_id,
        "dagster_run_url": f"http://ui.example:3000/runs/{dagster_id}",
        "asset_key": "inventory_items",
        "asset_partition": "acme.contoso",
        "artifact_kind": "inventory_coverage",
        "artifact_ids": [7, 8],
    }
    trail = detail["audit"]
    assert [a["action"] for a in trail] == [
        "run.queued",
        "run.running",
        "run.reconciled",
        "run.corrected",
        "run.late_report_ignored",
    ]
    assert [(a["from_status"], a["to_status"]) for a in trail] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "completed"),
        ("completed", "completed"),
        ("completed", "completed"),
    ]
    reconciled, corrected, ignored = trail[2:]
    assert (reconciled["actor"], reconciled["adapter"], reconciled["reason_code"]) == (
        "reconciler",
        "inventory_sync",
        "stale_without_proof",
    )
    assert reconciled["evidence"]["dagster_run_status"] == "STARTED"
    assert corrected["previous_decision"] == {
        "outcome": "failed",
        "reason_code": "stale_without_proof",
    }
    assert corrected["evidence"]["artifact_ids"] == [7, 8]
    # The ignored report: its own action, what it said, and the decision that stands.
    assert ignored["actor"] == "job"
    assert ignored["reported"] == {"outcome": "failed", "reason_code": "job_execution_error"}
    assert (ignored["outcome"], ignored["reason_code"]) == (
        "succeeded",
        "inventory_all_types_covered",
    )
    assert ignored["evidence"] is None
    assert detail["late_reports"][-1]["applied"] is False

    code, out, err = invoke(url, "runs", "explain", str(run.id), "--json", "--lang", "de")
    assert code == 0, err
    explained = json.loads(out)
    assert {k: explained[k] for k in ("links", "audit")} == {
        k: detail[k] for k in ("links", "audit")
    }
    assert explained["explanation"]["language"] == "de"
    assert explained["explanation"]["message"].startswith("Alle angeforderten Richtlinientypen")
    by_key = {e["key"]: e for e in explained["explanation"]["evidence"]}
    assert by_key["artifact_ids"] == {
        "key": "artifact_ids",
        "label": "Artefakt-IDs",
        "value": "7, 8",
    }
    assert by_key["counts"]["value"] == "types_requested=2, types_succeeded=2"

    for args in (["runs", "show", str(run.id)], ["runs", "explain", str(run.id)]):
        code, out, err = invoke(url, "--lang", "de", *args)
        assert code == 0, err
        lines = out.splitlines()
        trail_at = lines.index("Prüfpfad:")
        assert lines.index("Verweise:") < trail_at < lines.index("Gespeicherter Kontext:")
        text = "\n".join(lines[: lines.index("Gespeicherter Kontext:")])
        assert (
            f"Dagster-Lauf     {dagster_id}\n{' ' * 19}http://ui.example:3000/runs/{dagster_id}"
            in text
        )
        assert "Asset-Partition  inventory_items / acme.contoso" in text
        assert "Artefakte        inventory_coverage 7, 8" in text
        assert (
            "run.late_report_ignored  completed -> completed  von job über inventory_sync" in text
        )
        assert "gemeldet failed: Der Job ist mit einem Ausführungsfehler fehlgeschlagen." in text
        assert "ersetzt failed: Der Lauf ist ohne Fortschritt geblieben" in text
        # No English label of the product in German.
        english = [
            "Audit trail",
            "Links:",
            "Raw context",
            "Evidence:",
            "Decision:",
            " by ",
            " via ",
        ]
        english += ["replaces ", "reported ", "decided by", "Next step", "asset partition"]
        assert [e for e in english if e in out] == []
        assert "Artefakt-IDs: 7, 8" in text and "Dagster-Laufstatus: STARTED" in text
        assert "{'" not in text and "[]" not in text  # no Python dicts or lists as evidence
        # Each decision's evidence once, every line within 100 columns, the next step last.
        assert out.count("Artefakt-IDs: 7, 8") == 1, out
        assert out.count("Dagster-Laufstatus: STARTED") == 1, out
        assert max(len(line) for line in lines) <= 100
        assert lines[-1].startswith("Nächster Schritt: nichts zu tun")
    assert "Nachweise:\n  Arbeitsbereich-ID: -" not in out


def test_dagster_run_url_is_the_launchers_ui_link(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run links point where ``tasks.py dev`` serves the UI (the address it writes into its
    DAGSTER_HOME), unless ``OPSRECON_DAGSTER_UI_URL`` says otherwise."""
    from opsrecon_dagster.launch import ui_link

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("OPSRECON_DAGSTER_UI_URL", raising=False)
    assert cli_runs.dagster_run_url("abc-123") == "http://127.0.0.1:3000/runs/abc-123"
    (tmp_path / "ui_url").write_text("http://127.0.0.1:3300\n")  # as `tasks.py dev -p 3300`
    assert cli_runs.dagster_run_url("abc-123") == "http://127.0.0.1:3300/runs/abc-123"
    for base in (None, "https://dagster.example/x/"):
        if base is None:
            monkeypatch.delenv("OPSRECON_DAGSTER_UI_URL", raising=False)
        else:
            monkeypatch.setenv("OPSRECON_DAGSTER_UI_URL", base)
        assert cli_runs.dagster_run_url("abc-123") == ui_link("abc-123")
    assert ui_link("abc-123") == "https://dagster.example/x/runs/abc-123"


# ------------------------------------------------------------------ validation at the edge


def run_count(app: AppContext) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(OperationRun)) or 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["inventory.sync", "--policy-type", "notAType"],
            "error: unknown policy type 'notAType' (known: appProtectionPolicies, "
            "compliancePolicies, deviceConfigurations)",
        ),
        (
            ["inventory.sync", "--policy-type", "bad type!"],
            "error: unknown policy type 'bad type!'",
        ),
        (
            [
                "inventory.sync",
                "--policy-type",
                "compliancePolicies",
                "--policy-type",
                "compliancePolicies",
            ],
            "error: policy type 'compliancePolicies' is given twice",
        ),
        (
            ["baseline.capture", "--profile", "999"],
            "error: acme.contoso has no baseline profile 999",
        ),
        (["baseline.capture", "--profile", "OTHER_PROFILE"], "error: acme.contoso has no baseline"),
        (
            ["backup.schedule.execute"],
            "error: backup.schedule.execute needs --schedule ID; schedules of acme.contoso: "
            "SCHEDULE (nightly)",
        ),
        (["backup.schedule.execute", "--schedule", "999"], "error: acme.contoso has no backup sch"),
        (["backup.schedule.execute", "--schedule", "OTHER_SCHEDULE"], "error: acme.contoso has no"),
        (
            ["inventory.sync", "--profile", "PROFILE"],
            "error: --profile does not apply to inventory.sync (it takes: --policy-type)",
        ),
        (
            ["environment.review.compose", "--schedule", "SCHEDULE"],
            "error: --schedule does not apply to environment.review.compose (it takes: none of",
        ),
        (
            ["baseline.capture", "--profile", "x"],
            "error: --profile must be a whole number from 1 to",
        ),
        (
            ["restore.execute", "--policy-type", "compliancePolicies"],
            "error: --policy-type does not",
        ),
    ],
)
def test_start_inputs_are_checked_before_anything_is_written(
    app: AppContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: str,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(app, "acme", "contoso")
    other = make_scope(app, "acme", "fabrikam")
    names = {
        "PROFILE": add_profile(app, scope, [{"policy_type": "compliancePolicies"}]),
        "OTHER_PROFILE": add_profile(app, other, [{"policy_type": "compliancePolicies"}]),
        "SCHEDULE": add_schedule(app, scope),
        "OTHER_SCHEDULE": add_schedule(app, other),
    }
    real = [str(names.get(a, a)) for a in args]
    expected = expected.replace("SCHEDULE", str(names["SCHEDULE"]))
    code, out, err = invoke(
        url_of(app),
        "operations",
        "start",
        real[0],
        "--environment",
        scope.partition_key,
        *real[1:],
        "--in-process",
    )
    assert code == 2, out + err
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert run_count(app) == 0  # nothing written
    assert not (tmp_path / "dagster_home").exists()  # nothing launched


def test_a_pydantic_validation_error_is_a_user_error(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever input reaches the models unchecked ends as one ``error:`` line, without the
    offending value."""
    scope = make_scope(app, "acme", "contoso")
    monkeypatch.setattr(cli_operations, "known_policy_types", lambda _key: {"bad type!"})
    code, out, err = invoke(
        url_of(app),
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--policy-type",
        "bad type!",
    )
    assert code == 2
    assert err.startswith("error: invalid input: policy_types.0: String should match pattern")
    assert len(err.strip().splitlines()) == 1 and "bad type!" not in err
    assert "Traceback" not in out + err and run_count(app) == 0


def test_fixture_policy_types_are_known(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fixture provider, a type its fixture gives the environment may be synced."""
    fixture = tmp_path / "tenants.json"
    fixture.write_text(
        json.dumps({"environments": {"acme.contoso": {"policy_types": {"windowsUpdateRings": 2}}}})
    )
    monkeypatch.setenv("OPSRECON_FIXTURE_PATH", str(fixture))
    scope = make_scope(app, "acme", "contoso")
    code, out, err = invoke(
        url_of(app),
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--policy-type",
        "windowsUpdateRings",
        "--no-launch",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["run"]["status"] == "queued"
    monkeypatch.setenv("OPSRECON_PROVIDER", "http")
    code, _, err = invoke(
        url_of(app),
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--policy-type",
        "windowsUpdateRings",
    )
    assert code == 2 and "unknown policy type 'windowsUpdateRings'" in err


def test_review_compose_prints_the_review_it_composed_or_reused(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(app, "acme", "contoso")
    url = url_of(app)
    code, _, err = invoke(
        url,
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--in-process",
    )
    assert code == 0, err
    code, out, err = invoke(
        url,
        "operations",
        "start",
        "environment.review.compose",
        "--environment",
        scope.partition_key,
        "--in-process",
    )
    assert code == 0, err
    from opsrecon_dagster.db.models import EnvironmentReview

    with app.sessions() as s:
        [review] = s.scalars(select(EnvironmentReview)).all()
    # The outcome with its reason in words and the code beside it.
    assert (
        "status completed, outcome succeeded: The run composed a ready review. [review_composed]"
        in out
    )
    assert out.splitlines()[-1] == f"review {review.id} composed"
    code, out, err = invoke(
        url,
        "operations",
        "start",
        "environment.review.compose",
        "--environment",
        scope.partition_key,
        "--in-process",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["run"]["reason_code"], data["review_id"]) == ("review_reused", review.id)
    code, out, _ = invoke(url, "runs", "show", str(data["run"]["id"]), "--json")
    assert json.loads(out)["links"]["artifact_ids"] == [review.id]


# ------------------------------------------------------------------ databases that are not there


def test_db_upgrade_where_no_folder_can_be_made_is_an_error_line() -> None:
    code, out, err = invoke("sqlite:////proc/nope/x.db", "db", "upgrade")
    assert code == 2
    assert err.strip() == "error: cannot create the folder /proc/nope for the SQLite database"
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    "args",
    [["runs", "list"], ["runs", "show", "1"], ["runs", "explain", "1"], ["reconcile", "--dry-run"]],
)
def test_read_only_commands_never_create_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    target = tmp_path / "missing" / "dir" / "x.db"
    code, _, err = invoke(f"sqlite:///{target}", *args)
    assert code == 2
    assert err.strip() == (
        f"error: the application database sqlite:///{target} does not exist; "
        "run `opsrecon db upgrade` first"
    )
    assert not (tmp_path / "missing").exists()
    assert sorted(os.listdir(tmp_path)) == []


def test_demo_summary_table_fits_100_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's final table (its rows stubbed: the demo itself is test_demo.py's)."""
    from opsrecon_dagster import demo

    rows = [
        demo.DemoRow(
            run_id=1,
            label="worker killed mid-materialization",
            op_type="inventory.sync",
            environment="acme.contoso",
            expected="failed",
            decided="failed",
            reason="stale_without_proof",
            decided_by="reconciler",
        ),
        demo.DemoRow(
            run_id=12,
            label="waited in Dagster's run queue, then ran",
            op_type="environment.review.compose",
            environment="globex.contoso",
            expected="succeeded",
            decided="partially_succeeded",
            reason="materialization_disagrees_with_proof",
            decided_by="late_correction",
        ),
    ]
    monkeypatch.setattr(demo, "run_demo", lambda _echo: rows)
    monkeypatch.setenv("OPSRECON_LANGUAGE", "en")  # the demo sets it; restored after the test
    code, out, err = invoke(f"sqlite:///{tmp_path / 'x.db'}", "--lang", "de", "demo")
    assert code == 2 and err.strip() == "error: 1 Lauf/Läufe anders entschieden als erwartet"
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100 and "\x1b[" not in out
    assert lines[1].split() == ["LAUF", "SZENARIO", "UMGEBUNG", "ENTSCHIEDEN", "GRUND"]
    assert "ABWEICHUNG," in out and "erwartet succeeded" in " ".join(out.split())
    assert "materialization_disagrees_with_proof" in out  # a reason code is never broken
    assert "von late_correction" in out
    flat = " ".join(out.split())
    [row] = [i for i, line in enumerate(lines) if line.startswith("12 ")]
    assert "partially_succeeded" in lines[row] and "ABWEICHUNG," in lines[row + 1]
    assert "stale_without_proof Der Lauf ist ohne Fortschritt geblieben" in flat


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "show"],
        ["runs", "explain"],
        ["operations", "launch"],
        ["reviews", "show"],
        ["reviews", "publish"],
    ],
)
@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 7), "0", "12x"])
def test_ids_no_database_can_hold_are_one_line_errors(
    app: AppContext, command: list[str], value: str
) -> None:
    """An id beyond a signed 64-bit integer is refused before any query (SQLite would
    otherwise raise an overflow, PostgreSQL answer "not found")."""
    code, out, err = invoke(url_of(app), *command, value)
    assert code == 2, out + err
    assert err.startswith("error: ") and "must be a whole number from 1 to" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_runs_list_keeps_ids_codes_and_names_whole_at_any_width(
    app: AppContext, history: dict[str, Any], columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a terminal of 60, 80 or 120 columns every id, environment, type, outcome and
    reason code stands whole on one line, and no line of the runs is wider than the
    terminal (a table when it fits, two lines per run when it does not)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = invoke(url_of(app), "runs", "list", "--json")
    assert code == 0, err
    runs = json.loads(out)
    code, out, err = invoke(url_of(app), "runs", "list")
    assert code == 0, err
    body = out.split("Reasons:")[0].splitlines()
    assert all(len(line.rstrip()) <= columns for line in body), body
    tokens = {token for line in body for token in line.split()}
    for run in runs:
        for field in ("id", "type", "partition_key", "reason_code"):
            if run[field]:
                assert str(run[field]) in tokens, (field, run[field], body)
        assert (run["outcome"] or run["status"]) in tokens


def test_start_prints_the_outcome_in_words_and_the_next_step(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blocked start says why in the chosen language, with the code beside it, and what
    to do next; the exit code says it did not succeed."""
    from opsrecon_dagster.enums import Readiness

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    scope = make_scope(app, "acme", "contoso", readiness=Readiness.CONSENT_MISSING)
    code, out, err = invoke(
        url_of(app),
        "--lang",
        "de",
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--in-process",
    )
    assert code == 1, out + err
    text = " ".join(out.split())
    assert "status completed, outcome blocked: Die Administratorzustimmung" in text
    assert "[environment_consent_missing]" in text
    assert "Nächster Schritt: Erteilen Sie im Mandanten die Administratorzustimmung" in text
    assert max(len(line) for line in out.splitlines()) <= 100


def test_run_details_fit_an_80_column_terminal(
    app: AppContext, history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision's "decided by ... at <time>" line breaks between words like the rest,
    and the Dagster run's link (never broken) moves left where it would not fit."""
    scope = history["acme"]
    run = app.runs.start(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
    ).run
    app.runs.mark_running(run.id, "0f0e0d0c-0b0a-4000-8000-000000000001")
    decide(app, run.id, RunOutcome.PARTIALLY_SUCCEEDED, "materialization_disagrees_with_proof")
    monkeypatch.setenv("OPSRECON_DAGSTER_UI_URL", "http://127.0.0.1:3000/")
    monkeypatch.setenv("COLUMNS", "80")
    for lang in ("en", "de"):
        for command in ("show", "explain"):
            code, out, err = invoke(url_of(app), "--lang", lang, "runs", command, str(run.id))
            assert code == 0, err
            lines = out.splitlines()
            # Everything above the stored context (shown as the JSON it is).
            context_at = lines.index({"en": "Raw context:", "de": "Gespeicherter Kontext:"}[lang])
            too_wide = [line for line in lines[:context_at] if len(line) > 80]
            assert too_wide == [], (lang, command, too_wide)
            assert "    http://127.0.0.1:3000/runs/0f0e0d0c-" in out, out
