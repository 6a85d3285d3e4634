"""The ``opsrecon`` command line: database upgrade, run listings, demo.

User mistakes (bad URL, unknown id, unmigrated database, unreachable server) end with a
one-line ``error:`` message and exit code 2, never a traceback. Commands that talk to
Dagster import it inside the command, so that the others (and ``--help``) start fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.inventory import DEFAULT_POLICY_TYPES
from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.cli.common import (
    DB_ID,
    UserError,
    app_of,
    cells,
    console,
    emit_json,
    packed_lines,
    table,
    user_errors,
)
from opsrecon_dagster.cli.reviews import reviews
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import describe_url
from opsrecon_dagster.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.catalog import (
    OperationType,
    parse_operation_type,
)
from opsrecon_dagster.operations.context import RunContext, RunInputs
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
)
from opsrecon_dagster.providers.fixture import (
    DEFAULT_FIXTURE_FILE,
    FixtureEnvironment,
    load_fixture_config,
)
from opsrecon_dagster.settings import LANGUAGE_VAR, Settings, dagster_ui_url
from opsrecon_dagster.tenancy import (
    environment_profile,
    environment_schedule,
    environment_schedules,
    resolve_environment,
    resolve_workspace,
)

F = TypeVar("F", bound=Callable[..., Any])


class StillOpen(UserError):
    """``--wait`` ran out of time; the run itself goes on."""

    exit_code = 1


# How often ``--wait`` looks at the row: a person watching, not a synchronization.
WAIT_POLL_SECONDS = 1.0


def print_reason_legend(codes: list[str | None], language: Language) -> None:
    """Each distinct reason code of a table once, with its message in ``language``."""
    seen = [c for i, c in enumerate(codes) if c and c not in codes[:i]]
    if not seen:
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for code in seen:
        grid.add_row(Text(code), Text(message(code, language)))
    out = console()
    out.print("Reasons:")
    out.print(grid)


class _RootGroup(click.Group):
    """The root command: a usage mistake (unknown option, bad value, missing argument) is
    one ``error:`` line and exit code 2, like every other user error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "opsrecon"
            click.echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            click.echo("interrupted" if interrupted else "aborted", err=True)
            sys.exit(130 if interrupted else 1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_RootGroup)
@click.option(
    "--database-url",
    envvar="OPSRECON_DATABASE_URL",
    default=None,
    help="Application database URL (default: SQLite file data/opsrecon.sqlite3).",
)
@click.option(
    "--lang",
    "language",
    envvar="OPSRECON_LANGUAGE",
    type=click.Choice(LANGUAGES, case_sensitive=False),
    default=None,
    help="Message language (default: en). Reason codes are printed beside every message.",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, language: str | None) -> None:
    """Prove the outcome of background operations from the artifacts they produced."""
    with user_errors():
        settings = Settings.from_env()
        settings = replace(
            settings,
            database_url=database_url or settings.database_url,
            language=parse_language(language) if language else settings.language,
        )
        app = AppContext(settings)
    ctx.obj = app
    ctx.call_on_close(app.dispose)


@cli.group()
def db() -> None:
    """Application database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations up to the newest schema (safe to repeat)."""
    app = app_of(ctx, migrated=False)
    with user_errors(app):
        before, after = migrate.upgrade(app.engine)
    where = describe_url(app.url)
    if before == after:
        click.echo(f"{where}: schema already at revision {after}")
    else:
        click.echo(f"{where}: upgraded {before or 'empty database'} -> {after}")


@cli.group()
def runs() -> None:
    """List and inspect operation runs."""


