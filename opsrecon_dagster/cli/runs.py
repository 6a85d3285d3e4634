"""``opsrecon runs``: list runs, show one, explain its outcome.

Read-only: nothing here writes, and nothing imports Dagster (reading a run stays fast).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import click

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.access import listing_scope, require
from opsrecon_dagster.cli.common import (
    DB_ID,
    WRAPPED,
    UserError,
    app_of,
    by_whom,
    cells,
    console,
    detail_width,
    echo_wrapped,
    emit_json,
    packed_lines,
    print_reason_legend,
    reason_text,
    table,
    user_errors,
)
from opsrecon_dagster.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.catalog import (
    parse_operation_type,
)
from opsrecon_dagster.operations.queries import (
    RunFilter,
    evidence_lines,
    page_runs,
    partition_keys,
    run_detail,
    run_summary,
)
from opsrecon_dagster.operations.reasons import (
    LANGUAGES,
    Language,
    message,
    next_step,
    parse_language,
    word,
)
from opsrecon_dagster.settings import dagster_ui_url
from opsrecon_dagster.tenancy import (
    resolve_environment,
    resolve_workspace,
)


@click.group()
def runs() -> None:
    """List and inspect operation runs."""


STATUSES = tuple(s.value for s in RunStatus)

OUTCOMES = tuple(o.value for o in RunOutcome)

_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_status(value: str) -> str:
    """A run status; an outcome given as a status says where it belongs."""
    lowered = value.strip().lower()
    if lowered in STATUSES:
        return lowered
    if lowered in OUTCOMES:
        raise UserError(
            f"{lowered} is an outcome, not a status: use --outcome {lowered} "
            f"(statuses: {', '.join(STATUSES)})"
        )
    raise UserError(f"unknown status {value!r} (statuses: {', '.join(STATUSES)})")


def parse_outcome(value: str) -> str:
    """A run outcome; a status given as an outcome says where it belongs."""
    lowered = value.strip().lower()
    if lowered in OUTCOMES:
        return lowered
    if lowered in STATUSES:
        raise UserError(f"{lowered} is a status, not an outcome: use --status {lowered}")
    raise UserError(f"unknown outcome {value!r} (outcomes: {', '.join(OUTCOMES)})")


def parse_when(value: str, option: str, now: datetime) -> datetime:
    """An ISO date or datetime (naive means UTC), or a time ago such as ``30m``, ``2h``,
    ``7d``, ``1w``. A date alone given to ``--until`` covers that whole day."""
    text = value.strip()
    relative = _RELATIVE.match(text.lower())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return now - timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{option} {value!r} is not a time: use an ISO date or datetime "
            "(2026-05-01, 2026-05-01T08:00, 2026-05-01T08:00+02:00) or a time ago "
            "(30m, 2h, 7d, 1w)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if option == "--until" and _DATE_ONLY.match(text):
        when += timedelta(days=1)
    return when


@runs.command("list")
@click.option("--status", default=None, help=f"Run status: {', '.join(STATUSES)}.")
@click.option("--outcome", default=None, help=f"Decided outcome: {', '.join(OUTCOMES)}.")
@click.option("--type", "op_type", default=None, help="Operation type, e.g. inventory.sync.")
@click.option("--workspace", default=None, help="Workspace id or slug.")
@click.option(
    "--environment",
    default=None,
    help="Environment id, partition key (acme.contoso) or workspace/environment.",
)
@click.option("--since", default=None, help="Created at or after: ISO date/datetime, or 2h, 7d.")
@click.option("--until", default=None, help="Created before: ISO date/datetime, or 2h, 7d.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--before-id",
    type=click.IntRange(1),
    default=None,
    help="Next page: the runs listed after this run (the last id of the previous page).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_list(
    ctx: click.Context,
    status: str | None,
    outcome: str | None,
    op_type: str | None,
    workspace: str | None,
    environment: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    before_id: int | None,
    as_json: bool,
) -> None:
    """List runs, newest first, one page at a time (filters combine)."""
    now = datetime.now(UTC)
    flt = RunFilter(
        status=parse_status(status) if status else None,
        outcome=parse_outcome(outcome) if outcome else None,
        since=parse_when(since, "--since", now) if since else None,
        until=parse_when(until, "--until", now) if until else None,
        before_id=before_id,
        limit=limit,
    )
    if flt.since and flt.until and flt.since >= flt.until:
        raise UserError("--since must be earlier than --until")
    app = app_of(ctx)
    with user_errors(app), app.sessions() as session:
        type_name = parse_operation_type(op_type).value if op_type else None
        ws_id, env_id = _workspace_and_environment(session, workspace, environment)
    if before_id is not None:
        # The page starts after that run: its workspace must be readable too, or the
        # listing would tell where a run the actor may not see stands.
        with user_errors(app):
            cursor = app.runs.get(before_id)
        require(app, [cursor.workspace_id], "viewer", "runs list", f"run {before_id}")
    allowed = listing_scope(app, [ws_id], "runs list", "runs")
    flt = replace(
        flt, op_type=type_name, workspace_id=ws_id, environment_id=env_id, workspace_ids=allowed
    )
    with user_errors(app), app.sessions() as session:
        page = page_runs(session, flt)
        keys = partition_keys(session, page.runs)
        data = [run_summary(r, keys.get(r.managed_environment_id or -1)) for r in page.runs]
    if as_json:
        emit_json(data)
        return
    if not data:
        language = app.language
        click.echo(word("no_runs", language) + (word("before_that", language) if before_id else ""))
        return
    _print_runs(data, app.language)
    if page.next_before_id is not None:
        click.echo(word("more_runs", app.language).format(id=page.next_before_id))


def _workspace_and_environment(
    session: Any, workspace: str | None, environment: str | None
) -> tuple[int | None, int | None]:
    """The ids ``--workspace`` and ``--environment`` name (the environment must be in the
    workspace when both are given)."""
    ws_id = resolve_workspace(session, workspace).id if workspace else None
    if not environment:
        return ws_id, None
    env = resolve_environment(session, environment)
    if ws_id is not None and env.workspace_id != ws_id:
        raise UserError(f"environment {env.partition_key} is not in workspace {workspace!r}")
    return env.workspace_id, env.id


def _print_runs(data: list[dict[str, Any]], language: Language) -> None:
    """Run summaries as a table when it fits the width, else two lines per run; then the
    legend of their reason codes. Ids, codes and names are never broken."""
    # STATE: the outcome once completed, else the status (queued, running); below it the
    # reason code, whole (a code is never broken across lines).
    rows = [
        (
            str(d["id"]),
            _short_time(d["created_at"]) or "-",
            d["type"],
            d["partition_key"] or "-",
            d["outcome"] or d["status"],
            d["reason_code"] or "",
        )
        for d in data
    ]
    out = console()
    headers = ("ID", "CREATED", "TYPE", "ENVIRONMENT", "STATE")
    shown = [word(h, language) for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(shown[:4])]
    state = max([len(shown[4])] + [max(len(r[4]), len(r[5])) for r in rows])
    if sum(widths) + state + 2 * (len(headers) - 1) <= out.width:
        t = table(*headers, wrap=WRAPPED, language=language)
        for run_id, created, op_type, env, outcome, reason in rows:
            t.add_row(*cells(run_id, created, op_type, env, f"{outcome}\n{reason}".strip()))
        out.print(t)
    else:
        # Narrow: the id, environment and type, then the state, its reason and the time.
        first = "  ".join(word(h, language) for h in ("ID", "ENVIRONMENT", "TYPE"))
        second = "  ".join(word(h, language) for h in ("STATE", "REASON", "CREATED"))
        click.echo(f"{first}\n    {second}\n")
        for run_id, created, op_type, env, outcome, reason in rows:
            for line in packed_lines([run_id, env, op_type], out.width):
                click.echo(line)
            indent = len(run_id) + 2
            for line in packed_lines([outcome, reason, created], out.width, indent):
                click.echo(line)
    print_reason_legend([d["reason_code"] for d in data], language)


def _short_time(iso: str | None) -> str | None:
    """``2026-05-01T08:00:12.3+00:00`` as ``2026-05-01 08:00`` (UTC) for tables."""
    if iso is None:
        return None
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def dagster_run_url(dagster_run_id: str) -> str:
    """The run's page in the Dagster UI, as ``launch.ui_link`` builds it (kept here so
    that reading a run does not import Dagster; a test keeps the two equal)."""
    return f"{dagster_ui_url()}/runs/{dagster_run_id}"


def _detail(app: AppContext, run_id: int, command: str) -> dict[str, Any]:
    """The run's detail, once the actor may read its workspace (entitlements)."""
    with user_errors(app):
        workspace_id = app.runs.get(run_id).workspace_id
    require(app, [workspace_id], "viewer", command, f"run {run_id}")
    with user_errors(app), app.sessions() as session:
        return run_detail(session, app.runs.get(run_id), app.catalog, dagster_run_url)


