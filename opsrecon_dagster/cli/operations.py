"""``opsrecon operations``: start an operation (its run row, then its Dagster job) and
launch a queued one, optionally waiting for the decision.

Dagster is imported inside the commands that launch or wait, so that ``--help`` and the
checks before anything is written stay fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.inventory import DEFAULT_POLICY_TYPES
from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.cli.access import require
from opsrecon_dagster.cli.common import (
    DB_ID,
    UserError,
    acting_actor,
    app_of,
    echo_wrapped,
    emit_json,
    reason_text,
    user_errors,
)
from opsrecon_dagster.enums import RunOutcome, RunStatus
from opsrecon_dagster.operations.catalog import (
    OperationType,
    parse_operation_type,
)
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.operations.queries import (
    partition_keys,
    run_summary,
)
from opsrecon_dagster.operations.reasons import (
    Language,
    next_step,
)
from opsrecon_dagster.providers.fixture import (
    DEFAULT_FIXTURE_FILE,
    FixtureEnvironment,
    load_fixture_config,
)
from opsrecon_dagster.tenancy import (
    environment_profile,
    environment_schedule,
    environment_schedules,
    resolve_environment,
)


class StillOpen(UserError):
    """``--wait`` ran out of time; the run itself goes on."""

    exit_code = 1


# How often ``--wait`` looks at the row: a person watching, not a synchronization.
WAIT_POLL_SECONDS = 1.0


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


@click.group()
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
    actor = acting_actor()
    with user_errors(app):
        parsed = parse_operation_type(op_type)
        ws_id, env_id, inputs = _checked_inputs(
            app, parsed, environment, policy_types, profile_id, schedule_id
        )
    require(app, [ws_id], "operator", "operations start", parsed.value)
    with user_errors(app):
        started = app.runs.start(
            parsed, workspace_id=ws_id, environment_id=env_id, inputs=inputs, acted_by=actor
        )
    run = started.run
    launched: dict[str, Any] | None = None
    if not started.created:
        note = f"operation run {run.id} is already active for this identity; not launching again"
    elif no_launch or not app.catalog.get(parsed).supported:
        note = f"operation run {run.id} queued (not launched)"
    else:
        launched = _launch(app, run.id, actor, in_process=in_process, quiet=as_json)
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
    echo_wrapped(
        f"status {status}, outcome {outcome or '-'}:", reason_text(reason_code, language).split(), 2
    )
    if outcome and (step := next_step(reason_code, language)) is not None:
        label = "Next step:" if language == "en" else "Nächster Schritt:"
        echo_wrapped(label, step.split(), 2)


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
    actor = acting_actor()
    with user_errors(app):
        run = app.runs.get(run_id)
        if run.status != "queued":
            raise UserError(f"operation run {run_id} is {run.status}, not queued")
        if not app.catalog.get(run.type).supported:
            raise UserError(f"operation type {run.type} has no job to launch")
    require(app, [run.workspace_id], "operator", "operations launch", f"run {run_id}")
    launched = _launch(app, run_id, actor, in_process=in_process, quiet=as_json)
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


def _launch(
    app: AppContext, run_id: int, actor: str, *, in_process: bool, quiet: bool
) -> dict[str, Any]:
    """Submit the run's job to the instance in ``$DAGSTER_HOME`` (or execute it here);
    ``actor`` is audited as the one who launched it."""
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
                result = launch_operation_run(
                    app, run_id, instance, log_level="CRITICAL", acted_by=actor
                )
                return {
                    "dagster_run_id": result.run_id,
                    "dagster_status": result.dagster_run.status.value,
                    "in_process": True,
                    "ui_url": ui_link(result.run_id),
                }
            if not quiet:
                click.echo(f"submitting operation run {run_id} to the Dagster instance ...")
            submitted = submit_operation_run(app, run_id, instance, acted_by=actor)
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