# Columns of the run tables that may wrap to fit 100 columns (ids and states never do).
WRAPPED = ("ENVIRONMENT",)
# `runs show` and `explain` fit this many columns (fewer in a narrower terminal).
DETAIL_WIDTH = 100
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
        flt = replace(flt, op_type=type_name, workspace_id=ws_id, environment_id=env_id)
        page = page_runs(session, flt)
        keys = partition_keys(session, page.runs)
        data = [run_summary(r, keys.get(r.managed_environment_id or -1)) for r in page.runs]
    if as_json:
        emit_json(data)
        return
    if not data:
        click.echo("no operation runs" + (" before that one" if before_id else ""))
        return
    _print_runs(data, app.language)
    if page.next_before_id is not None:
        click.echo(f"more runs: add --before-id {page.next_before_id} for the next page")


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
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers[:4])]
    state = max([len(headers[4])] + [max(len(r[4]), len(r[5])) for r in rows])
    if sum(widths) + state + 2 * (len(headers) - 1) <= out.width:
        t = table(*headers, wrap=WRAPPED)
        for run_id, created, op_type, env, outcome, reason in rows:
            t.add_row(*cells(run_id, created, op_type, env, f"{outcome}\n{reason}".strip()))
        out.print(t)
    else:
        # Narrow: the id, environment and type, then the state, its reason and the time.
        click.echo("ID  ENVIRONMENT  TYPE\n    STATE  REASON  CREATED\n")
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


def _reason(code: str | None, app: AppContext | Language) -> str:
    """A reason in the configured language, with its stable code beside it."""
    language = app if isinstance(app, str) else app.language
    return f"{message(code, language)} [{code}]" if code else "-"


def dagster_run_url(dagster_run_id: str) -> str:
    """The run's page in the Dagster UI, as ``launch.ui_link`` builds it (kept here so
    that reading a run does not import Dagster; a test keeps the two equal)."""
    return f"{dagster_ui_url()}/runs/{dagster_run_id}"


def _detail(app: AppContext, run_id: int) -> dict[str, Any]:
    with user_errors(app), app.sessions() as session:
        return run_detail(session, app.runs.get(run_id), app.catalog, dagster_run_url)


def _width() -> int:
    """Columns for the detail views: the terminal's (or ``$COLUMNS``), at most 100."""
    return min(console().width, DETAIL_WIDTH)


def _echo_wrapped(first: str, words: list[str], indent: int, gap: str = " ") -> None:
    """``first``, then the words joined by ``gap``, broken only between words within the
    width (an id, a code or a URL is never split); continuation lines start at ``indent``."""
    width, line = _width(), first
    for word in words:
        candidate = f"{line}{gap}{word}" if line.strip() else f"{line}{word}"
        if len(candidate) > width and line.strip():
            click.echo(line)
            line = " " * indent + word
        else:
            line = candidate
    click.echo(line)


def _echo_evidence(evidence: dict[str, Any] | None, language: Language, indent: str) -> None:
    lines = evidence_lines(evidence, language)
    if not lines:
        click.echo(f"{indent}-")
    for line in lines:
        values = line["value"].split(", ")
        words = [f"{v}," for v in values[:-1]] + values[-1:]
        _echo_wrapped(f"{indent}{line['label']}:", words, len(indent) + 4)


def _echo_next_step(code: str | None, language: Language) -> None:
    """The decision's next step, last, in the chosen language."""
    step = next_step(code, language)
    label = "Next step:" if language == "en" else "Nächster Schritt:"
    _echo_wrapped(
        label, (step or ("nothing to do" if language == "en" else "nichts zu tun")).split(), 2
    )


def _echo_links(detail: dict[str, Any]) -> None:
    links = detail["links"]
    click.echo("Links:")
    dagster = links["dagster_run_id"] or "-"
    click.echo(f"  Dagster run      {dagster}")
    if links["dagster_run_url"]:
        click.echo(f"                   {links['dagster_run_url']}")
    if links["asset_key"]:
        click.echo(f"  asset partition  {links['asset_key']} / {links['asset_partition'] or '-'}")
    else:
        click.echo("  asset partition  - (this type has no asset)")
    ids = ", ".join(str(i) for i in links["artifact_ids"]) or "-"
    kind = f"{links['artifact_kind']} " if links["artifact_kind"] else ""
    click.echo(f"  artifacts        {kind}{ids}")