def _echo_evidence(evidence: dict[str, Any] | None, language: Language, indent: str) -> None:
    lines = evidence_lines(evidence, language)
    if not lines:
        click.echo(f"{indent}-")
    for line in lines:
        values = line["value"].split(", ")
        words = [f"{v}," for v in values[:-1]] + values[-1:]
        echo_wrapped(f"{indent}{line['label']}:", words, len(indent) + 4)


def _echo_next_step(code: str | None, language: Language) -> None:
    """The decision's next step, last, in the chosen language."""
    step = next_step(code, language)
    label = f"{word('next_step', language)}:"
    echo_wrapped(label, (step or word("nothing to do", language)).split(), 2)


def _echo_links(detail: dict[str, Any], language: Language) -> None:
    links = detail["links"]
    labels = [word(k, language) for k in ("Dagster run", "asset partition", "artifacts")]
    pad = max(len(label) for label in labels) + 2

    def line(label: str, value: str) -> None:
        click.echo(f"  {label:<{pad}}{value}")

    click.echo(f"{word('Links', language)}:")
    line(labels[0], links["dagster_run_id"] or "-")
    if url := links["dagster_run_url"]:
        # Under the id; less indented where that would not fit (a URL is never broken).
        fits = 2 + pad + len(url) <= detail_width()
        click.echo(f"  {'':<{pad}}{url}" if fits else f"    {url}")
    if links["asset_key"]:
        line(labels[1], f"{links['asset_key']} / {links['asset_partition'] or '-'}")
    else:
        line(labels[1], word("no_asset", language))
    ids = ", ".join(str(i) for i in links["artifact_ids"]) or "-"
    kind = f"{links['artifact_kind']} " if links["artifact_kind"] else ""
    line(labels[2], f"{kind}{ids}")


