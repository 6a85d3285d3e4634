"""Run listings read through indexes in listing order, whatever the history; evidence reads
as labelled lines in both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Evidence
from opsrecon_dagster.operations.queries import RunFilter, evidence_lines, format_value, page_runs
from opsrecon_dagster.operations.reasons import EVIDENCE_LABELS, LANGUAGES
from opsrecon_dagster_tests.conftest import Scope, make_scope

HISTORY_RUNS = 30_000
START = datetime(2026, 1, 1, tzinfo=UTC)
OUTCOMES = ["succeeded"] * 7 + ["failed", "blocked", "partially_succeeded"]


def _seed(app: AppContext, scopes: list[Scope]) -> None:
    types = [t.value for t in OperationType]
    rows = []
    for i in range(HISTORY_RUNS):
        scope = scopes[i % len(scopes)]
        open_ = i % 100 == 0
        rows.append(
            {
                "workspace_id": scope.workspace_id,
                "managed_environment_id": scope.environment_id,
                "type": types[i % len(types)],
                "status": "running" if open_ else "completed",
                "outcome": None if open_ else OUTCOMES[i % len(OUTCOMES)],
                "reason_code": None if open_ else "history",
                "input_hash": f"h{i:063d}",
                "identity_key": f"k{i:063d}",
                "context": {},
                "created_at": START + timedelta(minutes=i),
                "last_progress_at": START + timedelta(minutes=i),
                "completed_at": None if open_ else START + timedelta(minutes=i + 1),
            }
        )
    with app.engine.begin() as conn:
        conn.execute(insert(OperationRun), rows)
        conn.execute(text("ANALYZE"))


def _explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    return [str(row[-1]) for row in rows]


# PostgreSQL may sort what an index found when it expects that to be little (e.g. one
# environment's runs of one type): a bounded sort, never one over the history.
SMALL_SORT_ROWS = 1_000


def _unindexed(dialect: str, plan: list[str]) -> list[str]:
    """Plan lines that read the whole table, or sort more than a few rows."""
    if dialect == "sqlite":
        bad = re.compile(r"^SCAN operation_runs$|USE TEMP B-TREE FOR ORDER BY")
        return [line for line in plan if bad.search(line.strip())]
    found = []
    for line in plan:
        if "Seq Scan on operation_runs" in line:
            found.append(line)
        # An incremental sort only orders rows of equal created_at by id: it reads in order.
        sort = re.search(r"(?<!Incremental )Sort  \(cost=[\d.]+ rows=(\d+)", line)
        if sort and int(sort.group(1)) > SMALL_SORT_ROWS:
            found.append(line)
    return found


@pytest.fixture
def seeded(app: AppContext) -> tuple[AppContext, list[Scope]]:
    scopes = [make_scope(app, f"ws{i % 3}", f"env-{i}") for i in range(12)]
    _seed(app, scopes)
    return app, scopes


def test_every_listing_reads_in_order_through_an_index(
    seeded: tuple[AppContext, list[Scope]],
) -> None:
    app, scopes = seeded
    with app.sessions() as session:
        cursor = page_runs(session, RunFilter(limit=1)).runs[0].id - 5_000
    scope = scopes[3]
    since = START + timedelta(days=5)
    filters = {
        "none": RunFilter(),
        "status": RunFilter(status="completed"),
        "outcome": RunFilter(outcome="failed"),
        "type": RunFilter(op_type="inventory.sync"),
        "workspace": RunFilter(workspace_id=scope.workspace_id),
        "environment": RunFilter(
            workspace_id=scope.workspace_id, environment_id=scope.environment_id
        ),
        "environment+type": RunFilter(
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            op_type="inventory.sync",
        ),
        "since": RunFilter(since=since),
        "window": RunFilter(since=since, until=since + timedelta(days=3)),
        "outcome+workspace+since": RunFilter(
            outcome="blocked", workspace_id=scope.workspace_id, since=since
        ),
        "next page": RunFilter(before_id=cursor),
        "type, next page": RunFilter(op_type="inventory.sync", before_id=cursor),
        "environment, next page": RunFilter(
            workspace_id=scope.workspace_id, environment_id=scope.environment_id, before_id=cursor
        ),
    }
    found: dict[str, list[str]] = {}
    statements: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, many: bool) -> None:
        statements.append((stmt, params))

    for name, flt in filters.items():
        event.listen(app.engine, "before_cursor_execute", record)
        try:
            with app.sessions() as session:
                page = page_runs(session, flt)
        finally:
            event.remove(app.engine, "before_cursor_execute", record)
        assert page.runs, name  # a real page
        listing = statements[-1]
        bad = _unindexed(app.engine.dialect.name, _explain(app.engine, *listing))
        if bad:
            found[name] = bad
    assert found == {}


def test_paging_is_newest_first_without_gaps_or_repeats(
    seeded: tuple[AppContext, list[Scope]],
) -> None:
    app, _ = seeded
    flt = RunFilter(op_type="inventory.sync", since=START + timedelta(days=15), limit=700)
    seen: list[OperationRun] = []
    with app.sessions() as session:
        while True:
            page = page_runs(session, flt)
            seen.extend(page.runs)
            if page.next_before_id is None:
                break
            flt = RunFilter(
                op_type=flt.op_type, since=flt.since, limit=flt.limit, before_id=page.next_before_id
            )
    keys = [(r.created_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)
    expected = [
        i + 1
        for i in range(HISTORY_RUNS)
        if i % len(OperationType) == 0
        and START + timedelta(minutes=i) >= START + timedelta(days=15)
    ]
    assert sorted(r.id for r in seen) == expected


def test_every_evidence_field_has_a_label_in_each_language() -> None:
    assert set(EVIDENCE_LABELS) == set(Evidence.model_fields)
    for en, de in EVIDENCE_LABELS.values():
        assert en and de and en != de


@pytest.mark.parametrize("language", LANGUAGES)
def test_evidence_lines_are_labelled_and_formatted(language: Any) -> None:
    evidence = Evidence(
        workspace_id=3,
        artifact_kind="backup_set",
        artifact_ids=[4, 5],
        counts={"items_captured": 2, "items_failed": 1},
        dagster_run_status=None,
    ).model_dump(mode="json")
    lines = evidence_lines(evidence, language)
    assert [line["key"] for line in lines] == list(Evidence.model_fields)  # schema order
    by_key = {line["key"]: line for line in lines}
    label = EVIDENCE_LABELS["artifact_ids"][LANGUAGES.index(language)]
    assert by_key["artifact_ids"] == {"key": "artifact_ids", "label": label, "value": "4, 5"}
    assert by_key["counts"]["value"] == "items_captured=2, items_failed=1"
    assert by_key["dagster_run_status"]["value"] == "-"
    assert by_key["considered_ids"]["value"] == "-"
    assert format_value(0) == "0"