def _echo_audit(detail: dict[str, Any], language: Language) -> None:
    """The audit trail, oldest first: one entry per row (its decision on the next line),
    what it replaced, what an ignored late report said, and the evidence of a decision
    that is no longer the run's (the standing one's is under "Evidence")."""
    click.echo("Audit trail:")
    standing = detail["decision"] or {}
    for a in detail["audit"]:
        via = f" via {a['adapter']}" if a["adapter"] else ""
        _echo_wrapped(
            f"  {_short_time(a['created_at'])}",
            [
                a["action"],
                f"{a['from_status'] or '-'} -> {a['to_status']}",
                f"by {a['actor']}{via}",
            ],
            6,
            gap="  ",
        )
        if a["outcome"]:
            reason = _reason(a["reason_code"], language)
            _echo_wrapped(f"      {a['outcome']}:", reason.split(), 8)
        if a["previous_decision"]:
            prev = a["previous_decision"]
            reason = _reason(prev["reason_code"], language)
            _echo_wrapped(f"      replaces {prev['outcome']}:", reason.split(), 8)
        if a["reported"]:
            rep = a["reported"]
            reason = f"{_reason(rep['reason_code'], language)} (not applied)"
            _echo_wrapped(f"      reported {rep['outcome']}:", reason.split(), 8)
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
    detail = _detail(app, run_id)
    d = detail["decision"]
    if as_json:
        explanation = {
            "language": language,
            "message": message(d["reason_code"], language) if d else None,
            "evidence": evidence_lines(d.get("evidence") if d else None, language),
        }
        emit_json({**detail, "explanation": explanation})
        return
    click.echo(f"Run {detail['id']} ({detail['type']}) in {detail['partition_key'] or '-'}")
    if d is None:
        click.echo(f"Decision: none yet (status {detail['status']})")
    else:
        _echo_wrapped(
            f"Decision: {d['outcome']}:",
            f"{message(d['reason_code'], language)} [{d['reason_code']}]".split(),
            2,
        )
        click.echo(
            f"  decided by {d['decided_by']} via {d['adapter']} at {d['decided_at']}"
            f" (attempt {d.get('attempt', 1)})"
        )
        click.echo("Evidence:")
        _echo_evidence(d.get("evidence"), language, "  ")
    _echo_links(detail)
    for prev in detail["previous_decisions"]:
        said = f"{_reason(prev['reason_code'], language)} by {prev['decided_by']}"
        _echo_wrapped(f"Earlier decision: {prev['outcome']}:", said.split(), 2)
    for late in detail["late_reports"]:
        state = "applied" if late["applied"] else "not applied"
        said = f"{_reason(late['reason_code'], language)} ({state})"
        _echo_wrapped(f"Late job report: {late['reported_outcome']}:", said.split(), 2)
    _echo_audit(detail, language)
    _echo_raw_context(detail)
    _echo_next_step(d["reason_code"] if d else None, language)


def _echo_raw_context(detail: dict[str, Any]) -> None:
    """The stored context as JSON, the decisions' evidence left out (each is shown above
    once; ``--json`` has all of it)."""
    context = dict(detail["context"] or {})

    def shown(decision: Any, where: str) -> Any:
        if isinstance(decision, dict) and "evidence" in decision:
            return {**decision, "evidence": f"(see {where} above)"}
        return decision

    context["decision"] = shown(context.get("decision"), "Evidence")
    if isinstance(context.get("previous_decisions"), list):
        context["previous_decisions"] = [
            shown(d, "Audit trail") for d in context["previous_decisions"]
        ]
    context = {k: v for k, v in context.items() if v is not None}
    click.echo("Raw context:")
    click.echo(json.dumps(context, indent=2))