def _echo_audit(detail: dict[str, Any], language: Language) -> None:
    """The audit trail, oldest first: one entry per row (its decision on the next line),
    what it replaced, what an ignored late report said, and the evidence of a decision
    that is no longer the run's (the standing one's is under "Evidence")."""
    click.echo(f"{word('Audit trail', language)}:")
    standing = detail["decision"] or {}
    for a in detail["audit"]:
        via = f" {word('via', language)} {a['adapter']}" if a["adapter"] else ""
        echo_wrapped(
            f"  {_short_time(a['created_at'])}",
            [
                a["action"],
                f"{a['from_status'] or '-'} -> {a['to_status']}",
                f"{word('by', language)} {by_whom(a['actor'], a['acted_by'])}{via}",
            ],
            6,
            gap="  ",
        )
        if a["outcome"]:
            reason = reason_text(a["reason_code"], language)
            echo_wrapped(f"      {a['outcome']}:", reason.split(), 8)
        if a["previous_decision"]:
            prev = a["previous_decision"]
            reason = reason_text(prev["reason_code"], language)
            replaces = word("replaces", language)
            echo_wrapped(f"      {replaces} {prev['outcome']}:", reason.split(), 8)
        if a["reported"]:
            rep = a["reported"]
            reason = (
                f"{reason_text(rep['reason_code'], language)} ({word('not applied', language)})"
            )
            reported = word("reported", language)
            echo_wrapped(f"      {reported} {rep['outcome']}:", reason.split(), 8)
        current = (a["outcome"], a["reason_code"]) == (
            standing.get("outcome"),
            standing.get("reason_code"),
        )
        if a["evidence"] and not current:
            _echo_evidence(a["evidence"], language, "      ")


def _language(app: AppContext, lang: str | None) -> Language:
    return parse_language(lang) if lang else app.language


