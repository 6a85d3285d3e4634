"""The ``opsrecon`` command line: database upgrade, run listings, demo.

User mistakes (bad URL, unknown id, unmigrated database, unreachable server) end with a
one-line ``error:`` message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import DatabaseUrlError, describe_url
from opsrecon_dagster.operations.catalog import CatalogConfigError, parse_operation_type
from opsrecon_dagster.operations.enums import RunStatus
from opsrecon_dagster.operations.lifecycle import RunNotFoundError, ScopeError
from opsrecon_dagster.operations.queries import list_runs, partition_keys, run_detail, run_summary
from opsrecon_dagster.operations.reasons import (
    LANGUAGES,
    UnknownLanguageError,
    message,
    parse_language,
)
from opsrecon_dagster.settings import LANGUAGE_VAR, AppContext, Settings
from opsrecon_dagster.tenancy import TenancyError, resolve_workspace

F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUrlError,
    migrate.SchemaNotCurrentError,
    RunNotFoundError,
    ScopeError,
    TenancyError,
    CatalogConfigError,
    UnknownLanguageError,
)


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class StillOpen(UserError):
    """``--wait`` ran out of time; the run itself goes on."""

    exit_code = 1


# How often ``--wait`` looks at the row: a person watching, not a synchronization.
WAIT_POLL_SECONDS = 1.0


@contextmanager
def user_errors(app: AppContext | None = None) -> Iterator[None]:
    """Turn known failures into one-line errors; raw driver text is never printed."""
    try:
        yield
    except USER_ERRORS as exc:
        raise UserError(str(exc)) from None
    except OperationalError:
        where = describe_url(app.url) if app is not None else "the application database"
        raise UserError(
            f"cannot use the application database at {where} (is it reachable and writable?)"
        ) from None
    except SQLAlchemyError as exc:
        raise UserError(f"database error ({type(exc).__name__})") from None


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group()
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


def _app(ctx: click.Context, *, migrated: bool = True) -> AppContext:
    app: AppContext = ctx.obj
    if migrated:
        with user_errors(app):
            migrate.ensure_current(app.engine)
    return app


@cli.group()
def db() -> None:
    """Application database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations up to the newest schema (safe to repeat)."""
    app = _app(ctx, migrated=False)
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


@runs.command("list")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--type", "op_type", default=None, help="Operation type, e.g. inventory.sync.")
@click.option("--workspace", default=None, help="Workspace id or slug.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_list(
    ctx: click.Context,
    status: str | None,
    op_type: str | None,
    workspace: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    app = _app(ctx)
    with user_errors(app), app.sessions() as session:
        type_name = parse_operation_type(op_type).value if op_type else None
        ws_id = resolve_workspace(session, workspace).id if workspace else None
        rows = list_runs(session, status=status, op_type=type_name, workspace_id=ws_id, limit=limit)
        keys = partition_keys(session, rows)
        data = [run_summary(r, keys.get(r.managed_environment_id or -1)) for r in rows]
    if as_json:
        _emit_json(data)
        return
    if not data:
        click.echo("no operation runs")
        return
    header = f"{'ID':>5}  {'TYPE':<27} {'ENVIRONMENT':<24} {'STATUS':<10} {'OUTCOME':<20} REASON"
    click.echo(header)
    for d in data:
        click.echo(
            f"{d['id']:>5}  {d['type']:<27} {d['partition_key'] or '-':<24} {d['status']:<10} "
            f"{d['outcome'] or '-':<20} {_reason(d['reason_code'], app)}"
        )


def _reason(code: str | None, app: AppContext) -> str:
    """A reason in the configured language, with its stable code beside it."""
    return f"{message(code, app.language)} [{code}]" if code else "-"


@runs.command("explain")
@click.argument("run_id", type=int)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES, case_sensitive=False),
    default=None,
    help="Message language (default: the global --lang / OPSRECON_LANGUAGE).",
)
@click.pass_context
def runs_explain(ctx: click.Context, run_id: int, lang: str | None) -> None:
    """Why a run has its outcome: decision first, then evidence, then history and raw context."""
    app = _app(ctx)
    language = parse_language(lang) if lang else app.language
    with user_errors(app), app.sessions() as session:
        detail = run_detail(session, app.runs.get(run_id))
    d = detail["decision"]
    click.echo(f"Run {detail['id']} ({detail['type']}) in {detail['partition_key'] or '-'}")
    if d is None:
        click.echo(f"Decision: none yet (status {detail['status']})")
    else:
        click.echo(
            f"Decision: {d['outcome']}: {message(d['reason_code'], language)}  [{d['reason_code']}]"
        )
        click.echo(
            f"  decided by {d['decided_by']} via {d['adapter']} at {d['decided_at']}"
            f" (attempt {d.get('attempt', 1)})"
        )
        click.echo("Evidence:")
        for key, value in d.get("evidence", {}).items():
            click.echo(f"  {key}: {value}")
    ctx_raw = detail["context"]
    for prev in ctx_raw.get("previous_decisions", []):
        click.echo(
            f"Earlier decision: {prev['outcome']} [{prev['reason_code']}] by {prev['decided_by']}"
        )
    for late in ctx_raw.get("late_completions", []):
        state = "applied" if late["applied"] else "recorded only"
        click.echo(f"Late job report: {late['reported_outcome']} [{late['reason_code']}] ({state})")
    click.echo("Audit trail:")
    for a in detail["audit"]:
        click.echo(f"  {a['created_at']}  {a['action']:<15} -> {a['to_status']:<9} by {a['actor']}")
    click.echo("Raw context:")
    click.echo(json.dumps(ctx_raw, indent=2))


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """Show one run: decision first, then the audit trail, then raw context."""
    app = _app(ctx)
    with user_errors(app), app.sessions() as session:
        detail = run_detail(session, app.runs.get(run_id))
    if as_json:
        _emit_json(detail)
        return
    decision = detail["decision"]
    click.echo(f"Run {detail['id']}  {detail['type']}  in {detail['partition_key'] or '-'}")
    click.echo(f"  status   {detail['status']}")
    if decision:
        click.echo(f"  outcome  {decision['outcome']}: {_reason(decision['reason_code'], app)}")
        click.echo(f"  decided  by {decision['decided_by']} via {decision['adapter']}")
    else:
        click.echo("  outcome  - (no decision yet)")
    click.echo(f"  dagster  {detail['dagster_run_id'] or '-'}")
    click.echo("Audit trail:")
    for a in detail["audit"]:
        click.echo(
            f"  {a['created_at']}  {a['action']:<15} {a['from_status'] or '-':>8} -> "
            f"{a['to_status']:<9} by {a['actor']}"
            + (f"  {a['outcome']}: {_reason(a['reason_code'], app)}" if a["outcome"] else "")
        )
    click.echo("Raw context:")
    click.echo(json.dumps(detail["context"], indent=2))


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
@click.option("--profile", "profile_id", type=int, default=None, help="Baseline profile id.")
@click.option("--schedule", "schedule_id", type=int, default=None, help="Backup schedule id.")
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
    """Start an operation for one environment; an identical active run is returned instead."""
    from opsrecon_dagster.artifacts.review import current_fingerprint
    from opsrecon_dagster.operations.context import RunInputs
    from opsrecon_dagster.tenancy import resolve_environment

    app = _app(ctx)
    with user_errors(app):
        parsed = parse_operation_type(op_type)
        with app.sessions() as session:
            env = resolve_environment(session, environment)
            fingerprint = (
                current_fingerprint(session, env.workspace_id, env.id)
                if parsed.value == "environment.review.compose"
                else None
            )
            ws_id, env_id = env.workspace_id, env.id
        inputs = RunInputs(
            policy_types=list(policy_types),
            baseline_profile_id=profile_id,
            backup_schedule_id=schedule_id,
            fingerprint=fingerprint,
            trigger="cli",
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
        summary = run_summary(app.runs.get(run.id), partition_keys(session, [run]).get(env_id))
    if as_json:
        _emit_json({"created": started.created, "launched": launched, "run": summary})
    else:
        click.echo(
            f"status {summary['status']}, outcome {summary['outcome'] or '-'}"
            f" ({summary['reason_code'] or '-'})"
        )
    _exit_for(summary, wait=wait or in_process, launched=launched is not None)


@operations.command("launch")
@click.argument("run_id", type=int)
@_launch_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def operations_launch(
    ctx: click.Context, run_id: int, in_process: bool, wait: bool, timeout: int, as_json: bool
) -> None:
    """Launch the Dagster job of a queued operation run (e.g. one created with --no-launch)."""
    app = _app(ctx)
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
        _emit_json({"launched": launched, **summary})
    else:
        click.echo(
            f"operation run {run_id}: {run.status} {run.outcome or ''} ({run.reason_code or '-'})"
        )
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
    import dagster as dg

    from opsrecon_dagster.definitions import defs
    from opsrecon_dagster.launch import ensure_dagster_home
    from opsrecon_dagster.resources import AppDatabaseResource
    from opsrecon_dagster.sensors.reconciliation import deliver, reconcile_batch

    app = _app(ctx)
    with user_errors(app):
        type_name = parse_operation_type(op_type).value if op_type else None
        with app.sessions() as session:
            ws_id = resolve_workspace(session, workspace).id if workspace else None
        ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            app_db = AppDatabaseResource(
                database_url=app.url.render_as_string(False), language=app.language
            )
            batch = reconcile_batch(
                instance,
                app_db,
                limit=limit,
                op_type=type_name,
                workspace_id=ws_id,
                dry_run=dry_run,
                jobs=defs.resolve_job_def,
            )
            deliver(instance, app_db, batch.delivery)
            results = batch.results
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
    if as_json:
        _emit_json({"dry_run": dry_run, "runs": rows})
        return
    if not rows:
        click.echo("no stale operation runs")
        return
    for row in rows:
        verb = "would decide" if dry_run else (row["written"] or "no decision")
        click.echo(
            f"{row['id']:>5}  {row['type']:<27} {row['partition_key'] or '-':<20} "
            f"{row['outcome'] or '-':<20} {verb:<13} {_reason(str(row['reason_code']), app)}"
        )


@cli.command("demo")
@click.pass_context
def demo_command(ctx: click.Context) -> None:
    """Run the end-to-end demo on embedded SQLite and a local Dagster instance (data/)."""
    from opsrecon_dagster.demo import run_demo

    app: AppContext = ctx.obj
    os.environ[LANGUAGE_VAR] = app.language  # its jobs, workers and reconciler speak it too
    rows = run_demo(click.echo)
    click.echo("")
    click.echo(
        f"{'RUN':>4}  {'SCENARIO':<44} {'TYPE':<27} {'ENVIRONMENT':<16} {'EXPECTED':<20} "
        f"{'DECIDED':<20} {'BY':<16} REASON"
    )
    for r in rows:
        mark = "" if r.expected == r.decided else "  <-- MISMATCH"
        click.echo(
            f"{r.run_id:>4}  {r.label:<44} {r.op_type:<27} {r.environment:<16} "
            f"{r.expected:<20} {r.decided:<20} {r.decided_by:<16} {_reason(r.reason, app)}{mark}"
        )
    mismatches = [r for r in rows if r.expected != r.decided]
    if mismatches:
        raise UserError(f"{len(mismatches)} run(s) decided differently than expected")
    click.echo(
        f"\nall {len(rows)} runs decided as expected. Next: python3 tasks.py dev "
        "(opens this demo's Dagster instance in the UI)"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