@runs.command("show")
@click.argument("run_id", type=DB_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """Show one run: decision first, then links and the audit trail, then raw context."""
    app = app_of(ctx)
    detail = _detail(app, run_id)
    if as_json:
        emit_json(detail)
        return
    decision = detail["decision"]
    click.echo(f"Run {detail['id']}  {detail['type']}  in {detail['partition_key'] or '-'}")
    click.echo(f"  status   {detail['status']}")
    if decision:
        _echo_wrapped(
            f"  outcome  {decision['outcome']}:",
            _reason(decision["reason_code"], app).split(),
            11,
        )
        click.echo(
            f"  decided  by {decision['decided_by']} via {decision['adapter']}"
            f" at {decision['decided_at']}"
        )
        click.echo("Evidence:")
        _echo_evidence(decision.get("evidence"), app.language, "  ")
    else:
        click.echo("  outcome  - (no decision yet)")
    _echo_links(detail)
    _echo_audit(detail, app.language)
    _echo_raw_context(detail)
    _echo_next_step(decision["reason_code"] if decision else None, app.language)


def _launch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--in-process``, ``--wait`` and ``--timeout``, shared by ``start`` and ``launch``."""
    for option in reversed(
        [
            click.option(
                "--in-process",
                is_flag=True,
                help="Execute the job in this process instead of submitting it to the "
                "instance (no daemon needed; the run still shows in the UI).",
            ),
            click.option(
                "--wait", is_flag=True, help="Wait until the operation run is final, with progress."
            ),
            click.option(
                "--timeout",
                type=click.IntRange(1, 24 * 3600),
                default=900,
                show_default=True,
                help="Seconds --wait waits.",
            ),
        ]
    ):
        command = option(command)
    return command


@cli.group()
def operations() -> None:
    """Start operations (creates the run row and launches its Dagster job)."""


@operations.command("start")
@click.argument("op_type", metavar="TYPE")
@click.option(
    "--environment",
    "environment",
    required=True,
    help="Environment id, partition key (acme.contoso) or workspace/environment.",
)
@click.option("--policy-type", "policy_types", multiple=True, help="Inventory sync: types.")
@click.option("--profile", "profile_id", type=DB_ID, default=None, help="Baseline profile id.")
@click.option("--schedule", "schedule_id", type=DB_ID, default=None, help="Backup schedule id.")
@click.option("--no-launch", is_flag=True, help="Only create the queued run row.")
@_launch_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def operations_start(
    ctx: click.Context,
    op_type: str,
    environment: str,
    policy_types: tuple[str, ...],
    profile_id: int | None,
    schedule_id: int | None,
    no_launch: bool,
    in_process: bool,
    wait: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """Start an operation for one environment; an identical active run is returned instead.

    Every option is checked against the catalog and the database before the row is
    written or anything is launched."""
    app = app_of(ctx)
    with user_errors(app):
        parsed = parse_operation_type(op_type)
        ws_id, env_id, inputs = _checked_inputs(
            app, parsed, environment, policy_types, profile_id, schedule_id
        )
        started = app.runs.start(parsed, workspace_id=ws_id, environment_id=env_id, inputs=inputs)
    run = started.run
    launched: dict[str, Any] | None = None
    if not started.created:
        note = f"operation run {run.id} is already active for this identity; not launching again"
    elif no_launch or not app.catalog.get(parsed).supported:
        note = f"operation run {run.id} queued (not launched)"
    else:
        launched = _launch(app, run.id, in_process=in_process, quiet=as_json)
        note = _launched_note(run.id, launched)
    if not as_json:
        click.echo(note)
    if launched is not None and wait and not in_process:
        _wait_for_decision(app, run.id, timeout, quiet=as_json)
    with user_errors(app), app.sessions() as session:
        final = app.runs.get(run.id)
        summary = run_summary(final, partition_keys(session, [run]).get(env_id))
    _print_started(summary, started.created, launched, _review_of(final), as_json, app.language)
    _exit_for(summary, wait=wait or in_process, launched=launched is not None)


def _checked_inputs(
    app: AppContext,
    op_type: OperationType,
    environment: str,
    policy_types: tuple[str, ...],
    profile_id: int | None,
    schedule_id: int | None,
) -> tuple[int, int, RunInputs]:
    """The run's workspace, environment and inputs, once every option has been checked
    against the catalog and the database (``UserError`` naming the first problem)."""
    _check_applicable(op_type, policy_types, profile_id, schedule_id)
    with app.sessions() as session:
        env = resolve_environment(session, environment)
        if policy_types:
            _check_policy_types(policy_types, env.partition_key)
        if profile_id is not None:
            environment_profile(session, env, profile_id)
        if op_type in NEEDS_SCHEDULE:
            if schedule_id is None:
                raise UserError(_schedule_needed(op_type, session, env))
            environment_schedule(session, env, schedule_id)
        fingerprint = (
            current_fingerprint(session, env.workspace_id, env.id)
            if op_type is OperationType.ENVIRONMENT_REVIEW_COMPOSE
            else None
        )
        inputs = RunInputs(
            policy_types=list(policy_types),
            baseline_profile_id=profile_id,
            backup_schedule_id=schedule_id,
            fingerprint=fingerprint,
            trigger="cli",
        )
        return env.workspace_id, env.id, inputs


def _echo_result(
    status: str, outcome: str | None, reason_code: str | None, language: Language
) -> None:
    """Where a started or launched run stands: status and outcome, the reason in words with
    its code, and the next step when the decision needs one."""
    _echo_wrapped(
        f"status {status}, outcome {outcome or '-'}:", _reason(reason_code, language).split(), 2
    )
    if outcome and (step := next_step(reason_code, language)) is not None:
        label = "Next step:" if language == "en" else "Nächster Schritt:"
        _echo_wrapped(label, step.split(), 2)


def _print_started(
    summary: dict[str, Any],
    created: bool,
    launched: dict[str, Any] | None,
    review_id: int | None,
    as_json: bool,
    language: Language,
) -> None:
    """The final state of a started run (and, for a review compose, its review)."""
    compose = summary["type"] == OperationType.ENVIRONMENT_REVIEW_COMPOSE.value
    if as_json:
        out: dict[str, Any] = {"created": created, "launched": launched, "run": summary}
        if compose:
            out["review_id"] = review_id
        emit_json(out)
        return
    _echo_result(summary["status"], summary["outcome"], summary["reason_code"], language)
    if compose and review_id is not None:
        verb = "reused" if summary["reason_code"] == "review_reused" else "composed"
        click.echo(f"review {review_id} {verb}")


# Which ``operations start`` options each type takes (the others are refused).
TYPE_OPTIONS: dict[OperationType, frozenset[str]] = {
    OperationType.INVENTORY_SYNC: frozenset({"--policy-type"}),
    OperationType.BASELINE_CAPTURE: frozenset({"--profile"}),
    OperationType.BACKUP_SCHEDULE_EXECUTE: frozenset({"--schedule"}),
    OperationType.BACKUP_RETENTION_PRUNE: frozenset({"--schedule"}),
}
NEEDS_SCHEDULE = frozenset(
    {OperationType.BACKUP_SCHEDULE_EXECUTE, OperationType.BACKUP_RETENTION_PRUNE}
)


def _check_applicable(
    op_type: OperationType,
    policy_types: tuple[str, ...],
    profile_id: int | None,
    schedule_id: int | None,
) -> None:
    """Refuse options the type does not take (they would change nothing but its identity)."""
    given = {
        name
        for name, present in (
            ("--policy-type", bool(policy_types)),
            ("--profile", profile_id is not None),
            ("--schedule", schedule_id is not None),
        )
        if present
    }
    takes = TYPE_OPTIONS.get(op_type, frozenset())
    for name in sorted(given - takes):
        accepted = ", ".join(sorted(takes)) or "none of --policy-type, --profile, --schedule"
        raise UserError(f"{name} does not apply to {op_type.value} (it takes: {accepted})")


def known_policy_types(partition_key: str) -> set[str]:
    """The policy types an inventory sync may ask for: the product's own (the types synced
    by default), and with the fixture provider the types its fixture gives the environment."""
    known = set(DEFAULT_POLICY_TYPES)
    if (os.environ.get("OPSRECON_PROVIDER") or "fixture") == "fixture":
        config = load_fixture_config(
            os.environ.get("OPSRECON_FIXTURE_PATH") or DEFAULT_FIXTURE_FILE
        )
        env = config.environments.get(partition_key) or FixtureEnvironment()
        known |= set(config.policy_types_of(env))
    return known


def _check_policy_types(policy_types: tuple[str, ...], partition_key: str) -> None:
    known = known_policy_types(partition_key)
    for i, policy_type in enumerate(policy_types):
        if policy_type not in known:
            raise UserError(
                f"unknown policy type {policy_type!r} (known: {', '.join(sorted(known))})"
            )
        if policy_type in policy_types[:i]:
            raise UserError(f"policy type {policy_type!r} is given twice")


def _schedule_needed(op_type: OperationType, session: Any, env: Any) -> str:
    schedules = environment_schedules(session, env)
    listed = ", ".join(f"{s.id} ({s.name})" for s in schedules) or "none"
    return f"{op_type.value} needs --schedule ID; schedules of {env.partition_key}: {listed}"


def _review_of(run: Any) -> int | None:
    """The review a finished compose run composed or reused: the one its proof names."""
    if run.status != RunStatus.COMPLETED.value or run.outcome != RunOutcome.SUCCEEDED.value:
        return None
    ctx = RunContext.load_or_none(run.context)
    if ctx is None or ctx.decision is None or len(ctx.decision.evidence.artifact_ids) != 1:
        return None
    return ctx.decision.evidence.artifact_ids[0]


@operations.command("launch")
@click.argument("run_id", type=DB_ID)
@_launch_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def operations_launch(
    ctx: click.Context, run_id: int, in_process: bool, wait: bool, timeout: int, as_json: bool
) -> None:
    """Launch the Dagster job of a queued operation run (e.g. one created with --no-launch)."""
    app = app_of(ctx)
    with user_errors(app):
        run = app.runs.get(run_id)
        if run.status != "queued":
            raise UserError(f"operation run {run_id} is {run.status}, not queued")
        if not app.catalog.get(run.type).supported:
            raise UserError(f"operation type {run.type} has no job to launch")
    launched = _launch(app, run_id, in_process=in_process, quiet=as_json)
    if not as_json:
        click.echo(_launched_note(run_id, launched))
    if wait and not in_process:
        _wait_for_decision(app, run_id, timeout, quiet=as_json)
    with user_errors(app):
        run = app.runs.get(run_id)
    summary = {"status": run.status, "outcome": run.outcome, "reason_code": run.reason_code}
    if as_json:
        emit_json({"launched": launched, **summary})
    else:
        click.echo(f"operation run {run_id}:")
        _echo_result(run.status, run.outcome, run.reason_code, app.language)
    _exit_for(summary, wait=wait or in_process, launched=True)


def _launch(app: AppContext, run_id: int, *, in_process: bool, quiet: bool) -> dict[str, Any]:
    """Submit the run's job to the instance in ``$DAGSTER_HOME`` (or execute it here)."""
    import dagster as dg

    from opsrecon_dagster.launch import (
        NotLaunchable,
        SubmitFailed,
        daemon_running,
        ensure_dagster_home,
        launch_operation_run,
        submit_operation_run,
        ui_link,
    )

    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        try:
            if in_process:
                # Dagster's own log stays in the instance (the UI); a blocked or failed run
                # fails its step by design, and the CLI prints the decision itself.
                result = launch_operation_run(app, run_id, instance, log_level="CRITICAL")
                return {
                    "dagster_run_id": result.run_id,
                    "dagster_status": result.dagster_run.status.value,
                    "in_process": True,
                    "ui_url": ui_link(result.run_id),
                }
            if not quiet:
                click.echo(f"submitting operation run {run_id} to the Dagster instance ...")
            submitted = submit_operation_run(app, run_id, instance)
        except (NotLaunchable, SubmitFailed) as exc:
            raise UserError(str(exc)) from None
        if submitted.status is dg.DagsterRunStatus.QUEUED and not daemon_running(instance):
            click.echo(
                "note: no dagster-daemon is running for this instance; the run stays queued "
                "until one is (`python3 tasks.py dev` runs one)",
                err=True,
            )
    return {
        "dagster_run_id": submitted.run_id,
        "dagster_status": submitted.status.value,
        "in_process": False,
        "ui_url": ui_link(submitted.run_id),
    }