@runs.command("explain")
@click.argument("run_id", type=DB_ID)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES, case_sensitive=False),
    default=None,
    help="Message language (default: the global --lang / OPSRECON_LANGUAGE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_explain(ctx: click.Context, run_id: int, lang: str | None, as_json: bool) -> None:
    """Why a run has its outcome: decision, evidence, links, history, raw context."""
    app = app_of(ctx)
    language = _language(app, lang)
    detail = _detail(app, run_id, "runs explain")
    d = detail["decision"]
    if as_json:
        explanation = {
            "language": language,
            "message": message(d["reason_code"], language) if d else None,
            "evidence": evidence_lines(d.get("evidence") if d else None, language),
        }
        emit_json({**detail, "explanation": explanation})
        return
    w = partial(word, language=language)
    partition = detail["partition_key"] or "-"
    click.echo(f"{w('Run')} {detail['id']} ({detail['type']}) {w('in')} {partition}")
    if d is None:
        click.echo(f"{w('Decision')}: {w('none_yet').format(status=detail['status'])}")
    else:
        echo_wrapped(
            f"{w('Decision')}: {d['outcome']}:",
            f"{message(d['reason_code'], language)} [{d['reason_code']}]".split(),
            2,
        )
        echo_wrapped(
            f"  {w('decided')}",
            f"{w('by')} {d['decided_by']} {w('via')} {d['adapter']} {w('at')} "
            f"{d['decided_at']} ({w('attempt')} {d.get('attempt', 1)})".split(),
            4,
        )
        click.echo(f"{w('Evidence')}:")
        _echo_evidence(d.get("evidence"), language, "  ")
    _echo_links(detail, language)
    for prev in detail["previous_decisions"]:
        said = f"{reason_text(prev['reason_code'], language)} {w('by')} {prev['decided_by']}"
        echo_wrapped(f"{w('Earlier decision')}: {prev['outcome']}:", said.split(), 2)
    for late in detail["late_reports"]:
        state = w("applied") if late["applied"] else w("not applied")
        said = f"{reason_text(late['reason_code'], language)} ({state})"
        echo_wrapped(f"{w('Late job report')}: {late['reported_outcome']}:", said.split(), 2)
    _echo_audit(detail, language)
    _echo_raw_context(detail, language)
    _echo_next_step(d["reason_code"] if d else None, language)


def _echo_raw_context(detail: dict[str, Any], language: Language) -> None:
    """The stored context as JSON, the decisions' evidence left out (each is shown above
    once; ``--json`` has all of it)."""
    context = dict(detail["context"] or {})

    def shown(decision: Any, where: str) -> Any:
        if isinstance(decision, dict) and "evidence" in decision:
            return {**decision, "evidence": word("see_above", language).format(where=where)}
        return decision

    context["decision"] = shown(context.get("decision"), word("Evidence", language))
    if isinstance(context.get("previous_decisions"), list):
        context["previous_decisions"] = [
            shown(d, word("Audit trail", language)) for d in context["previous_decisions"]
        ]
    context = {k: v for k, v in context.items() if v is not None}
    click.echo(f"{word('Raw context', language)}:")
    click.echo(json.dumps(context, indent=2))


@runs.command("show")
@click.argument("run_id", type=DB_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """Show one run: decision first, then links and the audit trail, then raw context."""
    app = app_of(ctx)
    detail = _detail(app, run_id, "runs show")
    if as_json:
        emit_json(detail)
        return
    decision = detail["decision"]
    language = app.language
    w = partial(word, language=language)
    labels = [w("status"), w("outcome_label"), w("decided")]
    pad = max(len(label) for label in labels) + 2
    partition = detail["partition_key"] or "-"
    click.echo(f"{w('Run')} {detail['id']}  {detail['type']}  {w('in')} {partition}")
    click.echo(f"  {labels[0]:<{pad}}{detail['status']}")
    if decision:
        echo_wrapped(
            f"  {labels[1]:<{pad}}{decision['outcome']}:",
            reason_text(decision["reason_code"], app).split(),
            pad + 2,
        )
        echo_wrapped(
            f"  {labels[2]:<{pad}}{w('by')}",
            f"{decision['decided_by']} {w('via')} {decision['adapter']} {w('at')} "
            f"{decision['decided_at']}".split(),
            pad + 2,
        )
        click.echo(f"{w('Evidence')}:")
        _echo_evidence(decision.get("evidence"), language, "  ")
    else:
        click.echo(f"  {labels[1]:<{pad}}{w('no_decision')}")
    _echo_links(detail, language)
    _echo_audit(detail, language)
    _echo_raw_context(detail, language)
    _echo_next_step(decision["reason_code"] if decision else None, language)