def _launched_note(run_id: int, launched: dict[str, Any]) -> str:
    how = "ran in this process as" if launched["in_process"] else "submitted as"
    return (
        f"operation run {run_id} {how} Dagster run {launched['dagster_run_id']} "
        f"({launched['dagster_status']})\nUI: {launched['ui_url']}"
    )


def _wait_for_decision(app: AppContext, run_id: int, timeout: int, *, quiet: bool) -> None:
    """Follow the row (and its Dagster run) until it is final, printing each change."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    last: tuple[str, str, str] | None = None
    with dg.DagsterInstance.get() as instance:
        while True:
            with user_errors(app):
                run = app.runs.get(run_id)
            dagster = instance.get_run_by_id(run.dagster_run_id) if run.dagster_run_id else None
            phase = str((run.context or {}).get("progress", {}).get("phase", ""))
            state = (dagster.status.value if dagster else "-", run.status, phase)
            if state != last and not quiet:
                stamp = datetime.now().strftime("%H:%M:%S")
                detail = f" ({phase})" if phase else ""
                click.echo(f"  {stamp}  Dagster {state[0]}, operation run {run.status}{detail}")
            last = state
            if run.status == "completed":
                return
            if time.monotonic() >= deadline:
                raise StillOpen(
                    f"operation run {run_id} is still {run.status} after {timeout} s; it goes "
                    f"on (see `opsrecon runs show {run_id}`)"
                )
            time.sleep(WAIT_POLL_SECONDS)


def _exit_for(summary: dict[str, Any], *, wait: bool, launched: bool) -> None:
    """After a wait, the exit status says whether the run succeeded (1 when it did not)."""
    if wait and launched and summary["outcome"] != "succeeded":
        raise SystemExit(1)


@cli.command("reconcile")
@click.option("--type", "op_type", default=None, help="Only this operation type.")
@click.option("--workspace", default=None, help="Only this workspace (id or slug).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--dry-run", is_flag=True, help="Decide and print, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reconcile_command(
    ctx: click.Context,
    op_type: str | None,
    workspace: str | None,
    limit: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Finalize stale runs from proof: the same code path as the reconciliation sensor."""
    app = app_of(ctx)
    with user_errors(app):
        type_name = parse_operation_type(op_type).value if op_type else None
        with app.sessions() as session:
            ws_id = resolve_workspace(session, workspace).id if workspace else None
        rows, outbox_state = _reconcile_once(
            app, limit=limit, op_type=type_name, workspace_id=ws_id, dry_run=dry_run
        )
    if as_json:
        emit_json({"dry_run": dry_run, "runs": rows, "deliveries": outbox_state})
        return
    deliveries = (
        f"decisions shown in Dagster: {outbox_state['delivered']}; still to deliver: "
        f"{outbox_state['pending']} ({outbox_state['due']} due now)"
        + (f", unreadable: {outbox_state['unreadable']}" if outbox_state["unreadable"] else "")
    )
    if not rows:
        pending = outbox_state["pending"] or outbox_state["delivered"]
        click.echo(f"no stale operation runs; {deliveries}" if pending else "nothing to do")
        return
    # OUTCOME: the decision (none yet: -), with its reason code below it.
    t = table("ID", "TYPE", "ENVIRONMENT", "OUTCOME", "WRITTEN", wrap=WRAPPED)
    for row in rows:
        verb = "would decide" if dry_run else (row["written"] or "no decision")
        outcome = f"{row['outcome'] or '-'}\n{row['reason_code']}"
        t.add_row(*cells(row["id"], row["type"], row["partition_key"], outcome, verb))
    console().print(t)
    print_reason_legend([str(r["reason_code"]) for r in rows], app.language)
    if not dry_run:
        click.echo(deliveries)


def _reconcile_once(
    app: AppContext, *, limit: int, op_type: str | None, workspace_id: int | None, dry_run: bool
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One batch through the reconciliation service, on the instance in ``$DAGSTER_HOME``,
    then every due decision shown in Dagster; its decisions as rows (the ``--json`` shape),
    and the outbox's state after the delivery."""
    import dagster as dg

    from opsrecon_dagster.definitions import defs
    from opsrecon_dagster.instance.decisions import InstancePort
    from opsrecon_dagster.launch import ensure_dagster_home
    from opsrecon_dagster.operations import outbox
    from opsrecon_dagster.reconciliation.service import deliver, reconcile_batch

    ensure_dagster_home()
    delivered = 0
    with dg.DagsterInstance.get() as instance:
        port = InstancePort(instance, defs.resolve_job_def)
        results = reconcile_batch(
            app,
            port,
            limit=limit,
            op_type=op_type,
            workspace_id=workspace_id,
            dry_run=dry_run,
        )
        if not dry_run:
            delivered = deliver(app, port).entries
    with app.sessions() as session:
        left = outbox.backlog(session, datetime.now(UTC))
    rows = [
        {
            "id": r.run_id,
            "type": r.op_type,
            "partition_key": r.partition_key,
            "outcome": r.verdict.outcome.value if r.verdict.outcome else None,
            "reason_code": r.verdict.reason_code,
            "adapter": r.verdict.adapter,
            "written": r.status.value if r.status else None,
        }
        for r in results
    ]
    state = {
        "delivered": delivered,
        "pending": left.pending,
        "due": left.due,
        "unreadable": left.unreadable,
    }
    return rows, state


@cli.command("demo")
@click.pass_context
def demo_command(ctx: click.Context) -> None:
    """Run the end-to-end demo on embedded SQLite and a local Dagster instance (data/)."""
    from opsrecon_dagster.demo import run_demo

    app: AppContext = ctx.obj
    os.environ[LANGUAGE_VAR] = app.language  # its jobs, workers and reconciler speak it too
    rows = run_demo(click.echo)
    click.echo("")
    # DECIDED: the outcome, and below it who decided; "MISMATCH" beside a decision that is
    # not the expected one. Reason codes are never broken (the scenario text wraps instead).
    t = table("RUN", "SCENARIO", "ENVIRONMENT", "DECIDED", "REASON", wrap=("SCENARIO", "DECIDED"))
    for r in rows:
        decided = (
            r.decided if r.expected == r.decided else f"{r.decided} MISMATCH, expected {r.expected}"
        )
        t.add_row(
            *cells(r.run_id, r.label, r.environment, f"{decided}\nby {r.decided_by}", r.reason)
        )
    console().print(t)
    print_reason_legend([r.reason for r in rows], app.language)
    mismatches = [r for r in rows if r.expected != r.decided]
    if mismatches:
        raise UserError(f"{len(mismatches)} run(s) decided differently than expected")
    click.echo(
        f"\nall {len(rows)} runs decided as expected. Next: python3 tasks.py dev "
        "(opens this demo's Dagster instance in the UI)"
    )


cli.add_command(reviews)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(standalone_mode=True, prog_name="opsrecon")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
